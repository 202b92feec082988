//! `idle`: open N connections at a pace, hold them, and measure what an idle
//! connection costs the node (memory, CPU) and the kernel.

use anyhow::Result;

use crate::cli::IdleArgs;
use crate::control::ReaderConfig;
use crate::procfs::page_size;
use crate::session::{CpuUse, Session};

/// Runs the scenario and emits its report.
pub fn run(args: &IdleArgs) -> Result<()> {
    let mut s = Session::start(
        "idle",
        &args.target,
        &args.clients,
        &args.output,
        false,
        ReaderConfig::default(),
    )?;
    s.report.param("hold_s", args.hold.as_secs_f64());
    let before = s.meter.sample();
    let totals = s.connect_all()?;
    let connected = s.meter.sample();
    s.report_connects(&totals);
    let ok = totals.handshakes.max(1) as f64;
    let connect_cpu = CpuUse::between(&before, &connected);
    s.report.figure(
        "connect_node_cpu_us_per_handshake",
        connect_cpu.node_s * 1e6 / ok,
    );
    if let Some(redis) = connect_cpu.redis_s {
        s.report
            .figure("connect_redis_cpu_us_per_handshake", redis * 1e6 / ok);
    }

    super::pause(args.settle);
    let held_from = s.meter.sample();
    super::pause(args.hold);
    let held_to = s.meter.sample();
    let during = s.totals(false)?;

    let r = &mut s.report;
    let rss_delta = held_to.node_rss_kib() as f64 - before.node_rss_kib() as f64;
    r.figure("node_rss_before_kib", before.node_rss_kib());
    r.figure("node_rss_connected_kib", held_from.node_rss_kib());
    r.figure("node_rss_after_hold_kib", held_to.node_rss_kib());
    r.figure("node_rss_delta_mib", rss_delta / 1024.0);
    r.figure("node_rss_per_conn_bytes", rss_delta * 1024.0 / ok);
    let (sb, sa) = (before.sockstat, held_to.sockstat);
    r.figure("sockstat_before", sb);
    r.figure("sockstat_after", sa);
    let page = page_size() as f64;
    let tcp_mem_delta = (sa.tcp_mem_pages as f64 - sb.tcp_mem_pages as f64) * page;
    r.figure("kernel_tcp_buffer_bytes_per_conn", tcp_mem_delta / ok);
    let slab_delta = (held_to.slab_kib as f64 - before.slab_kib as f64) * 1024.0;
    r.figure("kernel_slab_bytes_per_conn_both_ends", slab_delta / ok);
    let hold = CpuUse::between(&held_from, &held_to);
    r.figure("idle_node_cpu_pct_of_core", hold.node_pct());
    hold.add_to(r, "hold_");
    r.figure("open_at_end_of_hold", during.open);
    r.figure("dropped_during_hold", &during.dropped);
    r.figure("pings_answered", during.pings);
    r.note(
        "node RSS per connection is only meaningful on a freshly started node \
         (memory freed by an earlier run is reused, not returned)",
    );
    let report = s.finish()?;
    report.emit(&args.output)
}
