//! [`OnSend`], the hook told of every per-node publish of a message
//! (FreeIM's `ImClient.OnSend` event), and [`ImSendEventArgs`], what it is
//! told. Calling it with its panics caught lives here too.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::panics::panic_message;

/// One per-node publish of a message, as [`OnSend`] sees it: FreeIM's
/// `ImSendEventArgs`, field for field.
///
/// A direct message ([`send_message`](crate::ImHelper::send_message),
/// [`send_messages`](crate::ImHelper::send_messages)) makes one per node
/// that holds some of its receivers; a channel message or a broadcast makes
/// one per distinct server in
/// [`ImHelperOptions::servers`](crate::ImHelperOptions::servers).
///
/// # Example
///
/// ```
/// use imhelper::{ImHelperOptions, OnSend};
///
/// let mut options = ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]);
/// options.on_send = Some(OnSend::new(|event| {
///     match event.chan {
///         Some(chan) => println!("{} -> #{chan} via {}", event.sender_client_id, event.server),
///         None if event.receive_client_id.is_empty() => println!("broadcast via {}", event.server),
///         None => println!("{} -> {:?} via {}", event.sender_client_id, event.receive_client_id, event.server),
///     }
/// }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImSendEventArgs<'a> {
    /// The node the command is published to (`{prefix}Server{server}`), as
    /// named in [`ImHelperOptions::servers`](crate::ImHelperOptions::servers).
    pub server: &'a str,
    /// The sender; `0` for the system (and for every broadcast).
    pub sender_client_id: i64,
    /// The receivers held by this node, de-duplicated, in the order given.
    /// Empty for channel messages and broadcasts, whose receivers the node
    /// finds itself.
    pub receive_client_id: &'a [i64],
    /// Whether the sender asked for receipts; always `false` for channel
    /// messages and broadcasts.
    pub receipt: bool,
    /// The channel of a channel message; `None` for direct messages and
    /// broadcasts.
    pub chan: Option<&'a str>,
    /// The message as published: its JSON text (`"hi"` with its quotes for
    /// the string `hi`), which is what the clients' sockets receive.
    pub message: &'a str,
}

/// A hook called for each per-node publish of
/// [`send_message`](crate::ImHelper::send_message),
/// [`send_messages`](crate::ImHelper::send_messages),
/// [`send_chan_message`](crate::ImHelper::send_chan_message) and
/// [`send_broadcast_message`](crate::ImHelper::send_broadcast_message)
/// (FreeIM's `OnSend` event), set in
/// [`ImHelperOptions::on_send`](crate::ImHelperOptions::on_send). Use it to
/// audit or count what goes to which node.
///
/// # When
///
/// As in FreeIM, **before** publishing: the call checks everything that can
/// refuse it (serialisation, [`max_push_bytes`](crate::ImHelperOptions::max_push_bytes),
/// receipts, arguments), then calls the hook once per publish, in the order
/// the commands go out, then publishes them all in one pipeline. So a
/// refused call raises nothing, a send with no receivers raises nothing, and
/// a call that then fails with [`Error::Redis`](crate::Error::Redis) or
/// [`Error::Unrouted`](crate::Error::Unrouted) *was* announced: the hook
/// tells what is about to be published, not what was delivered.
/// `force_offline` raises nothing (FreeIM neither).
///
/// # Threads
///
/// The hook runs on the calling thread, synchronously and while holding no
/// Redis connection; every thread that calls the helper may run it at the
/// same time, hence `Fn + Send + Sync`. A slow hook slows the sends.
///
/// # Panics
///
/// A panic in the hook is caught and logged as a warning (through the `log`
/// crate), counted in [`ImHelper::on_send_panics`](crate::ImHelper::on_send_panics),
/// and the publish goes ahead as if the hook had returned: the helper stays
/// fully usable. (Unless the program is built with `panic = "abort"`,
/// where nothing can catch a panic.)
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use imhelper::{ImHelper, ImHelperOptions, OnSend};
///
/// let published = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&published);
/// let mut options = ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]);
/// options.on_send = Some(OnSend::new(move |event| {
///     counter.fetch_add(event.receive_client_id.len().max(1), Ordering::Relaxed);
/// }));
/// let helper = ImHelper::new(options)?;
/// # Ok::<(), imhelper::Error>(())
/// ```
#[derive(Clone)]
pub struct OnSend(Arc<dyn Fn(&ImSendEventArgs<'_>) + Send + Sync>);

impl OnSend {
    /// Wraps `hook`. Clones share it.
    pub fn new(hook: impl Fn(&ImSendEventArgs<'_>) + Send + Sync + 'static) -> OnSend {
        OnSend(Arc::new(hook))
    }

    /// Calls the hook; a panic is caught, logged and counted in `panics`.
    pub(crate) fn call(&self, event: &ImSendEventArgs<'_>, panics: &AtomicU64) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (self.0)(event))) {
            panics.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "imhelper: the on_send hook panicked on a publish to {}: {}; publishing anyway",
                event.server,
                panic_message(panic.as_ref())
            );
        }
    }
}

/// Shows an optional hook in `Debug` output as `present` or `absent`.
pub(crate) struct HookPresence<'a>(pub(crate) &'a Option<OnSend>);

impl fmt::Debug for HookPresence<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "present"
        } else {
            "absent"
        })
    }
}

/// Two hooks are equal when one is a clone of the other.
impl PartialEq for OnSend {
    fn eq(&self, other: &OnSend) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OnSend {}

impl fmt::Debug for OnSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnSend(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> ImSendEventArgs<'static> {
        ImSendEventArgs {
            server: "a:1",
            sender_client_id: 1,
            receive_client_id: &[2],
            receipt: false,
            chan: None,
            message: "\"hi\"",
        }
    }

    #[test]
    fn a_panic_is_caught_and_counted() {
        let hook = OnSend::new(|_| panic!("boom"));
        let panics = AtomicU64::new(0);
        hook.call(&event(), &panics);
        hook.call(&event(), &panics);
        assert_eq!(panics.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn clones_are_equal_other_hooks_are_not() {
        let hook = OnSend::new(|_| {});
        assert_eq!(hook, hook.clone());
        assert_ne!(hook, OnSend::new(|_| {}));
        assert_eq!(format!("{hook:?}"), "OnSend(..)");
    }
}
