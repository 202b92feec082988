//! Publishing commands to nodes: the [`OnSend`](crate::OnSend) hook before
//! each message publish, one pipeline (one per node with a Redis Cluster,
//! `SPUBLISH` to the shard of the node's channel), and the check that a node
//! heard each one. Messages and `force_offline` share it.

use std::sync::atomic::Ordering;

use redis::Pipeline;

use crate::error::{Error, Result};
use crate::helper::ImHelper;
use crate::on_send::ImSendEventArgs;
use crate::shards::group_by_shard;

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
    /// pipeline (see [`pipelines`](ImHelper::pipelines)), then fails with
    /// [`Error::Unrouted`] naming every server whose publish reached no
    /// subscriber.
    ///
    /// # Errors
    /// [`Error::Redis`]; with a Redis Cluster the pipelines before the
    /// failing one went out.
    pub(crate) fn publish_checked(&self, commands: &[(&str, &str)]) -> Result<()> {
        let mut receivers = vec![0; commands.len()];
        for (slot, places, pipe) in self.pipelines(commands) {
            let heard_by: Vec<i64> = self.pool.run_once(slot, |c| pipe.query(c))?;
            for (place, heard_by) in places.into_iter().zip(heard_by) {
                receivers[place] = heard_by;
            }
        }
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

    /// The publishes of `(server, payload)` commands on the servers' command
    /// channels, as `(slot, places in commands, pipeline)`: one pipeline of
    /// `PUBLISH`es in the single layout; with a Redis Cluster, one of
    /// `SPUBLISH`es per node, to the master of its channel's slot. Commands
    /// keep their order within each pipeline.
    fn pipelines(&self, commands: &[(&str, &str)]) -> Vec<(u16, Vec<usize>, Pipeline)> {
        let publish = self.directory.layout().publish();
        let nodes = commands
            .iter()
            .enumerate()
            .map(|(place, (server, _))| (self.node_shard(server), place));
        group_by_shard(nodes)
            .into_iter()
            .map(|(shard, places)| {
                let mut pipe = redis::pipe();
                for &place in &places {
                    let (server, payload) = commands[place];
                    pipe.cmd(publish)
                        .arg(shard.keys.server(server))
                        .arg(payload);
                }
                (shard.slot, places, pipe)
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use crate::shards::tests::helper;

    const COMMANDS: [(&str, &str); 3] = [("a:1", "one"), ("b:2", "two"), ("a:1", "three")];

    #[test]
    fn the_single_layout_publishes_everything_in_one_pipeline() {
        let helper = helper(false, &["a:1", "b:2"]);
        let pipelines = helper.pipelines(&COMMANDS);
        assert_eq!(pipelines.len(), 1);
        let (_, places, pipe) = &pipelines[0];
        assert_eq!(places, &[0, 1, 2]);
        let mut expected = redis::pipe();
        for (server, payload) in COMMANDS {
            expected
                .cmd("PUBLISH")
                .arg(format!("im_v2_wsServer{server}"))
                .arg(payload);
        }
        assert_eq!(pipe.get_packed_pipeline(), expected.get_packed_pipeline());
    }

    #[test]
    fn the_sharded_layout_spublishes_per_node_to_its_channels_slot() {
        let helper = helper(true, &["a:1", "b:2"]);
        let pipelines = helper.pipelines(&COMMANDS);
        let [(slot_a, places_a, pipe_a), (slot_b, places_b, pipe_b)] = &pipelines[..] else {
            panic!("not one pipeline per node");
        };
        let channel = |server| helper.node_shard(server).keys.server(server);
        assert_eq!(*slot_a, freeim_protocol::key_slot(&channel("a:1")));
        assert_eq!(*slot_b, freeim_protocol::key_slot(&channel("b:2")));
        assert_eq!(
            (places_a.as_slice(), places_b.as_slice()),
            (&[0, 2][..], &[1][..])
        );
        let mut expected_a = redis::pipe();
        expected_a
            .cmd("SPUBLISH")
            .arg(channel("a:1"))
            .arg("one")
            .cmd("SPUBLISH")
            .arg(channel("a:1"))
            .arg("three");
        assert_eq!(
            pipe_a.get_packed_pipeline(),
            expected_a.get_packed_pipeline()
        );
        let mut expected_b = redis::pipe();
        expected_b.cmd("SPUBLISH").arg(channel("b:2")).arg("two");
        assert_eq!(
            pipe_b.get_packed_pipeline(),
            expected_b.get_packed_pipeline()
        );
    }
}
