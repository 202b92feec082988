//! This node's lease kept between batches, and presence reaped: other nodes'
//! whose lease lapsed, and this node's own at start and at drain.

use std::time::{Duration, Instant};

use super::{Tenure, Worker};
use crate::store::lease::Renewal;
use freeim_protocol::Layout;

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
    /// Another node's names live in another slot in the sharded layout: the
    /// script goes through the cluster connection then, and a failure there
    /// is logged (the next round tries again), not a loss of this link.
    pub(super) fn reap(&mut self, server: &str, force: bool) -> redis::RedisResult<i64> {
        let names = self.names.clone();
        let keys = names.keys_of(server);
        if names.layout() == Layout::Sharded && server != names.server() {
            let script = redis::Script::new(&self.scripts.reap_node);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(keys.alive(server))
                .key(keys.node(server))
                .key(keys.online())
                .arg(if force { "1" } else { "0" })
                .arg(keys.offline_event())
                .arg(keys.prefix());
            let reaped = self
                .cluster_connection()
                .and_then(|cluster| invocation.invoke(cluster));
            return Ok(reaped.unwrap_or_else(|e| {
                self.cluster = None;
                self.report
                    .error(format!("checking node {server}'s lease: {e}"));
                0
            }));
        }
        let Some(link) = self.link.as_mut() else {
            return Ok(0);
        };
        redis::cmd("EVALSHA")
            .arg(&link.reap_node)
            .arg(3)
            .arg(keys.alive(server))
            .arg(keys.node(server))
            .arg(keys.online())
            .arg(if force { "1" } else { "0" })
            .arg(keys.offline_event())
            .arg(keys.prefix())
            .query(&mut link.conn)
    }
}
