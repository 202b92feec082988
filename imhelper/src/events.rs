//! Online/offline events, as callbacks ([`EventBus`]) or as an iterator
//! ([`EventStream`]). Both run on the reconnecting threads of `listener.rs`:
//! one for one Redis, one per node for a Redis Cluster (each node publishes
//! its events to its own shard).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use freeim_protocol::Layout;

use crate::error::Result;
use crate::helper::ImHelper;
use crate::listener::{LinkConfig, LinkHealth, Listener, ListenerConfig, Sink};
use crate::panics::panic_message;

/// A client whose socket opened or closed, as the node published it: the id
/// and metadata given to [`ImHelper::prev_connect_server`].
///
/// # Example
///
/// ```
/// use imhelper::ClientEvent;
///
/// let event = ClientEvent { client_id: 42, client_meta: "alice".into() };
/// assert_eq!(event.client_id, 42);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientEvent {
    /// The client's id.
    pub client_id: i64,
    /// The metadata stored with the client's connect token.
    pub client_meta: String,
}

/// One event from [`EventStream`].
///
/// # Example
///
/// ```
/// use imhelper::{ClientEvent, PresenceEvent};
///
/// let event = PresenceEvent::Online(ClientEvent { client_id: 1, client_meta: String::new() });
/// let PresenceEvent::Online(client) = event else { panic!("not online") };
/// assert_eq!(client.client_id, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PresenceEvent {
    /// A socket of this client opened (`evt_{prefix}Online`).
    Online(ClientEvent),
    /// A socket of this client closed (`evt_{prefix}Offline`).
    Offline(ClientEvent),
}

/// Calls your callbacks for every online/offline event, on a thread of its
/// own, until stopped or dropped. With a Redis Cluster there is one thread
/// (and link) per node, since each node publishes its events to its own
/// shard; they call the callbacks one event at a time, and everything below
/// holds for each link.
///
/// The thread survives Redis outages: it reconnects (50 ms, doubling to at
/// most 1 s between attempts) and resubscribes. It also proves the link
/// alive on a schedule: after a third of
/// [`ImHelperOptions::liveness`](crate::ImHelperOptions::liveness) without
/// traffic it sends `PING`, and a link that does not answer within another
/// third (a hung proxy, a frozen Redis, a NAT that forgot the flow) is
/// dropped and replaced the same way. Events published while it is
/// disconnected are lost (Redis pub/sub keeps nothing). Payloads that are
/// not `{"Item1":id,"Item2":"meta"}` are skipped.
///
/// A callback that panics does not end the thread: the panic is caught,
/// logged as a warning (through the `log` crate) and counted in
/// [`callback_panics`](EventBus::callback_panics), and later events are
/// still delivered (unless the program is built with `panic = "abort"`,
/// where nothing can catch a panic). [`is_connected`](EventBus::is_connected),
/// [`reconnects`](EventBus::reconnects) and
/// [`liveness_failures`](EventBus::liveness_failures) tell a service when
/// to alert.
///
/// # Example
///
/// ```no_run
/// use imhelper::{ImHelper, ImHelperOptions};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
/// let bus = helper.event_bus(
///     |c| println!("{} online ({})", c.client_id, c.client_meta),
///     |c| println!("{} offline", c.client_id),
/// )?;
/// // … serve requests …
/// bus.stop();
/// # Ok(())
/// # }
/// ```
pub struct EventBus {
    listener: Listener,
    health: Arc<LinkHealth>,
}

impl EventBus {
    /// Whether the thread is subscribed right now (with a Redis Cluster,
    /// every node's link); `false` while one reconnects (Redis down, the
    /// link found deaf, a slot moved), so events are being lost. Alert when
    /// it stays `false`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let bus = helper.event_bus(|_| {}, |_| {})?;
    /// assert!(bus.is_connected()); // event_bus returns once subscribed
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.health.is_connected()
    }

    /// How many times the thread subscribed again after losing the link
    /// (Redis restarted or unreachable, or the link found deaf; with a Redis
    /// Cluster, summed over the nodes' links, a moved slot included).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let bus = helper.event_bus(|_| {}, |_| {})?;
    /// println!("event link re-established {} times", bus.reconnects());
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnects(&self) -> u64 {
        self.health.reconnects()
    }

    /// How many times the link was declared dead because a `PING` went
    /// unanswered (see [`ImHelperOptions::liveness`](crate::ImHelperOptions::liveness)):
    /// the link was open but passed nothing on.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let bus = helper.event_bus(|_| {}, |_| {})?;
    /// if bus.liveness_failures() > 0 {
    ///     eprintln!("the Redis link went deaf at least once; check the network path");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn liveness_failures(&self) -> u64 {
        self.health.liveness_failures()
    }

    /// How many callback calls panicked (each was caught and logged; the
    /// thread went on with the next event).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let bus = helper.event_bus(|c| assert!(c.client_id >= 0), |_| {})?;
    /// // … later, in a health check:
    /// assert_eq!(bus.callback_panics(), 0, "a callback is failing");
    /// # Ok(())
    /// # }
    /// ```
    pub fn callback_panics(&self) -> u64 {
        self.health.callback_panics()
    }

    /// Stops the thread and waits for it: once this returns, no callback
    /// runs any more. Dropping the `EventBus` does the same.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let bus = helper.event_bus(|_| {}, |_| {})?;
    /// bus.stop();
    /// # Ok(())
    /// # }
    /// ```
    pub fn stop(mut self) {
        self.listener.stop();
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("connected", &self.is_connected())
            .field("reconnects", &self.reconnects())
            .field("liveness_failures", &self.liveness_failures())
            .field("callback_panics", &self.callback_panics())
            .finish_non_exhaustive()
    }
}

/// Online/offline events as a blocking iterator. Same thread, reconnection,
/// liveness and loss rules as [`EventBus`], and the same
/// [`is_connected`](EventStream::is_connected),
/// [`reconnects`](EventStream::reconnects) and
/// [`liveness_failures`](EventStream::liveness_failures); events queue
/// (unbounded) until read. Dropping the stream stops the thread.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use imhelper::{ImHelper, ImHelperOptions, PresenceEvent};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
/// let mut events = helper.events()?;
/// while let Some(event) = events.recv_timeout(Duration::from_secs(1)) {
///     if let PresenceEvent::Online(client) = event {
///         println!("{} came online", client.client_id);
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct EventStream {
    events: Receiver<PresenceEvent>,
    /// Held for its `Drop`, which stops the thread.
    _listener: Listener,
    health: Arc<LinkHealth>,
}

impl EventStream {
    /// Whether the thread is subscribed right now (see
    /// [`EventBus::is_connected`]).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let events = helper.events()?;
    /// assert!(events.is_connected());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.health.is_connected()
    }

    /// How many times the thread subscribed again after losing the link
    /// (see [`EventBus::reconnects`]).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let events = helper.events()?;
    /// println!("{} reconnects", events.reconnects());
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnects(&self) -> u64 {
        self.health.reconnects()
    }

    /// How many times the link was declared dead because a `PING` went
    /// unanswered (see [`EventBus::liveness_failures`]).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let events = helper.events()?;
    /// println!("{} liveness failures", events.liveness_failures());
    /// # Ok(())
    /// # }
    /// ```
    pub fn liveness_failures(&self) -> u64 {
        self.health.liveness_failures()
    }

    /// The next event, waiting at most `timeout`; `None` when none came.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let mut events = helper.events()?;
    /// match events.recv_timeout(Duration::from_millis(500)) {
    ///     Some(event) => println!("{event:?}"),
    ///     None => println!("quiet"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<PresenceEvent> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Iterator for EventStream {
    type Item = PresenceEvent;

    /// Blocks until the next event.
    fn next(&mut self) -> Option<PresenceEvent> {
        self.events.recv().ok()
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("queued", &self.events.len())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl ImHelper {
    /// Starts an [`EventBus`]: `on_online` / `on_offline` run on its thread
    /// for every event, in the order Redis delivers them (with a Redis
    /// Cluster: each node's in its order, one at a time). A callback that
    /// panics is caught, logged and counted; the next event is delivered as
    /// usual. A slow callback delays the events after it (and stopping).
    ///
    /// Returns once subscribed, so every event published afterwards (while
    /// Redis stays up) reaches a callback.
    ///
    /// # Errors
    /// [`Error::Redis`](crate::Error::Redis) when Redis cannot be reached
    /// now; later outages are handled by the thread.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let connected = Arc::new(AtomicUsize::new(0));
    /// let (up, down) = (Arc::clone(&connected), Arc::clone(&connected));
    /// let _bus = helper.event_bus(
    ///     move |_| { up.fetch_add(1, Ordering::Relaxed); },
    ///     move |_| { down.fetch_sub(1, Ordering::Relaxed); },
    /// )?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn event_bus(
        &self,
        on_online: impl Fn(ClientEvent) + Send + 'static,
        on_offline: impl Fn(ClientEvent) + Send + 'static,
    ) -> Result<EventBus> {
        let health = Arc::new(LinkHealth::default());
        let counted = Arc::clone(&health);
        let sink: Sink = Box::new(move |event| {
            let (kind, client_id) = match &event {
                PresenceEvent::Online(client) => ("online", client.client_id),
                PresenceEvent::Offline(client) => ("offline", client.client_id),
            };
            let delivered = catch_unwind(AssertUnwindSafe(|| match event {
                PresenceEvent::Online(client) => on_online(client),
                PresenceEvent::Offline(client) => on_offline(client),
            }));
            if let Err(panic) = delivered {
                counted.count_callback_panic();
                log::warn!(
                    "imhelper: the {kind} callback panicked on client {client_id}: {}; \
                     the event bus goes on with the next event",
                    panic_message(panic.as_ref())
                );
            }
            true
        });
        let listener = Listener::spawn(self.listener_config(), sink, Arc::clone(&health))?;
        Ok(EventBus { listener, health })
    }

    /// Starts an [`EventStream`]: the same events, read as an iterator.
    ///
    /// Returns once subscribed, so every event published afterwards (while
    /// Redis stays up) is queued on the stream.
    ///
    /// # Errors
    /// [`Error::Redis`](crate::Error::Redis) when Redis cannot be reached
    /// now; later outages are handled by the thread.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions, PresenceEvent};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let events = helper.events()?;
    /// // The service's event thread: blocks for each event, for the life of the process.
    /// std::thread::spawn(move || {
    ///     for event in events {
    ///         match event {
    ///             PresenceEvent::Online(c) => println!("+{}", c.client_id),
    ///             PresenceEvent::Offline(c) => println!("-{}", c.client_id),
    ///         }
    ///     }
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn events(&self) -> Result<EventStream> {
        let (sender, events) = crossbeam_channel::unbounded();
        let sink: Sink = Box::new(move |event| sender.send(event).is_ok());
        let health = Arc::new(LinkHealth::default());
        let listener = Listener::spawn(self.listener_config(), sink, Arc::clone(&health))?;
        Ok(EventStream {
            events,
            _listener: listener,
            health,
        })
    }

    fn listener_config(&self) -> ListenerConfig {
        let links = match self.directory.layout() {
            Layout::Single => self
                .partitions()
                .map(|shard| LinkConfig {
                    node: None,
                    online_channel: shard.keys.online_event(),
                    offline_channel: shard.keys.offline_event(),
                })
                .collect(),
            Layout::Sharded => self
                .directory
                .nodes()
                .map(|(server, keys)| LinkConfig {
                    node: Some(server.to_string()),
                    online_channel: keys.online_event(),
                    offline_channel: keys.offline_event(),
                })
                .collect(),
        };
        ListenerConfig {
            connector: self.pool.connector().clone(),
            liveness: self.liveness,
            links,
            primary_epoch: Arc::clone(&self.primary_epoch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn one_redis_is_one_link_for_every_nodes_events() {
        let config = crate::shards::tests::helper(false, &["a:1", "b:2"]).listener_config();
        assert_eq!(
            config.links,
            [LinkConfig {
                node: None,
                online_channel: "evt_im_v2_wsOnline".into(),
                offline_channel: "evt_im_v2_wsOffline".into(),
            }]
        );
    }

    #[test]
    fn a_cluster_is_one_link_per_node_on_its_own_shard() {
        let helper = crate::shards::tests::helper(true, &["a:1", "b:2", "a:1"]);
        let config = helper.listener_config();
        let nodes: Vec<Option<&str>> = config.links.iter().map(|l| l.node.as_deref()).collect();
        assert_eq!(nodes, [Some("a:1"), Some("b:2")]);
        for link in &config.links {
            let shard = helper.node_shard(link.node.as_deref().unwrap());
            assert_eq!(link.online_channel, shard.keys.online_event());
            assert_eq!(link.offline_channel, shard.keys.offline_event());
            assert_eq!(freeim_protocol::key_slot(&link.online_channel), shard.slot);
        }
    }

    #[test]
    fn handles_can_move_between_threads() {
        assert_send_sync::<EventBus>();
        assert_send::<EventStream>();
        assert_send_sync::<PresenceEvent>();
    }
}
