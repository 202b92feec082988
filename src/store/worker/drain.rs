//! The worker at shutdown: receipts still held given up, and this node taken
//! out of Redis's presence and its lease ended.

use super::report::Reason;
use super::Worker;

impl Worker {
    /// Takes this node out of Redis's presence at shutdown.
    pub(super) fn drain(&mut self) {
        if !self.backlog.is_empty() && self.link_now().is_some() {
            self.pipeline(Vec::new());
        }
        self.give_up_held();
        self.report.flush_now();
        let names = self.names.clone();
        if self.link().is_none() {
            return log::warn!(
                "Redis unavailable during drain: other nodes will reap this node's presence"
            );
        }
        match self.reap(names.server(), true) {
            Ok(0) => {}
            Ok(n) => {
                log::info!("drain: took {n} sockets that did not close in time out of presence")
            }
            Err(e) => return self.lost(&e),
        }
        let held = self.tenure == super::Tenure::Held;
        if let Some(link) = self.link.as_mut().filter(|_| held) {
            if let Err(e) = self.lease.end(&mut link.conn) {
                self.lost(&e);
            }
        }
    }

    /// Receipts still held when the node stops: failed.
    pub(super) fn give_up_held(&mut self) {
        let mut wakes = self.router.wakes();
        for held in self.backlog.take_all().collect::<Vec<_>>() {
            self.give_up(held, Reason::Stopped, &mut wakes);
        }
        self.router.wake(&mut wakes);
    }
}
