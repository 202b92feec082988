//! `p2p`, `fanout` and `broadcast`: connected clients receive probe messages
//! sent through imhelper; the report has delivery rate, latency per
//! delivery, losses, node CPU per delivery, and the node's memory over the
//! run (before the first send, peak while sending and draining, after the
//! drain, and after an optional idle `--settle`).
//!
//! With `--read-rate` (and usually `--recv-buffer`) the clients are slow
//! readers: what they have not read yet backs up into the kernel's buffers
//! and then into the node's send queues, which is what the memory figures
//! show.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::MessageArgs;
use crate::rss::{RssFigures, RssSampler};
use crate::senders::{self, Audience, SendPlan};
use crate::session::{CpuUse, Session};
use crate::sys::now_ns;

/// Which message scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `send_message` to one random receiver per message.
    P2p,
    /// `send_chan_message` to one channel holding every client.
    Fanout,
    /// `send_broadcast_message`.
    Broadcast,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::P2p => "p2p",
            Kind::Fanout => "fanout",
            Kind::Broadcast => "broadcast",
        }
    }
}

/// Runs the scenario and emits its report.
pub fn run(kind: Kind, args: &MessageArgs) -> Result<()> {
    if args.batch > 1 && !matches!(kind, Kind::P2p) {
        bail!("--batch applies to p2p only");
    }
    let mut s = Session::start(
        kind.name(),
        &args.target,
        &args.clients,
        &args.output,
        false,
        args.reader(),
    )?;
    let rate = if args.burst.is_some() {
        0.0
    } else {
        args.msg_rate
    };
    s.report.param("senders", args.senders);
    s.report.param("batch", args.batch);
    s.report.param("msg_rate", rate);
    match args.burst {
        Some(burst) => s.report.param("burst", burst),
        None => s.report.param("duration_s", args.duration.as_secs_f64()),
    }
    s.report.param("payload_bytes", args.payload_bytes);
    s.report.param("read_rate", args.read_rate);
    if let Some(bytes) = args.recv_buffer {
        s.report.param("recv_buffer", bytes);
        if let Some(effective) = crate::sys::effective_recv_buffer(bytes as usize) {
            s.report.param("recv_buffer_effective", effective);
        }
    }
    if !args.settle.is_zero() {
        s.report.param("settle_s", args.settle.as_secs_f64());
    }

    let connected = s.connect_all()?;
    s.report_connects(&connected);
    let failed: std::collections::HashSet<i64> = connected.failed_ids.iter().copied().collect();
    let online: Vec<i64> = s.id_range().filter(|id| !failed.contains(id)).collect();
    if online.is_empty() {
        bail!("no client connected: nothing to send to");
    }
    let audience = match kind {
        Kind::P2p => Audience::Random(Arc::new(online.clone())),
        Kind::Fanout => {
            let chan = args
                .chan
                .clone()
                .unwrap_or_else(|| format!("loadtest-{}", s.id_base));
            join_all(&s, &chan, &online)?;
            s.report.param("chan", &chan);
            s.report
                .figure("chan_members", s.helper.get_chan_online(&chan)?);
            Audience::Chan(chan)
        }
        Kind::Broadcast => Audience::Broadcast,
    };
    let per_message = match kind {
        Kind::P2p => 1,
        Kind::Fanout | Kind::Broadcast => connected.open,
    };

    let plan = SendPlan {
        threads: args.senders,
        rate,
        duration: if args.burst.is_some() {
            args.duration.max(Duration::from_secs(600))
        } else {
            args.duration
        },
        limit: args.burst,
        padding: args.payload_bytes,
        batch: args.batch as usize,
    };
    let sampler = (!s.meter.node_pids.is_empty()).then(|| RssSampler::for_pids(&s.meter.node_pids));
    let before = s.meter.sample();
    let sent = senders::send(&s.helper, &audience, &plan);
    let expected = sent.sent * per_message;
    let drained = drain(&mut s, expected, args.drain)?;
    let received = drained.received;
    let rss_drained = sampler.as_ref().map(RssSampler::mark);
    let after = s.meter.sample();
    let totals = s.totals(true)?;
    let cpu = CpuUse::between(&before, &after);

    let r = &mut s.report;
    r.figure("messages_sent", sent.sent);
    r.figure("send_errors", &sent.errors);
    r.figure("send_rate_per_s", sent.rate());
    r.figure("send_max_lag_ms", sent.max_lag_ms);
    let call = sent.call.summary();
    r.figure("imhelper_call_p50_ms", call.p50_ms);
    r.figure("imhelper_call_p99_ms", call.p99_ms);
    r.figure("deliveries_expected", expected);
    r.figure("deliveries", received);
    let lost = expected as i64 - received as i64;
    r.figure("lost", lost.max(0));
    if lost < 0 {
        r.figure("duplicates", -lost);
    }
    let span = totals.last_recv_ns.saturating_sub(sent.first_ns);
    let delivered_per_s = if span > 0 {
        received as f64 * 1e9 / span as f64
    } else {
        0.0
    };
    r.figure("delivered_per_s", delivered_per_s);
    let lat = totals.latency.summary();
    r.figure("latency_p50_ms", lat.p50_ms);
    r.figure("latency_p90_ms", lat.p90_ms);
    r.figure("latency_p99_ms", lat.p99_ms);
    r.figure("latency_p999_ms", lat.p999_ms);
    r.figure("latency_max_ms", lat.max_ms);
    r.figure("latency_mean_ms", lat.mean_ms);
    r.figure("drain_wait_s", drained.waited_s);
    if totals.received > 0 {
        r.figure(
            "message_bytes_mean",
            totals.received_bytes as f64 / totals.received as f64,
        );
        r.figure(
            "wire_bytes_per_delivery",
            totals.wire_bytes as f64 / totals.received as f64,
        );
        r.figure(
            "deflated_share",
            totals.deflated as f64 / (totals.received + totals.other_messages) as f64,
        );
    }
    if drained.cut_short && received < expected {
        r.note(format!(
            "--drain {:?} ended while deliveries were still arriving: raise --drain \
             (slow readers need about backlog per connection / --read-rate)",
            args.drain
        ));
    }
    let n = received.max(1) as f64;
    r.figure("node_cpu_us_per_delivery", cpu.node_s * 1e6 / n);
    r.figure("node_cpu_s_per_million_deliveries", cpu.node_s * 1e6 / n);
    if kind != Kind::P2p && sent.sent > 0 {
        r.figure(
            "node_cpu_us_per_message",
            cpu.node_s * 1e6 / sent.sent as f64,
        );
    }
    if let Some(redis) = cpu.redis_s {
        r.figure("redis_cpu_us_per_delivery", redis * 1e6 / n);
    }
    cpu.add_to(r, "");
    if !totals.dropped.is_empty() {
        r.figure("dropped_during_run", &totals.dropped);
    }
    if totals.other_messages > 0 {
        r.figure("other_messages", totals.other_messages);
    }
    if let (Some(sampler), Some(rss_drained)) = (sampler, rss_drained) {
        let rss_settled = if args.settle.is_zero() {
            None
        } else {
            super::pause(args.settle);
            let settled = sampler.mark();
            let idle = CpuUse::between(&after, &s.meter.sample());
            s.report
                .figure("settle_node_cpu_pct_of_core", idle.node_pct());
            Some(settled)
        };
        let rss_before = sampler.first();
        let series = sampler.stop();
        RssFigures::from_series(&series, rss_before, rss_drained, rss_settled)
            .add_to(&mut s.report);
    } else if !args.settle.is_zero() {
        super::pause(args.settle);
    }
    let helper = s.helper.clone();
    let mut report = s.finish()?;
    if let Audience::Chan(chan) = &audience {
        // The node clears a client's memberships when its last socket closes.
        let deadline = now_ns() + 5_000_000_000;
        let mut left = helper.get_chan_online(chan)?;
        while left > 0 && now_ns() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = helper.get_chan_online(chan)?;
        }
        report.figure("chan_members_after_close", left);
    }
    report.emit(&args.output)
}

/// Joins every client to `chan`, from a few threads.
fn join_all(s: &Session, chan: &str, ids: &[i64]) -> Result<()> {
    let chunks: Vec<&[i64]> = ids.chunks(ids.len().div_ceil(4).max(1)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let helper = &s.helper;
                scope.spawn(move || -> Result<()> {
                    for &id in chunk {
                        helper.join_chan(id, &[chan])?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("join thread")?;
        }
        Ok(())
    })
}

/// How the wait for deliveries ended.
struct Drained {
    /// Probes received in all.
    received: u64,
    /// Seconds waited after the last send.
    waited_s: f64,
    /// The wait hit `--drain` while deliveries were still coming.
    cut_short: bool,
}

/// Waits until `expected` probes arrived, deliveries stop for two seconds
/// after the first one came (a node still routing a large burst may deliver
/// nothing for longer at first), or `limit` passes.
fn drain(s: &mut Session, expected: u64, limit: Duration) -> Result<Drained> {
    let start = now_ns();
    let deadline = start + limit.as_nanos() as u64;
    let mut last = 0;
    let mut last_change = start;
    loop {
        let received = s.totals(false)?.received;
        let now = now_ns();
        if received != last {
            last = received;
            last_change = now;
        }
        let stalled = received > 0 && now.saturating_sub(last_change) > 2_000_000_000;
        if received >= expected || now >= deadline || stalled {
            return Ok(Drained {
                received,
                waited_s: (now - start) as f64 / 1e9,
                cut_short: received < expected && !stalled,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
