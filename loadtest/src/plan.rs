//! How clients are spread over worker processes and source addresses.
//!
//! A process may hold about 19,000 sockets (the open-file cap is 20,000), so
//! `N` clients need `ceil(N / per_proc)` workers. A (source address,
//! destination) pair has about 28,000 ephemeral ports, so clients bind to
//! 127.0.0.1, 127.0.0.2, … in turn, enough of them that no pair holds more
//! than [`PER_SOURCE_PAIR`] connections (four times as many for churn, where
//! closed connections linger in TIME_WAIT).

use std::net::Ipv4Addr;

use anyhow::{bail, Result};

/// Default most clients per worker process.
pub const PER_PROC: usize = 15_000;
/// Most connections per (source address, destination) pair by default.
pub const PER_SOURCE_PAIR: usize = 10_000;
/// File descriptors a worker needs besides its client sockets.
pub const FD_HEADROOM: usize = 128;

/// Which clients each worker opens, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Source addresses, used in turn.
    pub src_addrs: Vec<Ipv4Addr>,
    /// Per worker: (first client id, number of clients, global index of the first).
    pub workers: Vec<(i64, usize, usize)>,
}

/// Plans `connections` clients with ids from `id_base`, spread over
/// `procs` workers and `addrs` source addresses (`None`: chosen from the
/// counts), for a cluster of `servers` nodes.
pub fn plan(
    connections: usize,
    id_base: i64,
    procs: Option<usize>,
    addrs: Option<usize>,
    servers: usize,
    churn: bool,
    fd_limit: usize,
) -> Result<Plan> {
    if connections == 0 {
        bail!("--connections must be at least 1");
    }
    let per_proc_cap = fd_limit.saturating_sub(FD_HEADROOM).max(1);
    let procs = match procs {
        Some(0) => bail!("--procs must be at least 1"),
        Some(p) => p.min(connections),
        None => connections.div_ceil(PER_PROC.min(per_proc_cap)),
    };
    let per_worker_max = connections.div_ceil(procs);
    if per_worker_max > per_proc_cap {
        bail!(
            "{procs} worker(s) would hold {per_worker_max} sockets each, over the open-file \
             limit {fd_limit} less {FD_HEADROOM}: use more --procs"
        );
    }
    let per_pair = connections.div_ceil(servers.max(1));
    let factor = if churn { 4 } else { 1 };
    let addrs = match addrs {
        Some(0) => bail!("--src-addrs must be at least 1"),
        Some(a) => a,
        None => (per_pair * factor).div_ceil(PER_SOURCE_PAIR),
    }
    .clamp(1, 254);
    let src_addrs = (1..=addrs as u8)
        .map(|n| Ipv4Addr::new(127, 0, 0, n))
        .collect();
    let mut workers = Vec::with_capacity(procs);
    let mut start = 0usize;
    for w in 0..procs {
        let count = connections / procs + usize::from(w < connections % procs);
        workers.push((id_base + start as i64, count, start));
        start += count;
    }
    Ok(Plan { src_addrs, workers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_runs_use_one_process_and_address() {
        let p = plan(1000, 100, None, None, 1, false, 20_000).unwrap();
        assert_eq!(p.workers, vec![(100, 1000, 0)]);
        assert_eq!(p.src_addrs, vec![Ipv4Addr::new(127, 0, 0, 1)]);
    }

    #[test]
    fn large_runs_split_processes_and_addresses() {
        let p = plan(18_000, 0, None, None, 1, false, 20_000).unwrap();
        assert_eq!(p.workers, vec![(0, 9000, 0), (9000, 9000, 9000)]);
        assert_eq!(p.src_addrs.len(), 2);
        let total: usize = p.workers.iter().map(|w| w.1).sum();
        assert_eq!(total, 18_000);
    }

    #[test]
    fn churn_gets_more_addresses() {
        let p = plan(5000, 0, None, None, 1, true, 20_000).unwrap();
        assert_eq!(p.src_addrs.len(), 2);
    }

    #[test]
    fn uneven_splits_cover_every_client() {
        let p = plan(10, 5, Some(3), Some(2), 2, false, 20_000).unwrap();
        assert_eq!(p.workers, vec![(5, 4, 0), (9, 3, 4), (12, 3, 7)]);
    }

    #[test]
    fn too_few_processes_for_the_fd_limit_is_an_error() {
        assert!(plan(30_000, 0, Some(1), None, 1, false, 20_000).is_err());
        assert!(plan(0, 0, None, None, 1, false, 20_000).is_err());
    }
}
