//! Reading the figures of a run from `/proc`: a process's resident memory
//! and CPU time (per thread too), its resident memory alone (cheap enough to
//! poll every 100 ms, see [`crate::rss`]), the kernel's socket counters, and
//! the machine's CPU time.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// Memory and CPU of one process at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSample {
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
    /// utime + stime of the whole process (exited threads included), in
    /// clock ticks (10 ms resolution).
    pub cpu_ticks: u64,
    /// CPU time of the live threads, ns (from `schedstat`, exact); falls
    /// back to the ticks when `schedstat` is unavailable.
    pub live_cpu_ns: u64,
    /// CPU time per thread name, ns (threads of the same name added up).
    pub threads: BTreeMap<String, u64>,
}

/// Samples process `pid`.
pub fn sample(pid: u32) -> std::io::Result<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status_kib(&status, "VmRSS:").unwrap_or(0);
    let (_, cpu_ticks) = parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat"))?)
        .ok_or_else(|| std::io::Error::other("unparsable /proc/PID/stat"))?;
    let ns_per_tick = 1_000_000_000 / crate::sys::clock_ticks_per_second();
    let mut threads = BTreeMap::new();
    let mut live_cpu_ns = 0;
    let mut exact = true;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(text) = fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let Some((name, ticks)) = parse_stat(&text) else {
                continue;
            };
            let ns = match fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok())
            {
                Some(ns) => ns,
                None => {
                    exact = false;
                    ticks * ns_per_tick
                }
            };
            live_cpu_ns += ns;
            *threads.entry(name).or_insert(0) += ns;
        }
    }
    if !exact || threads.is_empty() {
        live_cpu_ns = cpu_ticks * ns_per_tick;
    }
    Ok(ProcSample {
        rss_kib,
        cpu_ticks,
        live_cpu_ns,
        threads,
    })
}

/// Process `pid`'s resident memory (`VmRSS`), in KiB: one small read of
/// `/proc/PID/status`, no per-thread files.
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_kib(&status, "VmRSS:")
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc/PID/status"))
}

/// A `KiB` figure from `/proc/PID/status` or `/proc/meminfo`.
fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The command name and utime + stime from a `stat` line.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Counters from `/proc/net/sockstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sockstat {
    /// `sockets: used`.
    pub sockets_used: u64,
    /// `TCP: inuse`.
    pub tcp_inuse: u64,
    /// `TCP: orphan`.
    pub tcp_orphan: u64,
    /// `TCP: tw` (TIME_WAIT).
    pub tcp_tw: u64,
    /// `TCP: alloc`.
    pub tcp_alloc: u64,
    /// `TCP: mem`, in pages: memory of socket buffers.
    pub tcp_mem_pages: u64,
}

/// Reads `/proc/net/sockstat` (zeros when unreadable).
pub fn sockstat() -> Sockstat {
    fs::read_to_string("/proc/net/sockstat")
        .map(|text| parse_sockstat(&text))
        .unwrap_or_default()
}

fn parse_sockstat(text: &str) -> Sockstat {
    let mut out = Sockstat::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let section = words.next().unwrap_or("");
        let words: Vec<&str> = words.collect();
        for pair in words.chunks_exact(2) {
            let value: u64 = pair[1].parse().unwrap_or(0);
            match (section, pair[0]) {
                ("sockets:", "used") => out.sockets_used = value,
                ("TCP:", "inuse") => out.tcp_inuse = value,
                ("TCP:", "orphan") => out.tcp_orphan = value,
                ("TCP:", "tw") => out.tcp_tw = value,
                ("TCP:", "alloc") => out.tcp_alloc = value,
                ("TCP:", "mem") => out.tcp_mem_pages = value,
                _ => {}
            }
        }
    }
    out
}

/// The kernel's slab memory (`Slab:` in `/proc/meminfo`), in KiB: socket
/// structures live there.
pub fn slab_kib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| status_kib(&text, "Slab:"))
        .unwrap_or(0)
}

/// The machine's CPU time from `/proc/stat`: (busy ticks, total ticks), all cores.
pub fn machine_cpu() -> (u64, u64) {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "1234 (loop (0)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("loop (0)".to_string(), 300)));
    }

    #[test]
    fn sockstat_parses() {
        let text = "sockets: used 290\nTCP: inuse 17 orphan 1 tw 2 alloc 21 mem 3\n\
                    UDP: inuse 1 mem 0\n";
        let s = parse_sockstat(text);
        assert_eq!(s.sockets_used, 290);
        assert_eq!(s.tcp_inuse, 17);
        assert_eq!(s.tcp_tw, 2);
        assert_eq!(s.tcp_mem_pages, 3);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_kib > 0);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(!me.threads.is_empty());
        let (busy, total) = machine_cpu();
        assert!(total >= busy);
    }
}
