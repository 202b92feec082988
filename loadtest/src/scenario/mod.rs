//! The scenarios, one file each. Every scenario starts a [`Session`]
//! (workers, meter, helper), does its work in bounded steps, closes its
//! clients, and emits one report.
//!
//! [`Session`]: crate::session::Session

pub mod churn;
pub mod idle;
pub mod messages;
pub mod storm;

use std::time::Duration;

/// Sleeps for `total` (a measured phase: holding, settling).
pub(crate) fn pause(total: Duration) {
    std::thread::sleep(total);
}
