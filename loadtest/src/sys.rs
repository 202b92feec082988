//! Small system helpers: the clock shared by every process of a run, the
//! open-file limit, and what the kernel makes of a receive-buffer size.

/// `CLOCK_MONOTONIC` in nanoseconds. The clock is system-wide, so a
/// timestamp taken in the coordinator (at the send) and one taken in a
/// worker process (at the delivery) can be subtracted.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Raises the soft open-file limit to the hard limit and returns the new
/// soft limit (the old one if it cannot be raised, 1024 if unreadable).
pub fn raise_nofile_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::Resource::NOFILE.get_soft())
        .unwrap_or(1024)
}

/// Kernel clock ticks per second (the unit of utime/stime in `/proc`).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// The `SO_RCVBUF` a TCP socket really gets when `bytes` is asked for (Linux
/// doubles the value for its bookkeeping and caps it at
/// `net.core.rmem_max`), in bytes; `None` if no socket could be made.
pub fn effective_recv_buffer(bytes: usize) -> Option<usize> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
    socket.set_recv_buffer_size(bytes).ok()?;
    socket.recv_buffer_size().ok()
}

/// Seconds since the Unix epoch (for report time stamps and id bases).
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now_ns() >= a + 1_000_000);
    }

    #[test]
    fn raising_the_open_file_limit_reaches_the_hard_limit() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(raise_nofile_limit(), hard);
        assert_eq!(rlimit::Resource::NOFILE.get_soft().unwrap(), hard);
    }

    #[test]
    fn receive_buffers_are_at_least_what_was_asked() {
        let got = effective_recv_buffer(8192).unwrap();
        assert!(got >= 8192, "{got}");
    }
}
