//! The channel list: `GET /channels`' entries, and the `channels` push that
//! tells every client when the list changed.
//!
//! A join, a leave, or a member's last socket closing (the node then takes
//! it out of its channels) calls [`ChannelsPush::changed`]. A task reads the
//! list and broadcasts it, at most once per [`PUSH_INTERVAL`]: changes that
//! come while a push is read, sent or resting collapse into one more push,
//! made after them, so the last state always goes out. A list equal to the
//! last one pushed is not pushed again.

use std::sync::Arc;
use std::time::Duration;

use imhelper::ImHelper;
use serde_json::{json, Value};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::messages;

/// The shortest time between two `channels` pushes.
pub const PUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Every channel as `{"chan", "online"}` (`online` = members), busiest
/// first, then by name.
///
/// # Errors
/// What `imhelper` reports (Redis unreachable, every connection busy).
pub fn list(helper: &ImHelper) -> imhelper::Result<Vec<Value>> {
    let mut channels = helper.get_chan_list()?;
    channels.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.chan.cmp(&b.chan)));
    Ok(channels
        .into_iter()
        .map(|c| json!({"chan": c.chan, "online": c.online}))
        .collect())
}

/// Asks for a `channels` push; cheap, callable from any thread.
#[derive(Clone, Debug)]
pub struct ChannelsPush {
    changed: Arc<Notify>,
}

impl ChannelsPush {
    /// Starts the pushing task on `runtime`; it ends with the runtime.
    pub fn start(helper: Arc<ImHelper>, runtime: &Handle) -> ChannelsPush {
        let changed = Arc::new(Notify::new());
        runtime.spawn(push_changes(helper, Arc::clone(&changed)));
        ChannelsPush { changed }
    }

    /// The channel list may have changed: push it (soon, coalesced).
    pub fn changed(&self) {
        self.changed.notify_one();
    }
}

/// The task: waits for a change, pushes (on a blocking thread: `imhelper`
/// blocks), rests [`PUSH_INTERVAL`]. A change during the push or the rest
/// leaves one stored wake-up, so one more push follows.
async fn push_changes(helper: Arc<ImHelper>, changed: Arc<Notify>) {
    let mut last_pushed: Option<Vec<Value>> = None;
    loop {
        changed.notified().await;
        let helper = Arc::clone(&helper);
        let previous = last_pushed.take();
        last_pushed = tokio::task::spawn_blocking(move || push_if_new(&helper, previous))
            .await
            .unwrap_or_default();
        tokio::time::sleep(PUSH_INTERVAL).await;
    }
}

/// Reads the list and broadcasts it unless it is `previous`; returns the
/// list the clients now have, as far as is known.
fn push_if_new(helper: &ImHelper, previous: Option<Vec<Value>>) -> Option<Vec<Value>> {
    let channels = match list(helper) {
        Ok(channels) => channels,
        Err(e) => {
            log::warn!("cannot read the channel list to push it: {e}");
            return previous;
        }
    };
    if previous.as_ref() == Some(&channels) {
        return previous;
    }
    match helper.send_broadcast_message(&messages::channels(&channels)) {
        Ok(()) => Some(channels),
        Err(e) => {
            log::warn!("cannot push the channel list: {e}");
            previous
        }
    }
}
