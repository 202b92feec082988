//! A Redis Cluster (`redis+cluster://seed[,seed…]/`): which master serves a
//! hash slot now, asked of the seeds (`CLUSTER SLOTS`) on every connect, so a
//! caller that reconnects after a failure (a failover, a slot moved, a
//! `MOVED` reply) follows the cluster by itself; and a `redis` crate cluster
//! connection for commands that go to any slot.
//!
//! Hash slots are the caller's to compute (`freeim_protocol::key_slot`).

use std::time::Duration;

use redis::cluster::{ClusterClientBuilder, ClusterConnection};
use redis::{Connection, ErrorKind, RedisError, RedisResult, Value};

use crate::address::{Place, RedisUrl};
use crate::connect::Primary;
use crate::stream::Stream;

/// How long a seed is first given to answer `CLUSTER SLOTS` (a healthy
/// Redis answers within a millisecond) before the next one is asked.
const SEED_PATIENCE: Duration = Duration::from_secs(1);

impl RedisUrl {
    /// A connection to the master serving hash `slot` now (any other URL:
    /// [`connect`](Self::connect), the slot does not matter).
    ///
    /// # Errors
    /// As [`connect`](Self::connect); no seed answering `CLUSTER SLOTS`, or
    /// no master for the slot (the cluster is down), as an error naming it.
    pub fn connect_to_slot(&self, slot: u16, timeout: Duration) -> RedisResult<Connection> {
        if !self.is_cluster() {
            return self.connect(timeout);
        }
        let master = self.master_of_slot(slot, timeout)?;
        self.open(master, timeout)
    }

    /// A raw stream to the master serving hash `slot` now (any other URL:
    /// [`connect_stream`](Self::connect_stream)).
    ///
    /// # Errors
    /// As [`connect_to_slot`](Self::connect_to_slot), as I/O errors.
    pub fn connect_stream_to_slot(&self, slot: u16, timeout: Duration) -> std::io::Result<Stream> {
        if !self.is_cluster() {
            return self.connect_stream(timeout);
        }
        let master = self
            .master_of_slot(slot, timeout)
            .map_err(std::io::Error::other)?;
        self.stream_to(master, &self.auth, timeout)
    }

    /// A `redis` crate cluster connection: each command goes to the master
    /// of its key's slot, `MOVED` and `ASK` are followed. With `timeout` for
    /// connects and replies, and no retries of its own (a command whose
    /// outcome is unknown is the caller's to judge: a publish must not go out
    /// twice).
    ///
    /// # Errors
    /// Not a cluster URL, or no seed reachable.
    pub fn connect_cluster(&self, timeout: Duration) -> RedisResult<ClusterConnection> {
        let Place::Cluster { seeds } = &self.place else {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "not a Redis Cluster URL",
            )));
        };
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let nodes: Vec<String> = seeds
            .iter()
            .map(|(host, port)| format!("{scheme}://{}/", Primary::Tcp(host.clone(), *port)))
            .collect();
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(0);
        if let Some(username) = &self.auth.username {
            builder = builder.username(username.clone());
        }
        if let Some(password) = &self.auth.password {
            builder = builder.password(password.clone());
        }
        if let Some(ca) = self.tls.as_ref().and_then(|tls| tls.ca_pem.as_ref()) {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            });
        }
        builder.build()?.get_connection()
    }

    /// Asks each seed in turn, `ask(seed)`, until one succeeds; the seed
    /// that answered last goes first (one that is down costs a timeout once,
    /// not on every connect).
    pub(crate) fn ask_seeds<T>(
        &self,
        mut ask: impl FnMut(&RedisUrl, Primary) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let Place::Cluster { seeds } = &self.place else {
            unreachable!("ask_seeds on a URL without seeds");
        };
        let mut last_error = None;
        let first = self.first_to_ask.get() % seeds.len().max(1);
        for index in (first..seeds.len()).chain(0..first) {
            let (host, port) = &seeds[index];
            match ask(self, Primary::Tcp(host.clone(), *port)) {
                Ok(answer) => {
                    self.first_to_ask.set(index);
                    return Ok(answer);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "no seeds in the cluster URL",
            ))
        }))
    }

    /// Where the master serving `slot` is now (`host:port`), as the first
    /// seed that answers says; for start-up reports.
    ///
    /// # Errors
    /// As [`connect_to_slot`](Self::connect_to_slot).
    pub fn slot_master(&self, slot: u16, timeout: Duration) -> RedisResult<String> {
        self.master_of_slot(slot, timeout)
            .map(|master| master.to_string())
    }

    /// The master serving `slot`, as the first seed that answers says. Each
    /// seed is first given at most [`SEED_PATIENCE`] (a hung seed, which
    /// accepts connections and never answers, costs that much, not the
    /// whole `timeout`, on every connect); only when none answers that fast
    /// are they asked again with `timeout`.
    fn master_of_slot(&self, slot: u16, timeout: Duration) -> RedisResult<Primary> {
        let quick = timeout.min(SEED_PATIENCE);
        self.master_of_slot_within(slot, quick)
            .or_else(|error| match quick < timeout {
                true => self.master_of_slot_within(slot, timeout),
                false => Err(error),
            })
    }

    /// [`master_of_slot`](Self::master_of_slot), each seed given `timeout`.
    fn master_of_slot_within(&self, slot: u16, timeout: Duration) -> RedisResult<Primary> {
        self.ask_seeds(|url, seed| {
            let mut connection = url.open(seed.clone(), timeout)?;
            let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut connection)?;
            master_in(&slots, slot, &seed).ok_or_else(|| {
                RedisError::from((
                    ErrorKind::Io,
                    "no master serves the slot",
                    format!("{seed} lists no master for slot {slot}"),
                ))
            })
        })
    }
}

/// The master of `slot` in a `CLUSTER SLOTS` reply (`[[start, end, [host,
/// port, id, …], replicas…], …]`); an empty host means the seed's own.
fn master_in(reply: &Value, slot: u16, seed: &Primary) -> Option<Primary> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        if !(*start..=*end).contains(&i64::from(slot)) {
            return None;
        }
        let port = match master.get(1) {
            Some(Value::Int(port)) => u16::try_from(*port).ok()?,
            _ => return None,
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) if !host.is_empty() => {
                String::from_utf8_lossy(host).into_owned()
            }
            _ => match seed {
                Primary::Tcp(host, _) => host.clone(),
                Primary::Unix(_) => return None,
            },
        };
        Some(Primary::Tcp(host, port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_of_a_slot_is_read_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("", 7001),
                node("10.0.0.3", 7003),
            ]),
        ]);
        let seed = Primary::Tcp("10.0.0.9".into(), 7009);
        assert_eq!(
            master_in(&reply, 100, &seed),
            Some(Primary::Tcp("10.0.0.1".into(), 7000))
        );
        assert_eq!(
            master_in(&reply, 16383, &seed),
            Some(Primary::Tcp("10.0.0.9".into(), 7001))
        );
        assert_eq!(master_in(&Value::Array(vec![]), 1, &seed), None);
    }
}
