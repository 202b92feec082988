//! `redis+sentinel://` URLs against real `redis-sentinel`s: the primary is
//! found, a failover is followed by the next connect, and while the named
//! primary is dead or hung a connect fails within its timeouts.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use redis::{Connection, ErrorKind, Value};
use redis_link::RedisUrl;
use testkit::{free_port, SentinelSet};

const TIMEOUT: Duration = Duration::from_secs(1);

fn parse(url: &str) -> RedisUrl {
    url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// `ROLE`'s first element.
fn role(connection: &mut Connection) -> String {
    match redis::cmd("ROLE").query::<Value>(connection).expect("ROLE") {
        Value::Array(items) => match items.first() {
            Some(Value::BulkString(role)) => String::from_utf8_lossy(role).into_owned(),
            other => panic!("ROLE starts with {other:?}"),
        },
        other => panic!("ROLE answered {other:?}"),
    }
}

/// The port of the server at the other end (`CONFIG GET port`).
fn server_port(connection: &mut Connection) -> u16 {
    let (_, port): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(connection)
        .expect("CONFIG GET port");
    port.parse().expect("a port number")
}

#[test]
fn connect_reaches_the_primary_and_follows_a_failover() {
    let mut set = SentinelSet::start("im-failover", 1000);
    let url = parse(&set.url());
    assert!(url.is_sentinel());
    let old = set.primary_port();

    let mut connection = url.connect(TIMEOUT).expect("connect through the sentinels");
    assert_eq!(role(&mut connection), "master");
    assert_eq!(server_port(&mut connection), old);
    redis::cmd("SET")
        .arg("k")
        .arg("before")
        .exec(&mut connection)
        .unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut connection).unwrap();
    assert_eq!(v, "before");
    // The replica has it before the primary goes.
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query(&mut connection)
        .unwrap();
    assert_eq!(acked, 1);

    // Sentinels that do not answer come first in the URL: one accepts TCP
    // but never answers (a hung host), one refuses. They cost at most one
    // timeout each, and the real sentinels are asked next.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hosts: Vec<String> = set
        .sentinel_ports()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let detour = parse(&format!(
        "redis+sentinel://127.0.0.1:{silent_port},127.0.0.1:{},{}/{}",
        free_port(),
        hosts.join(","),
        set.master_name()
    ));
    let started = Instant::now();
    let mut connection = detour
        .connect(TIMEOUT)
        .expect("connect past dead sentinels");
    let took = started.elapsed();
    assert_eq!(server_port(&mut connection), old);
    assert!(
        took < TIMEOUT * 3,
        "skipping two dead sentinels took {took:?}"
    );
    // The sentinel that answered is asked first from now on (by clones of
    // the URL too): the silent one costs nothing any more.
    let again = Instant::now();
    detour.clone().connect(TIMEOUT).expect("connect again");
    assert!(
        again.elapsed() < TIMEOUT / 2,
        "the answering sentinel was not asked first: {:?}",
        again.elapsed()
    );
    drop(silent);

    set.kill_primary();
    let killed_at = Instant::now();
    let new = set.wait_for_failover(old, Duration::from_secs(30));
    eprintln!("failover took {:?}", killed_at.elapsed());
    assert_ne!(new, old);

    let mut connection = url.connect(TIMEOUT).expect("connect after the failover");
    assert_eq!(server_port(&mut connection), new);
    assert_eq!(role(&mut connection), "master");
    let v: String = redis::cmd("GET").arg("k").query(&mut connection).unwrap();
    assert_eq!(v, "before", "the promoted replica has the data");
    redis::cmd("SET")
        .arg("k")
        .arg("after")
        .exec(&mut connection)
        .unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut connection).unwrap();
    assert_eq!(v, "after");
    // connect_stream resolves the same primary.
    assert!(url.connect_stream(TIMEOUT).is_ok());
}

#[test]
fn connect_fails_within_its_timeouts_while_the_named_primary_is_hung_or_dead() {
    // No failover within the test: the sentinels keep naming the old primary.
    let mut set = SentinelSet::start("im-stuck", 60_000);
    let url = parse(&set.url());
    let primary = set.primary_port();
    assert!(url.connect(TIMEOUT).is_ok());

    // Hung (SIGSTOP): TCP connects complete, nothing ever answers. Each of
    // the three sentinels names it, each try costs one timeout.
    set.pause_primary();
    let started = Instant::now();
    let error = url
        .connect(TIMEOUT)
        .err()
        .expect("no connection to a hung primary");
    let took = started.elapsed();
    eprintln!("connect with a hung primary failed after {took:?}: {error}");
    assert!(took < Duration::from_secs(5), "connect took {took:?}");
    assert!(error.is_timeout(), "not a timeout: {error}");
    let started = Instant::now();
    assert!(url.connect_stream(TIMEOUT).is_err());
    let took = started.elapsed();
    eprintln!("connect_stream with a hung primary failed after {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "connect_stream took {took:?}"
    );

    // Dead: refused at once.
    set.kill_primary();
    assert_eq!(set.primary_port(), primary, "no failover expected yet");
    let started = Instant::now();
    let error = url
        .connect(TIMEOUT)
        .err()
        .expect("no connection to a dead primary");
    let took = started.elapsed();
    eprintln!("connect with a dead primary failed after {took:?}: {error}");
    assert!(took < Duration::from_secs(3), "connect took {took:?}");
    assert!(
        error.kind() == ErrorKind::Io || error.is_connection_refusal(),
        "unexpected error {error}"
    );
    let started = Instant::now();
    assert!(url.connect_stream(TIMEOUT).is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn an_unknown_master_name_is_an_error() {
    let set = SentinelSet::start("im-known", 60_000);
    let hosts: Vec<String> = set
        .sentinel_ports()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let url = parse(&format!("redis+sentinel://{}/nobody", hosts.join(",")));
    let started = Instant::now();
    let error = url.connect(TIMEOUT).err().expect("no master named nobody");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        error.kind(),
        ErrorKind::MasterNameNotFoundBySentinel,
        "{error}"
    );
    assert!(error.to_string().contains("nobody"), "{error}");
}

#[test]
fn a_failover_watch_calls_back_on_switch_master() {
    let set = SentinelSet::start("watched", 1000);
    let url = parse(&set.url());
    let (switched, announcements) = crossbeam_channel::unbounded();
    let watch = url
        .watch_failovers(move || {
            let _ = switched.send(Instant::now());
        })
        .unwrap()
        .expect("a Sentinel URL is watched");
    // The watch subscribes on its own thread; give it a moment, then ask a
    // sentinel for a failover while the old primary stays alive.
    std::thread::sleep(Duration::from_millis(500));
    let old = set.primary_port();
    let asked = Instant::now();
    let answer = testkit::raw_command(
        set.sentinel_ports()[1],
        &["SENTINEL", "FAILOVER", "watched"],
    );
    assert_eq!(answer, "+OK");
    let at = announcements
        .recv_timeout(Duration::from_secs(15))
        .expect("a +switch-master callback");
    let new = set.wait_for_failover(old, Duration::from_secs(5));
    assert_ne!(new, old);
    eprintln!(
        "+switch-master reached the watch {:?} after SENTINEL FAILOVER",
        at - asked
    );
    let stopped = Instant::now();
    watch.stop();
    assert!(stopped.elapsed() < Duration::from_secs(1));
}
