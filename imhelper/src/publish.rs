//! Publishing commands to nodes: the [`OnSend`](crate::OnSend) hook before
//! each message publish, one pipeline, and the check that a node heard each
//! one. Messages and `force_offline` share it.

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::helper::ImHelper;
use crate::on_send::ImSendEventArgs;

/// One message command for one node, with what the `on_send` hook is told
/// of it.
pub(crate) struct Outgoing<'a> {
    /// The hook's view; its `server` is where `payload` goes.
    pub(crate) event: ImSendEventArgs<'a>,
    /// The command, as published on `{prefix}Server{server}`.
    pub(crate) payload: String,
}

impl<'a> Outgoing<'a> {
    /// A Send command to `server` for `receivers`, of the JSON text `message`.
    pub(crate) fn send(
        server: &'a str,
        sender: i64,
        receivers: &'a [i64],
        message: &'a str,
        receipt: bool,
    ) -> Result<Outgoing<'a>> {
        Ok(Outgoing {
            payload: freeim_protocol::send_command(sender, receivers, message, receipt),
            event: ImSendEventArgs {
                server,
                sender_client_id: sender,
                receive_client_id: receivers,
                receipt,
                chan: None,
                message,
            },
        })
    }

    /// A Channel command (`chan = None`: a broadcast) already built as
    /// `payload`, to `server`.
    pub(crate) fn chan(
        server: &'a str,
        sender: i64,
        chan: Option<&'a str>,
        message: &'a str,
        payload: String,
    ) -> Outgoing<'a> {
        Outgoing {
            payload,
            event: ImSendEventArgs {
                server,
                sender_client_id: sender,
                receive_client_id: &[],
                receipt: false,
                chan,
                message,
            },
        }
    }
}

impl ImHelper {
    /// Tells the `on_send` hook of every command, in order, then publishes
    /// them all (see [`publish_checked`](ImHelper::publish_checked)).
    pub(crate) fn publish_messages(&self, outgoing: &[Outgoing<'_>]) -> Result<()> {
        if let Some(hook) = &self.on_send {
            for command in outgoing {
                hook.call(&command.event, &self.on_send_panics);
            }
        }
        let commands: Vec<(&str, &str)> = outgoing
            .iter()
            .map(|command| (command.event.server, command.payload.as_str()))
            .collect();
        self.publish_checked(&commands)
    }

    /// Publishes each `(server, payload)` on `{prefix}Server{server}` in one
    /// pipeline, then fails with [`Error::Unrouted`] naming every server
    /// whose PUBLISH reached no subscriber.
    pub(crate) fn publish_checked(&self, commands: &[(&str, &str)]) -> Result<()> {
        let mut pipe = redis::pipe();
        for (server, command) in commands {
            pipe.cmd("PUBLISH")
                .arg(self.keys.server(server))
                .arg(*command);
        }
        let receivers: Vec<i64> = self.pool.run_once(|c| pipe.query(c))?;
        let mut unrouted: Vec<String> = Vec::new();
        for ((server, _), &heard_by) in commands.iter().zip(&receivers) {
            if heard_by == 0 && !unrouted.iter().any(|known| known == server) {
                unrouted.push((*server).to_string());
            }
        }
        if unrouted.is_empty() {
            Ok(())
        } else {
            Err(Error::Unrouted { servers: unrouted })
        }
    }

    /// How many calls of the [`on_send`](crate::ImHelperOptions::on_send)
    /// hook panicked. Each panic was caught and logged, and its publish went
    /// ahead; alert when it grows.
    ///
    /// # Example
    ///
    /// ```
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// assert_eq!(helper.on_send_panics(), 0);
    /// # Ok::<(), imhelper::Error>(())
    /// ```
    pub fn on_send_panics(&self) -> u64 {
        self.on_send_panics.load(Ordering::Relaxed)
    }
}
