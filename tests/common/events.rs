//! Presence events as `ImHelper` reports them: made, awaited, sorted.

use imhelper::{ClientEvent, EventStream, PresenceEvent};

use super::PROMPTLY;

/// An online event.
pub fn online(id: i64, meta: &str) -> PresenceEvent {
    PresenceEvent::Online(ClientEvent {
        client_id: id,
        client_meta: meta.to_string(),
    })
}

/// An offline event.
pub fn offline(id: i64, meta: &str) -> PresenceEvent {
    PresenceEvent::Offline(ClientEvent {
        client_id: id,
        client_meta: meta.to_string(),
    })
}

/// The next `n` events, each within `PROMPTLY` (panics if they do not come).
pub fn next_events(events: &mut EventStream, n: usize) -> Vec<PresenceEvent> {
    (0..n)
        .map(|i| {
            events
                .recv_timeout(PROMPTLY)
                .unwrap_or_else(|| panic!("event {} of {n} did not come", i + 1))
        })
        .collect()
}

/// Sorts events by kind then id then meta, for order-insensitive comparison.
pub fn sorted(mut events: Vec<PresenceEvent>) -> Vec<PresenceEvent> {
    let key = |e: &PresenceEvent| match e {
        PresenceEvent::Online(c) => (0, c.client_id, c.client_meta.clone()),
        PresenceEvent::Offline(c) => (1, c.client_id, c.client_meta.clone()),
    };
    events.sort_by_key(key);
    events
}
