//! Pushing messages to nodes: direct sends, channel messages and
//! broadcasts, each checked in full before anything is announced to the
//! `on_send` hook or published (`publish.rs`).

use serde::Serialize;

use freeim_protocol::{chan_command, group_by_server, receipts_fit};

use crate::error::{Error, Result};
use crate::helper::ImHelper;
use crate::publish::Outgoing;

/// One message of an [`ImHelper::send_messages`] batch: the arguments of
/// one [`ImHelper::send_message`] call.
#[derive(Debug)]
pub struct DirectMessage<'a, T: ?Sized> {
    /// Who sends it (`0` = the system); receipts go back to this client.
    pub sender: i64,
    /// Who receives it, on every socket they have open.
    pub receivers: &'a [i64],
    /// What they receive, serialised with serde_json.
    pub message: &'a T,
    /// Whether `sender` gets a receipt per receiver.
    pub receipt: bool,
}

impl ImHelper {
    /// Sends `message` from `sender` (`0` = the system) to every client in
    /// `receivers`, on every socket they have open.
    ///
    /// `message` is serialised with serde_json, and that JSON text is what
    /// the clients receive as one WebSocket text frame (a `&str` arrives as a
    /// JSON string, `"hi"` with its quotes). Receivers are de-duplicated and
    /// grouped by node; one pipeline publishes one Send command per node
    /// (with a Redis Cluster, `SPUBLISH`, one pipeline per node).
    /// With `receipt`, each node reports back to `sender` whether each
    /// receiver was online (FreeIM's receipts).
    ///
    /// As in FreeIM: no receivers, nothing is sent (and the
    /// [`on_send`](crate::ImHelperOptions::on_send) hook is not called);
    /// every id is accepted, negative ones routed to the first server
    /// (see [`select_server`](ImHelper::select_server)); the sender `0` is
    /// the system and gets no receipts; a receiver that is the sender gets
    /// the message only on its *other* sockets (the node's echo rule).
    /// The hook is called once per node, before publishing.
    ///
    /// # Errors
    /// [`Error::Unrouted`] when no node listens for one of the targeted
    /// servers (the other servers still got their part); [`Error::Redis`],
    /// [`Error::Serialize`]; [`Error::MessageTooLarge`] (nothing sent) when
    /// the message's JSON is longer than
    /// [`max_push_bytes`](crate::ImHelperOptions::max_push_bytes);
    /// [`Error::TooManyReceipts`] (nothing sent) when
    /// `receipt` is set for more receivers than
    /// [`max_receipt_bytes`](crate::ImHelperOptions::max_receipt_bytes) allows.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.send_message(42, &[7, 8], "hello", true)?;
    /// helper.send_message(0, &[7], &serde_json::json!({"type": "notice", "n": 3}), false)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_message<T: Serialize + ?Sized>(
        &self,
        sender: i64,
        receivers: &[i64],
        message: &T,
        receipt: bool,
    ) -> Result<()> {
        self.send_messages(&[DirectMessage {
            sender,
            receivers,
            message,
            receipt,
        }])
    }

    /// Sends a batch of direct messages in one Redis round trip (with a
    /// Redis Cluster, one per node): each is exactly one [`send_message`]
    /// call (same grouping, payloads and receipts), and all their Send
    /// commands go out in one pipeline, in order (per node). A service with many messages to push at once (notifications,
    /// a queue it drains) saves a round trip per message, and Redis a pair
    /// of syscalls per message. An empty batch, or messages without
    /// receivers, send nothing. The
    /// [`on_send`](crate::ImHelperOptions::on_send) hook is called for every
    /// command, in order, once the whole batch passed its checks.
    ///
    /// # Errors
    /// [`Error::Unrouted`] names every server no node listens for (every
    /// other command was still published); [`Error::Redis`] (then none or
    /// only some of the batch may have been published), [`Error::Serialize`],
    /// [`Error::MessageTooLarge`] and [`Error::TooManyReceipts`] (then
    /// nothing was).
    ///
    /// [`send_message`]: ImHelper::send_message
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{DirectMessage, ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let batch: Vec<DirectMessage<'_, str>> = [7, 8, 9]
    ///     .iter()
    ///     .map(|receiver| DirectMessage {
    ///         sender: 0,
    ///         receivers: std::slice::from_ref(receiver),
    ///         message: "your report is ready",
    ///         receipt: false,
    ///     })
    ///     .collect();
    /// helper.send_messages(&batch)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_messages<T: Serialize + ?Sized>(
        &self,
        messages: &[DirectMessage<'_, T>],
    ) -> Result<()> {
        // Every check that can refuse the batch runs before anything is
        // announced or published.
        let mut plans = Vec::with_capacity(messages.len());
        for direct in messages {
            let groups = group_by_server(direct.receivers, &self.first_places);
            if groups.is_empty() {
                continue;
            }
            let text = self.message_text(direct.message)?;
            if direct.receipt {
                for (index, ids) in &groups {
                    self.check_receipts(direct.sender, ids, &text, *index)?;
                }
            }
            plans.push((direct, groups, text));
        }
        let mut outgoing = Vec::with_capacity(plans.len());
        for (direct, groups, text) in &plans {
            for (index, ids) in groups {
                outgoing.push(Outgoing::send(
                    &self.servers[*index],
                    direct.sender,
                    ids,
                    text,
                    direct.receipt,
                )?);
            }
        }
        if outgoing.is_empty() {
            return Ok(());
        }
        self.publish_messages(&outgoing)
    }

    /// The message's JSON text, unless it is over
    /// [`ImHelperOptions::max_push_bytes`](crate::ImHelperOptions::max_push_bytes).
    fn message_text<T: Serialize + ?Sized>(&self, message: &T) -> Result<String> {
        let text = serde_json::to_string(message)?;
        if text.len() > self.max_push_bytes {
            return Err(Error::MessageTooLarge {
                bytes: text.len(),
                max_push_bytes: self.max_push_bytes,
            });
        }
        Ok(text)
    }

    /// Fails when the receipts `ids` would earn exceed the budget (see
    /// [`ImHelperOptions::max_receipt_bytes`](crate::ImHelperOptions::max_receipt_bytes)).
    fn check_receipts(&self, sender: i64, ids: &[i64], text: &str, server: usize) -> Result<()> {
        if sender == 0 {
            return Ok(()); // the system gets no receipts
        }
        let receivers = ids.iter().filter(|&&id| id != sender).count();
        if receivers == 0 {
            return Ok(());
        }
        let Err(receipt_bytes) = receipts_fit(receivers, text, self.max_receipt_bytes) else {
            return Ok(());
        };
        Err(Error::TooManyReceipts {
            server: self.servers[server].clone(),
            receivers,
            receipt_bytes,
            max_receipt_bytes: self.max_receipt_bytes,
        })
    }

    /// Sends `message` from `sender` to every member of channel `chan`
    /// currently connected anywhere: one Channel command to every node,
    /// one pipeline (with a Redis Cluster, one per node). Each node delivers to its own sockets of the channel's
    /// members. The [`on_send`](crate::ImHelperOptions::on_send) hook is
    /// called once per node, before publishing, with `chan` set.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (nothing sent, hook not called) when
    /// `chan` is empty: on the wire an empty channel means *broadcast to
    /// everyone*, and FreeIM's `SendChanMessage(sender, "", message)` does
    /// broadcast, but that is [`send_broadcast_message`]'s job, so an empty
    /// name here is refused rather than broadcast by accident.
    /// [`Error::Unrouted`] names the servers no node listens for;
    /// [`Error::Redis`], [`Error::Serialize`], [`Error::MessageTooLarge`].
    ///
    /// [`send_broadcast_message`]: ImHelper::send_broadcast_message
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.join_chan(42, &["room-1"])?;
    /// helper.send_chan_message(42, "room-1", "hi, room")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_chan_message<T: Serialize + ?Sized>(
        &self,
        sender: i64,
        chan: &str,
        message: &T,
    ) -> Result<()> {
        if chan.is_empty() {
            return Err(Error::InvalidArgument {
                argument: "chan",
                reason: "an empty channel name would broadcast to everyone \
                         (use send_broadcast_message for that)",
            });
        }
        self.publish_chan_command(sender, Some(chan), message)
    }

    /// Sends `message` to every connected client on every node (FreeIM's
    /// `SendChanMessage(0, null, message)`). The
    /// [`on_send`](crate::ImHelperOptions::on_send) hook is called once per
    /// node, before publishing, with sender `0` and no channel.
    ///
    /// # Errors
    /// [`Error::Unrouted`] names the servers no node listens for;
    /// [`Error::Redis`], [`Error::Serialize`], [`Error::MessageTooLarge`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.send_broadcast_message(&serde_json::json!({"notice": "maintenance at noon"}))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_broadcast_message<T: Serialize + ?Sized>(&self, message: &T) -> Result<()> {
        self.publish_chan_command(0, None, message)
    }

    fn publish_chan_command<T: Serialize + ?Sized>(
        &self,
        sender: i64,
        chan: Option<&str>,
        message: &T,
    ) -> Result<()> {
        let text = self.message_text(message)?;
        // Named channels are cacheable: this crate announces every membership
        // change on `ChanChanged`.
        let command = chan_command(sender, chan, &text, chan.is_some());
        let outgoing: Vec<Outgoing<'_>> = self
            .distinct_servers
            .iter()
            .map(|server| Outgoing::chan(server, sender, chan, &text, command.clone()))
            .collect();
        self.publish_messages(&outgoing)
    }
}
