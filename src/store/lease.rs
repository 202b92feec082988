//! This node's lease on its name, `{prefix}Alive{server}`: one live node per
//! `--server`.
//!
//! The lease's value names its holder, `pid@host`; a live node renews it every
//! few seconds, and it lapses `LEASE_TTL` after the last renewal. At start-up a
//! node [claims](Lease::claim) it:
//! - free: taken at once;
//! - held by a process of this host that is gone (a crash, or this very
//!   process id reused in a fresh container): taken at once;
//! - held by a live process of this host: refused at once;
//! - held from another host: watched for up to one lease interval; renewed
//!   meanwhile means a live node (refused), lapsed means a dead one (taken).
//!
//! `--take-over` takes it whatever holds it. A node whose lease another run
//! took over finds out at its next renewal and exits at once, leaving presence
//! to the node that now holds the name.

use super::error::LeaseError;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long the lease lives without a renewal, in seconds.
pub const LEASE_TTL_SECS: u64 = 15;

/// Sets the lease if it is free or already ours: 1, else the holder.
const RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return holder
";

/// Deletes the lease if it is ours.
const END: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What a renewal found.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours, for another lease interval.
    Renewed,
    /// Another run holds the name now (`--take-over`).
    TakenBy(String),
}

/// This process's lease on one node name.
pub struct Lease {
    key: String,
    holder: String,
}

impl Lease {
    /// The lease at `key`, held as this process (`pid@host`).
    pub fn new(key: String) -> Lease {
        Lease {
            key,
            holder: format!("{}@{}", std::process::id(), host_name()),
        }
    }

    /// Takes the lease at start-up (see the module docs); `server` names it
    /// in errors. Returns the previous holder it replaced, if any.
    ///
    /// # Errors
    /// [`LeaseError`] naming the live holder, or the Redis error.
    pub fn claim(
        &self,
        conn: &mut redis::Connection,
        server: &str,
        take_over: bool,
    ) -> Result<Option<String>, LeaseError> {
        let redis_error = |source| LeaseError::Redis {
            server: server.to_string(),
            source,
        };
        let deadline = Instant::now() + Duration::from_secs(LEASE_TTL_SECS + 1);
        let mut watched: Option<i64> = None;
        loop {
            let (holder, ttl_ms): (Option<String>, i64) = redis::pipe()
                .cmd("GET")
                .arg(&self.key)
                .cmd("PTTL")
                .arg(&self.key)
                .query(conn)
                .map_err(redis_error)?;
            let Some(holder) = holder else {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&self.key)
                    .arg(&self.holder)
                    .arg("NX")
                    .arg("EX")
                    .arg(LEASE_TTL_SECS)
                    .query(conn)
                    .map_err(redis_error)?;
                match set {
                    Some(_) => return Ok(None),
                    None => continue, // taken between the two requests: look again
                }
            };
            let verdict = if take_over {
                Holder::Gone
            } else {
                judge(&holder, std::process::id(), &host_name())
            };
            match verdict {
                Holder::Gone => {
                    redis::cmd("SET")
                        .arg(&self.key)
                        .arg(&self.holder)
                        .arg("EX")
                        .arg(LEASE_TTL_SECS)
                        .query::<()>(conn)
                        .map_err(redis_error)?;
                    return Ok(Some(holder));
                }
                Holder::Alive => {
                    return Err(LeaseError::HeldHere {
                        server: server.to_string(),
                        holder,
                    })
                }
                Holder::Remote if watched.is_some_and(|last| ttl_ms > last) => {
                    return Err(LeaseError::HeldElsewhere {
                        server: server.to_string(),
                        holder,
                    })
                }
                Holder::Remote if Instant::now() >= deadline => {
                    return Err(LeaseError::Stuck {
                        server: server.to_string(),
                        holder,
                    })
                }
                Holder::Remote => {
                    if watched.is_none() {
                        log::warn!(
                            "--server {server} is leased to {holder} for {} ms more: waiting to \
                             see whether it is renewed (a live node) or lapses (a dead one)",
                            ttl_ms
                        );
                    }
                    watched = Some(ttl_ms);
                    sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Takes the lease whoever holds it (from a process that handed this
    /// one its connections and retired).
    pub fn take(&self, conn: &mut redis::Connection) -> redis::RedisResult<()> {
        redis::cmd("SET")
            .arg(&self.key)
            .arg(&self.holder)
            .arg("EX")
            .arg(LEASE_TTL_SECS)
            .query(conn)
    }

    /// Renews the lease if it is still ours.
    pub fn renew(&self, conn: &mut redis::Connection) -> redis::RedisResult<Renewal> {
        let reply: redis::Value = redis::Script::new(RENEW)
            .key(&self.key)
            .arg(&self.holder)
            .arg(LEASE_TTL_SECS)
            .invoke(conn)?;
        Ok(match reply {
            redis::Value::BulkString(holder) => {
                Renewal::TakenBy(String::from_utf8_lossy(&holder).into_owned())
            }
            _ => Renewal::Renewed,
        })
    }

    /// Gives the lease up (at shutdown) if it is still ours.
    pub fn end(&self, conn: &mut redis::Connection) -> redis::RedisResult<()> {
        redis::Script::new(END)
            .key(&self.key)
            .arg(&self.holder)
            .invoke(conn)
    }
}

/// What the holder of a lease seems to be, from here.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// A process of this host that no longer runs (or this process's own id:
    /// a previous run in a fresh process namespace).
    Gone,
    /// A running process of this host.
    Alive,
    /// Another host's (or an unreadable value): only its renewals tell.
    Remote,
}

fn judge(holder: &str, own_pid: u32, own_host: &str) -> Holder {
    let Some((pid, host)) = holder.split_once('@') else {
        return Holder::Remote;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return Holder::Remote;
    };
    if host != own_host {
        Holder::Remote
    } else if pid == own_pid || !process_runs(pid) {
        Holder::Gone
    } else {
        Holder::Alive
    }
}

fn process_runs(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_judged_by_its_host_and_process() {
        let host = host_name();
        let own = std::process::id();
        assert_eq!(judge(&format!("{own}@{host}"), own, &host), Holder::Gone);
        let parent = std::os::unix::process::parent_id();
        assert_eq!(
            judge(&format!("{parent}@{host}"), own, &host),
            Holder::Alive
        );
        assert_eq!(
            judge(&format!("{}@{host}", i32::MAX), own, &host),
            Holder::Gone
        );
        assert_eq!(
            judge(&format!("{parent}@elsewhere"), own, &host),
            Holder::Remote
        );
        assert_eq!(
            judge("12345", own, &host),
            Holder::Remote,
            "an older node's value"
        );
    }
}
