//! Online/offline events, as callbacks ([`EventBus`]) or as an iterator
//! ([`EventStream`]). Both run on the reconnecting thread of `listener.rs`.

use std::fmt;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::error::Result;
use crate::helper::ImHelper;
use crate::listener::{Listener, ListenerConfig, Sink};

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
/// own, until stopped or dropped.
///
/// The thread survives Redis outages: it reconnects (50 ms, doubling to at
/// most 2 s between attempts) and resubscribes. Events published while it
/// is disconnected are lost (Redis pub/sub keeps nothing). Payloads that are
/// not `{"Item1":id,"Item2":"meta"}` are skipped. A panicking callback ends
/// the thread.
///
/// # Example
///
/// ```no_run
/// use imhelper::{ImHelper, ImHelperOptions};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
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
}

impl EventBus {
    /// Stops the thread and waits for it: once this returns, no callback
    /// runs any more. Dropping the `EventBus` does the same.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
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
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

/// Online/offline events as a blocking iterator. Same thread, reconnection
/// and loss rules as [`EventBus`]; events queue (unbounded) until read.
/// Dropping the stream stops the thread.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use imhelper::{ImHelper, ImHelperOptions, PresenceEvent};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
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
}

impl EventStream {
    /// The next event, waiting at most `timeout`; `None` when none came.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use imhelper::{ImHelper, ImHelperOptions};
    /// # fn main() -> imhelper::Result<()> {
    /// # let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
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
            .finish_non_exhaustive()
    }
}

impl ImHelper {
    /// Starts an [`EventBus`]: `on_online` / `on_offline` run on its thread
    /// for every event, in the order Redis delivers them.
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
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
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
        let sink: Sink = Box::new(move |event| {
            match event {
                PresenceEvent::Online(client) => on_online(client),
                PresenceEvent::Offline(client) => on_offline(client),
            }
            true
        });
        let listener = Listener::spawn(self.listener_config(), sink)?;
        Ok(EventBus { listener })
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
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// for event in helper.events()? {
    ///     match event {
    ///         PresenceEvent::Online(c) => println!("+{}", c.client_id),
    ///         PresenceEvent::Offline(c) => println!("-{}", c.client_id),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn events(&self) -> Result<EventStream> {
        let (sender, events) = crossbeam_channel::unbounded();
        let sink: Sink = Box::new(move |event| sender.send(event).is_ok());
        let listener = Listener::spawn(self.listener_config(), sink)?;
        Ok(EventStream {
            events,
            _listener: listener,
        })
    }

    fn listener_config(&self) -> ListenerConfig {
        ListenerConfig {
            connector: self.pool.connector().clone(),
            online_channel: self.keys.online_event(),
            offline_channel: self.keys.offline_event(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn handles_can_move_between_threads() {
        assert_send_sync::<EventBus>();
        assert_send::<EventStream>();
        assert_send_sync::<PresenceEvent>();
    }
}
