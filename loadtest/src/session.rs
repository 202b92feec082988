//! What every scenario sets up in the coordinator: the `ImHelper`, the
//! worker fleet, the meter reading the node's (and Redis's) `/proc` figures,
//! and fetching the totals over all workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use imhelper::{ImHelper, ImHelperOptions};

use crate::cli::{ClientArgs, OutputArgs, TargetArgs};
use crate::control::{Command, ReaderConfig, Report, WorkerConfig};
use crate::fleet::Fleet;
use crate::plan::{plan, Plan};
use crate::procfs::{self, ProcSample, Sockstat};
use crate::report::RunReport;
use crate::stats::ClientStats;
use crate::sys::{clock_ticks_per_second, now_ns};

/// A scenario's coordinator state.
pub struct Session {
    /// The business-service side: tokens, messages, presence reads.
    pub helper: Arc<ImHelper>,
    /// The workers holding the client sockets.
    pub fleet: Fleet,
    /// Reads the node's figures.
    pub meter: Meter,
    /// How clients are spread.
    pub plan: Plan,
    /// The first client id of this run.
    pub id_base: i64,
    /// Number of clients.
    pub connections: usize,
    /// The result being built.
    pub report: RunReport,
    /// Connect pacing (connections per second, 0 = none).
    pub rate: f64,
    /// The connect timeout.
    pub connect_timeout: Duration,
}

impl Session {
    /// Plans the clients, arms the run's time limit, starts the workers
    /// (their sockets reading as `reader` says) and records the common
    /// parameters.
    pub fn start(
        scenario: &str,
        target: &TargetArgs,
        clients: &ClientArgs,
        output: &OutputArgs,
        churn: bool,
        reader: ReaderConfig,
    ) -> Result<Session> {
        arm_watchdog(output.timeout);
        let servers = target.server_list();
        if servers.is_empty() {
            bail!("--servers lists no server");
        }
        for server in &servers {
            check_loopback(server)?;
        }
        let fd_limit = crate::sys::raise_nofile_limit() as usize;
        let id_base = clients
            .id_base
            .unwrap_or_else(|| (crate::sys::unix_seconds() % 1_000_000) as i64 * 100_000);
        let plan = plan(
            clients.connections,
            id_base,
            clients.procs,
            clients.src_addrs,
            servers.len(),
            churn,
            fd_limit,
        )?;
        let mut options = ImHelperOptions::new(target.redis.clone(), servers.clone());
        options.path = target.path.clone();
        let helper = Arc::new(ImHelper::new(options)?);
        helper
            .get_chan_online("freeim-loadtest-ping")
            .context("Redis is not reachable")?;

        let procs = plan.workers.len();
        let configs = plan
            .workers
            .iter()
            .enumerate()
            .map(|(index, &(first_id, count, src_offset))| WorkerConfig {
                index,
                redis_url: target.redis.clone(),
                servers: servers.clone(),
                path: target.path.clone(),
                first_id,
                count,
                src_addrs: plan.src_addrs.clone(),
                src_offset,
                rate: clients.rate / procs as f64,
                concurrency: clients.concurrency.div_ceil(procs).max(1),
                connect_timeout_ms: clients.connect_timeout.as_millis() as u64,
                token_threads: clients.token_threads,
                meta: format!("loadtest-{index}"),
                reader,
                deflate: clients.deflate,
            })
            .collect();
        let fleet = Fleet::start(configs)?;
        let meter = Meter {
            node_pids: target.node_pids.clone(),
            redis_pid: target.redis_pid,
            worker_pids: fleet.pids(),
        };
        let label = output
            .label
            .clone()
            .unwrap_or_else(|| format!("{scenario}-{}", clients.connections));
        let mut report = RunReport::new(scenario, label);
        report.param("connections", clients.connections);
        report.param("servers", &servers);
        report.param("procs", procs);
        report.param("src_addrs", plan.src_addrs.len());
        report.param("connect_rate", clients.rate);
        report.param("concurrency", clients.concurrency);
        report.param("token_threads_per_proc", clients.token_threads);
        report.param("id_base", id_base);
        report.param("deflate", clients.deflate);
        if target.node_pids.is_empty() {
            report.note("no --node-pid given: node memory and CPU are not measured");
        }
        Ok(Session {
            helper,
            fleet,
            meter,
            plan,
            id_base,
            connections: clients.connections,
            report,
            rate: clients.rate,
            connect_timeout: clients.connect_timeout,
        })
    }

    /// The ids of this run's clients.
    pub fn id_range(&self) -> std::ops::Range<i64> {
        self.id_base..self.id_base + self.connections as i64
    }

    /// Opens every client once (paced) and waits until each opened or failed.
    pub fn connect_all(&mut self) -> Result<ClientStats> {
        self.fleet.send_all(&Command::Connect)?;
        let pacing = if self.rate > 0.0 {
            self.connections as f64 / self.rate
        } else {
            0.0
        };
        let limit = Duration::from_secs_f64(pacing * 2.0 + 60.0) + self.connect_timeout;
        let reports = self
            .fleet
            .collect(limit, |r| matches!(r, Report::Connected(_)))?;
        Ok(ClientStats::sum(reports.into_iter().filter_map(
            |r| match r {
                Report::Connected(s) => Some(s),
                _ => None,
            },
        )))
    }

    /// Closes every client with a close handshake; the totals afterwards.
    pub fn close_all(&mut self) -> Result<ClientStats> {
        self.fleet.send_all(&Command::Close)?;
        let reports = self
            .fleet
            .collect(Duration::from_secs(60), |r| matches!(r, Report::Closed(_)))?;
        Ok(ClientStats::sum(reports.into_iter().filter_map(
            |r| match r {
                Report::Closed(s) => Some(s),
                _ => None,
            },
        )))
    }

    /// Current totals (with histograms when `full`).
    pub fn totals(&mut self, full: bool) -> Result<ClientStats> {
        Ok(ClientStats::sum(self.fleet.stats(full)?))
    }

    /// Adds the connect figures common to every scenario.
    pub fn report_connects(&mut self, totals: &ClientStats) {
        let r = &mut self.report;
        r.figure("connections_ok", totals.handshakes);
        r.figure("connect_failures", &totals.failures);
        r.figure("handshakes_per_s", totals.handshakes_per_s());
        let hs = totals.handshake.summary();
        r.figure("handshake_p50_ms", hs.p50_ms);
        r.figure("handshake_p99_ms", hs.p99_ms);
        r.figure("handshake_max_ms", hs.max_ms);
    }

    /// Closes the clients, records what closing found, and stops the workers.
    pub fn finish(mut self) -> Result<RunReport> {
        let closed = self.close_all()?;
        if !closed.dropped.is_empty() {
            self.report.figure("dropped_by_server", &closed.dropped);
        }
        self.fleet.shutdown();
        Ok(self.report)
    }
}

/// Refuses servers that are not on this machine: load goes to loopback only.
fn check_loopback(server: &str) -> Result<()> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = server
        .to_socket_addrs()
        .with_context(|| format!("server {server:?} is not host:port"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!("server {server} is not a loopback address: this tool only loads local nodes");
    }
    Ok(())
}

/// Ends the process (and so every worker, whose stdin closes) once the
/// run's time limit is over.
fn arm_watchdog(limit: Duration) {
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            eprintln!("freeim-loadtest: the run exceeded --timeout {limit:?}; stopping");
            std::process::exit(3);
        });
}

/// Reads the node's, Redis's and the load generator's own figures.
#[derive(Debug, Clone)]
pub struct Meter {
    /// The node processes.
    pub node_pids: Vec<u32>,
    /// The Redis process.
    pub redis_pid: Option<u32>,
    /// The worker processes.
    pub worker_pids: Vec<u32>,
}

/// Figures at one moment.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// When (monotonic ns).
    pub at_ns: u64,
    /// Each node.
    pub nodes: Vec<ProcSample>,
    /// Redis.
    pub redis: Option<ProcSample>,
    /// The coordinator and its workers.
    pub loadgen_ticks: u64,
    /// Machine CPU (busy, total) ticks.
    pub machine: (u64, u64),
    /// Kernel socket counters.
    pub sockstat: Sockstat,
    /// Kernel slab memory, KiB.
    pub slab_kib: u64,
}

impl Usage {
    /// The nodes' resident memory added up, KiB.
    pub fn node_rss_kib(&self) -> u64 {
        self.nodes.iter().map(|n| n.rss_kib).sum()
    }
}

impl Meter {
    /// Samples everything now. A node that cannot be read counts as zero.
    pub fn sample(&self) -> Usage {
        let loadgen_ticks = std::iter::once(std::process::id())
            .chain(self.worker_pids.iter().copied())
            .filter_map(|pid| procfs::sample(pid).ok())
            .map(|s| s.cpu_ticks)
            .sum();
        Usage {
            at_ns: now_ns(),
            nodes: self
                .node_pids
                .iter()
                .map(|&pid| procfs::sample(pid).unwrap_or_default())
                .collect(),
            redis: self.redis_pid.and_then(|pid| procfs::sample(pid).ok()),
            loadgen_ticks,
            machine: procfs::machine_cpu(),
            sockstat: procfs::sockstat(),
            slab_kib: procfs::slab_kib(),
        }
    }
}

/// CPU used between two samples.
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// The nodes' CPU time, seconds.
    pub node_s: f64,
    /// Per node thread name, seconds.
    pub node_threads: BTreeMap<String, f64>,
    /// Redis's CPU time, seconds (when measured).
    pub redis_s: Option<f64>,
    /// The load generator's CPU time, seconds.
    pub loadgen_s: f64,
    /// The whole machine's busy share, percent of all cores.
    pub machine_busy_pct: f64,
}

impl CpuUse {
    /// The CPU used from `a` to `b`.
    pub fn between(a: &Usage, b: &Usage) -> CpuUse {
        let hz = clock_ticks_per_second() as f64;
        let secs = |ticks: u64| ticks as f64 / hz;
        let ns = |ns: u64| ns as f64 / 1e9;
        let node_ns = |u: &Usage| u.nodes.iter().map(|n| n.live_cpu_ns).sum::<u64>();
        let mut node_threads = BTreeMap::new();
        for (before, after) in a.nodes.iter().zip(&b.nodes) {
            for (name, used) in &after.threads {
                let start = before.threads.get(name).copied().unwrap_or(0);
                *node_threads.entry(name.clone()).or_insert(0.0) += ns(used.saturating_sub(start));
            }
        }
        let (busy, total) = (
            b.machine.0.saturating_sub(a.machine.0),
            b.machine.1.saturating_sub(a.machine.1),
        );
        CpuUse {
            wall_s: b.at_ns.saturating_sub(a.at_ns) as f64 / 1e9,
            node_s: ns(node_ns(b).saturating_sub(node_ns(a))),
            node_threads,
            redis_s: match (&a.redis, &b.redis) {
                (Some(x), Some(y)) => Some(ns(y.live_cpu_ns.saturating_sub(x.live_cpu_ns))),
                _ => None,
            },
            loadgen_s: secs(b.loadgen_ticks.saturating_sub(a.loadgen_ticks)),
            machine_busy_pct: if total > 0 {
                busy as f64 * 100.0 / total as f64
            } else {
                0.0
            },
        }
    }

    /// Node CPU as a percentage of one core.
    pub fn node_pct(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.node_s * 100.0 / self.wall_s
        } else {
            0.0
        }
    }

    /// Adds the CPU figures to `report`, names prefixed with `prefix`.
    pub fn add_to(&self, report: &mut RunReport, prefix: &str) {
        report.figure(&format!("{prefix}wall_s"), self.wall_s);
        report.figure(&format!("{prefix}node_cpu_s"), self.node_s);
        report.figure(&format!("{prefix}node_cpu_pct_of_core"), self.node_pct());
        let threads: BTreeMap<&String, f64> = self
            .node_threads
            .iter()
            .filter(|(_, s)| **s >= 0.0005)
            .map(|(k, v)| (k, *v))
            .collect();
        report.figure(&format!("{prefix}node_thread_cpu_s"), threads);
        if let Some(redis) = self.redis_s {
            report.figure(&format!("{prefix}redis_cpu_s"), redis);
        }
        report.figure(&format!("{prefix}loadgen_cpu_s"), self.loadgen_s);
        report.figure(&format!("{prefix}machine_busy_pct"), self.machine_busy_pct);
    }
}
