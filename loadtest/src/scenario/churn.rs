//! `churn`: clients connect and disconnect in a loop (clean closes, abrupt
//! drops, upgrades abandoned half-way); afterwards the presence the nodes
//! keep — the `{prefix}Online` hash and the online/offline events — must
//! agree with the sockets really open, and again after every client closed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use anyhow::{Context, Result};
use freeim_protocol::{key_slot, Directory, Layout};

use crate::cli::ChurnArgs;
use crate::control::{ChurnPlan, Command, ReaderConfig, Report};
use crate::events::EventCounter;
use crate::session::{CpuUse, Session};
use crate::stats::ClientStats;
use crate::sys::now_ns;

/// How presence disagrees with the sockets: counts of clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Mismatches {
    /// Listed by `get_client_list_by_online` but not open, or open but not listed.
    pub online_list: u64,
    /// Whose socket count in the Online hash differs from the open sockets.
    pub online_counts: u64,
    /// Whose online minus offline events differ from the open sockets.
    pub events: u64,
}

impl Mismatches {
    fn total(&self) -> u64 {
        self.online_list + self.online_counts + self.events
    }
}

/// Runs the scenario and emits its report.
pub fn run(args: &ChurnArgs) -> Result<()> {
    let mut s = Session::start(
        "churn",
        &args.target,
        &args.clients,
        &args.output,
        true,
        ReaderConfig::default(),
    )?;
    let plan = ChurnPlan {
        duration_ms: args.duration.as_millis() as u64,
        life_ms: args.life.as_millis() as u64,
        pause_ms: args.pause.as_millis() as u64,
        abrupt_ratio: args.abrupt_ratio,
        abort_ratio: args.abort_ratio,
    };
    s.report.param("duration_s", args.duration.as_secs_f64());
    s.report.param("life_ms", plan.life_ms);
    s.report.param("pause_ms", plan.pause_ms);
    s.report.param("abrupt_ratio", plan.abrupt_ratio);
    s.report.param("abort_ratio", plan.abort_ratio);
    let events = EventCounter::start(&s.helper, s.id_range())?;
    let online = OnlineHashes::new(&args.target)?;

    let initial = s.connect_all()?;
    s.report
        .figure("initial_connections_ok", initial.handshakes);
    let before = s.meter.sample();
    s.fleet.send_all(&Command::Churn(plan))?;
    let limit = args.duration + Duration::from_secs(60);
    let done = s
        .fleet
        .collect(limit, |r| matches!(r, Report::ChurnDone { .. }))?;
    let after = s.meter.sample();
    let mut open: HashMap<i64, u32> = HashMap::new();
    let mut stats = Vec::new();
    for report in done {
        if let Report::ChurnDone { stats: st, open: o } = report {
            stats.push(st);
            for (id, n) in o {
                *open.entry(id).or_insert(0) += n;
            }
        }
    }
    let totals = ClientStats::sum(stats);
    let range = s.id_range();

    let r = &mut s.report;
    let attempts = totals.attempts - initial.attempts;
    let handshakes = totals.handshakes - initial.handshakes;
    let churn_s = CpuUse::between(&before, &after).wall_s;
    r.figure("connects_attempted", attempts);
    r.figure("connects_ok", handshakes);
    r.figure("connects_per_s", handshakes as f64 / churn_s.max(1e-9));
    r.figure("clean_closes", totals.closed);
    r.figure("abrupt_closes", totals.abrupt_closes);
    r.figure("aborted_upgrades", totals.aborted);
    r.figure("failures", &totals.failures);
    r.figure("dropped_by_server", &totals.dropped);
    let hs = totals.handshake.summary();
    r.figure("handshake_p50_ms", hs.p50_ms);
    r.figure("handshake_p99_ms", hs.p99_ms);
    let cpu = CpuUse::between(&before, &after);
    r.figure(
        "node_cpu_us_per_connect",
        cpu.node_s * 1e6 / handshakes.max(1) as f64,
    );
    cpu.add_to(r, "");
    let open_sockets: u64 = open.values().map(|&n| u64::from(n)).sum();
    r.figure("open_at_end", open_sockets);

    let (found, settle_s) = settle(&s, &online, &range, &events, &open, args.settle)?;
    let tally = events.tally();
    let r = &mut s.report;
    r.figure("online_events", tally.online);
    r.figure("offline_events", tally.offline);
    r.figure("mismatches", found);
    r.figure("mismatch_total", found.total());
    r.figure("settle_s", settle_s);

    let closed = s.close_all()?;
    let none = HashMap::new();
    let (after_close, close_settle_s) = settle(&s, &online, &range, &events, &none, args.settle)?;
    let tally = events.tally();
    let r = &mut s.report;
    r.figure("final_closes", closed.closed - totals.closed);
    r.figure("mismatches_after_close", after_close);
    r.figure("mismatch_total_after_close", after_close.total());
    r.figure("after_close_settle_s", close_settle_s);
    r.figure("online_events_total", tally.online);
    r.figure("offline_events_total", tally.offline);
    if found.total() + after_close.total() > 0 {
        r.note("presence disagrees with the open sockets: see mismatches");
    }
    drop(events);
    s.fleet.shutdown();
    s.report.emit(&args.output)
}

/// Compares presence with `open` until they agree or `limit` passes;
/// returns the last comparison and the time it took.
fn settle(
    s: &Session,
    online: &OnlineHashes,
    range: &Range<i64>,
    events: &EventCounter,
    open: &HashMap<i64, u32>,
    limit: Duration,
) -> Result<(Mismatches, f64)> {
    let start = now_ns();
    let deadline = start + limit.as_nanos() as u64;
    loop {
        let found = compare(s, online, range, events, open)?;
        let now = now_ns();
        if found.total() == 0 || now >= deadline {
            return Ok((found, (now - start) as f64 / 1e9));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn compare(
    s: &Session,
    online: &OnlineHashes,
    range: &Range<i64>,
    events: &EventCounter,
    open: &HashMap<i64, u32>,
) -> Result<Mismatches> {
    let listed: HashSet<i64> = s
        .helper
        .get_client_list_by_online()?
        .into_iter()
        .filter(|id| range.contains(id))
        .collect();
    let expected: HashSet<i64> = open
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(&id, _)| id)
        .collect();
    let online_list = listed.symmetric_difference(&expected).count() as u64;

    let counts: HashMap<i64, i64> = online
        .counts()?
        .into_iter()
        .filter(|(id, _)| range.contains(id))
        .collect();
    let tally = events.tally();
    let ids: HashSet<i64> = counts
        .keys()
        .chain(open.keys())
        .chain(tally.net.keys())
        .copied()
        .collect();
    let mut online_counts = 0;
    let mut event_mismatch = 0;
    for id in ids {
        let want = i64::from(open.get(&id).copied().unwrap_or(0));
        if counts.get(&id).copied().unwrap_or(0) != want {
            online_counts += 1;
        }
        if tally.net.get(&id).copied().unwrap_or(0) != want {
            event_mismatch += 1;
        }
    }
    Ok(Mismatches {
        online_list,
        online_counts,
        events: event_mismatch,
    })
}

/// Every partition's `{prefix}Online` hash: one with one Redis, one per
/// node in a Redis Cluster (read on the master of its slot).
struct OnlineHashes {
    url: redis_link::RedisUrl,
    keys: Vec<String>,
}

impl OnlineHashes {
    fn new(target: &crate::cli::TargetArgs) -> Result<OnlineHashes> {
        let url: redis_link::RedisUrl = target.redis.parse().context("the Redis URL")?;
        let layout = Layout::for_redis(url.is_cluster());
        let directory = Directory::new(layout, &target.path, &target.server_list());
        let keys = directory.partitions().map(|keys| keys.online()).collect();
        Ok(OnlineHashes { url, keys })
    }

    /// Open-socket counts by client id, summed over the partitions.
    fn counts(&self) -> Result<HashMap<i64, i64>> {
        let mut counts = HashMap::new();
        for key in &self.keys {
            let mut conn = self
                .url
                .connect_to_slot(key_slot(key), Duration::from_secs(5))
                .context("connecting to Redis")?;
            let hash: BTreeMap<String, i64> = redis::cmd("HGETALL").arg(key).query(&mut conn)?;
            for (id, count) in hash {
                if let Ok(id) = id.parse::<i64>() {
                    *counts.entry(id).or_insert(0) += count;
                }
            }
        }
        Ok(counts)
    }
}
