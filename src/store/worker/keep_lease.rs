//! This node's lease kept between batches, and presence reaped: other nodes'
//! whose lease lapsed, and this node's own at start and at drain.

use std::time::{Duration, Instant};

use super::{Tenure, Worker};
use crate::store::lease::Renewal;

/// How often the lease is refreshed and other nodes' leases are checked; with
/// no jobs, also how often the connection is proven alive.
const LEASE_REFRESH: Duration = Duration::from_secs(5);

impl Worker {
    /// Refreshes this node's lease and reaps nodes whose lease lapsed.
    pub(super) fn keep_lease(&mut self) {
        self.next_lease = Instant::now() + LEASE_REFRESH;
        self.report.flush();
        let names = self.names.clone();
        if self.link().is_none() {
            return;
        }
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let renewal = match self.tenure {
            Tenure::Held => self.lease.renew(&mut link.conn),
            Tenure::Due => self.lease.take(&mut link.conn).map(|()| {
                log::info!("holding the lease on --server {}", names.server());
                self.tenure = Tenure::Held;
                Renewal::Renewed
            }),
            Tenure::Awaited | Tenure::Retired => Ok(Renewal::Renewed),
        };
        match renewal {
            Ok(Renewal::Renewed) => {}
            Ok(Renewal::TakenBy(holder)) => {
                log::error!(
                    "{holder} took --server {} over (--take-over): exiting now, leaving presence \
                     to it",
                    names.server()
                );
                std::process::exit(3);
            }
            Err(e) => return self.lost(&e),
        }
        for server in names.servers().iter().filter(|s| *s != names.server()) {
            match self.reap(server, false) {
                Ok(0) => {}
                Ok(n) => log::warn!(
                    "node {server} stopped renewing its lease: took back {n} of its sockets"
                ),
                Err(e) => return self.lost(&e),
            }
        }
    }

    /// Runs the reap script for `server`; `force` ignores a live lease.
    pub(super) fn reap(&mut self, server: &str, force: bool) -> redis::RedisResult<i64> {
        let names = self.names.clone();
        let Some(link) = self.link.as_mut() else {
            return Ok(0);
        };
        redis::cmd("EVALSHA")
            .arg(&link.reap_node)
            .arg(3)
            .arg(names.keys().alive(server))
            .arg(names.keys().node(server))
            .arg(names.keys().online())
            .arg(if force { "1" } else { "0" })
            .arg(names.keys().offline_event())
            .arg(names.keys().prefix())
            .query(&mut link.conn)
    }
}
