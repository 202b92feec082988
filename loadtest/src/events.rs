//! Counting the nodes' online/offline events for this run's clients, through
//! `imhelper`'s event stream, on a thread of its own.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use imhelper::{ImHelper, PresenceEvent};
use parking_lot::Mutex;

use crate::sys::now_ns;

/// What the events said so far.
#[derive(Debug, Clone, Default)]
pub struct EventTally {
    /// Online events of this run's clients.
    pub online: u64,
    /// Offline events of this run's clients.
    pub offline: u64,
    /// Per client: online minus offline events.
    pub net: HashMap<i64, i64>,
    /// Arrival time (monotonic ns) of each online event, in order.
    pub online_at: Vec<u64>,
}

/// A running event counter.
pub struct EventCounter {
    tally: Arc<Mutex<EventTally>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EventCounter {
    /// Subscribes (returning once subscribed) and counts events of clients in `ids`.
    pub fn start(helper: &ImHelper, ids: Range<i64>) -> Result<EventCounter> {
        let mut stream = helper.events()?;
        let tally = Arc::new(Mutex::new(EventTally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tally, stop) = (tally.clone(), stop.clone());
            std::thread::Builder::new()
                .name("events".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(event) = stream.recv_timeout(Duration::from_millis(100)) else {
                            continue;
                        };
                        let (client, online) = match event {
                            PresenceEvent::Online(c) => (c, true),
                            PresenceEvent::Offline(c) => (c, false),
                        };
                        if !ids.contains(&client.client_id) {
                            continue;
                        }
                        let mut t = tally.lock();
                        let net = t.net.entry(client.client_id).or_insert(0);
                        if online {
                            *net += 1;
                            t.online += 1;
                            t.online_at.push(now_ns());
                        } else {
                            *net -= 1;
                            t.offline += 1;
                        }
                    }
                })?
        };
        Ok(EventCounter {
            tally,
            stop,
            thread: Some(thread),
        })
    }

    /// A copy of the tally now.
    pub fn tally(&self) -> EventTally {
        self.tally.lock().clone()
    }

    /// Online events so far.
    pub fn online(&self) -> u64 {
        self.tally.lock().online
    }
}

impl Drop for EventCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
