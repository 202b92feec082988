//! `storm`: N clients connect at once (tokens fetched beforehand); the
//! report has handshakes/s and the time until every client is online, by
//! the online events and by polling `get_client_list_by_online`.

use std::time::Duration;

use anyhow::Result;

use crate::cli::StormArgs;
use crate::control::{Command, ReaderConfig, Report};
use crate::events::EventCounter;
use crate::session::{CpuUse, Session};
use crate::sys::now_ns;

/// Runs the scenario and emits its report.
pub fn run(args: &StormArgs) -> Result<()> {
    let mut clients = args.clients.clone();
    clients.rate = 0.0;
    let mut s = Session::start(
        "storm",
        &args.target,
        &clients,
        &args.output,
        false,
        ReaderConfig::default(),
    )?;
    let events = EventCounter::start(&s.helper, s.id_range())?;

    let primed_at = now_ns();
    s.fleet.send_all(&Command::Prime)?;
    let primed = s.fleet.collect(Duration::from_secs(60), |r| {
        matches!(r, Report::Primed { .. })
    })?;
    let (mut tokens, mut token_failures) = (0, 0);
    for report in primed {
        if let Report::Primed {
            tokens: t,
            failures,
        } = report
        {
            tokens += t;
            token_failures += failures;
        }
    }
    let prime_s = (now_ns() - primed_at) as f64 / 1e9;
    s.report.figure("tokens_primed", tokens);
    s.report.figure("token_failures", token_failures);
    s.report
        .figure("tokens_per_s", tokens as f64 / prime_s.max(1e-9));

    let before = s.meter.sample();
    let totals = s.connect_all()?;
    s.report_connects(&totals);
    let start = totals.first_connect_ns;
    let target = totals.handshakes;

    // Poll the Online hash until every opened client is listed.
    let deadline = now_ns() + args.online_timeout.as_nanos() as u64;
    let range = s.id_range();
    let mut listed = 0u64;
    let mut poll_done_at = None;
    while now_ns() < deadline {
        listed = s
            .helper
            .get_client_list_by_online()?
            .into_iter()
            .filter(|id| range.contains(id))
            .count() as u64;
        if listed >= target {
            poll_done_at = Some(now_ns());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    while events.online() < target && now_ns() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = s.meter.sample();
    let tally = events.tally();

    let r = &mut s.report;
    r.figure(
        "connect_span_s",
        totals.last_handshake_ns.saturating_sub(start) as f64 / 1e9,
    );
    r.figure("online_listed", listed);
    r.figure("online_events", tally.online);
    let secs = |at: u64| at.saturating_sub(start) as f64 / 1e9;
    match poll_done_at {
        Some(at) => r.figure("all_online_by_poll_s", secs(at)),
        None => r.note("not every opened client was listed online before --online-timeout"),
    }
    if target > 0 && tally.online_at.len() as u64 >= target {
        r.figure(
            "all_online_by_events_s",
            secs(tally.online_at[target as usize - 1]),
        );
    }
    let cpu = CpuUse::between(&before, &after);
    let ok = target.max(1) as f64;
    r.figure("node_cpu_us_per_handshake", cpu.node_s * 1e6 / ok);
    if let Some(redis) = cpu.redis_s {
        r.figure("redis_cpu_us_per_handshake", redis * 1e6 / ok);
    }
    cpu.add_to(r, "");
    drop(events);
    let report = s.finish()?;
    report.emit(&args.output)
}
