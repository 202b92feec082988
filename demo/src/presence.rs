//! Who is online, as the demo tells the pages: the event bus turns the
//! nodes' online/offline events into `presence` broadcasts (and a client's
//! going offline, which takes it out of its channels, into a `channels`
//! push), and a small directory remembers the display name each connected
//! client chose.

use std::collections::HashMap;
use std::sync::Arc;

use imhelper::{ClientEvent, EventBus, ImHelper};
use parking_lot::Mutex;

use crate::channels::ChannelsPush;
use crate::input;
use crate::messages;

/// Display names of the connected clients, learnt from the metadata of
/// their connect tokens (the node repeats it in every online event).
#[derive(Debug, Default)]
pub struct Directory {
    names: Mutex<HashMap<i64, String>>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Directory {
        Directory::default()
    }

    /// The name of `id`: the one it connected with, else its default name.
    ///
    /// # Example
    ///
    /// ```
    /// use freeim_demo::presence::Directory;
    ///
    /// let directory = Directory::new();
    /// assert_eq!(directory.name_of(17), "Brisk Otter");
    /// directory.remember(17, "Alice");
    /// assert_eq!(directory.name_of(17), "Alice");
    /// directory.forget(17);
    /// assert_eq!(directory.name_of(17), "Brisk Otter");
    /// ```
    pub fn name_of(&self, id: i64) -> String {
        self.names
            .lock()
            .get(&id)
            .cloned()
            .unwrap_or_else(|| messages::default_name(id))
    }

    /// Records `meta` as the name of `id` when it is a valid name (other
    /// business services may put anything there, FreeIM's demo an IP).
    pub fn remember(&self, id: i64, meta: &str) {
        if let Ok(name) = input::name(meta) {
            self.names.lock().insert(id, name);
        }
    }

    /// Forgets the name of `id` (its last socket closed).
    pub fn forget(&self, id: i64) {
        self.names.lock().remove(&id);
    }
}

/// Subscribes to the nodes' events and broadcasts each change to every
/// client: `online` for every socket that opens, `offline` only when a
/// client's *last* socket closed (a second tab closing is no news). The
/// node takes such a client out of its channels before announcing it, so
/// `channels_push` is asked for a push then too.
///
/// Every demo process subscribed this way broadcasts each event, so run one
/// per cluster (a real service would elect one, or keep presence elsewhere).
///
/// # Errors
/// [`imhelper::Error::Redis`] when Redis cannot be reached now.
pub fn start(
    helper: Arc<ImHelper>,
    directory: Arc<Directory>,
    channels_push: ChannelsPush,
) -> imhelper::Result<EventBus> {
    let (online_helper, online_directory) = (Arc::clone(&helper), Arc::clone(&directory));
    let offline_helper = Arc::clone(&helper);
    helper.event_bus(
        move |client: ClientEvent| {
            online_directory.remember(client.client_id, &client.client_meta);
            let name = online_directory.name_of(client.client_id);
            let message = messages::presence(true, client.client_id, &name, messages::now_ms());
            if let Err(e) = online_helper.send_broadcast_message(&message) {
                log::warn!(
                    "cannot broadcast that {} came online: {e}",
                    client.client_id
                );
            }
        },
        move |client: ClientEvent| {
            let helper = &offline_helper;
            match helper.has_online(client.client_id) {
                Ok(true) => return, // another tab or device is still connected
                Ok(false) => {}
                Err(e) => log::warn!("cannot read presence of {}: {e}", client.client_id),
            }
            channels_push.changed();
            let name = directory.name_of(client.client_id);
            directory.forget(client.client_id);
            let message = messages::presence(false, client.client_id, &name, messages::now_ms());
            if let Err(e) = helper.send_broadcast_message(&message) {
                log::warn!(
                    "cannot broadcast that {} went offline: {e}",
                    client.client_id
                );
            }
        },
    )
}
