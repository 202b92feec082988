//! Who is online (`{prefix}Online`), and closing a client's sockets.
//!
//! A client's `Online` count is in its owner's shard (`shards.rs`): one hash
//! with one Redis, each node's own with a Redis Cluster.

use freeim_protocol::Keys;

use crate::error::Result;
use crate::helper::ImHelper;
use crate::shards::group_by_shard;

impl ImHelper {
    /// Every client with at least one open socket on any node
    /// (`HKEYS {prefix}Online`; with a Redis Cluster, every node's in turn),
    /// in Redis' order. As in FreeIM, fields that are not a decimal i64, and
    /// `0` (the system's id), are left out.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let online = helper.get_client_list_by_online()?;
    /// println!("{} clients online", online.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_client_list_by_online(&self) -> Result<Vec<i64>> {
        self.ids_in_partitions(Keys::online)
    }

    /// Whether `client_id` has an open socket on any node
    /// (`HGET {prefix}Online id`, a count > 0; in its owner's shard with a
    /// Redis Cluster).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// if !helper.has_online(42)? {
    ///     println!("42 is offline; store the message for later");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn has_online(&self, client_id: i64) -> Result<bool> {
        let shard = self.owner_shard(client_id);
        let mut hget = redis::cmd("HGET");
        hget.arg(shard.keys.online()).arg(client_id);
        let count: Option<String> = self.pool.run(shard.slot, |c| hget.query(c))?;
        Ok(is_positive(count.as_deref()))
    }

    /// [`has_online`](ImHelper::has_online) for many clients in one round-trip
    /// (`HMGET`; with a Redis Cluster, one per owner node); the answers come
    /// in the order of `client_ids`, one per id (repeats included). No ids:
    /// an empty answer, without asking Redis (as in FreeIM).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let ids = [1, 2, 3];
    /// for (id, online) in ids.iter().zip(helper.has_online_many(&ids)?) {
    ///     println!("{id}: {online}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn has_online_many(&self, client_ids: &[i64]) -> Result<Vec<bool>> {
        if client_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut online = vec![false; client_ids.len()];
        let owners = client_ids
            .iter()
            .enumerate()
            .map(|(place, &id)| (self.owner_shard(id), place));
        for (shard, places) in group_by_shard(owners) {
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(shard.keys.online());
            for &place in &places {
                hmget.arg(client_ids[place]);
            }
            let counts: Vec<Option<String>> = self.pool.run(shard.slot, |c| hmget.query(c))?;
            for (place, count) in places.into_iter().zip(counts) {
                online[place] = is_positive(count.as_deref());
            }
        }
        Ok(online)
    }

    /// Closes every socket of `client_id` on its node
    /// (`__FreeIM__(ForceOffline){id}` on the node's channel). The node then
    /// publishes the usual offline event. Any id is accepted and routed by
    /// [`select_server`](ImHelper::select_server), as in FreeIM; the
    /// [`on_send`](crate::ImHelperOptions::on_send) hook is not called (FreeIM
    /// neither: it is no message).
    ///
    /// # Errors
    /// [`Error::Unrouted`](crate::Error::Unrouted) when no node listens for
    /// the client's server; [`Error::Redis`](crate::Error::Redis).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.force_offline(42)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn force_offline(&self, client_id: i64) -> Result<()> {
        let command = freeim_protocol::force_offline_command(client_id);
        self.publish_checked(&[(self.select_server(client_id), command.as_str())])
    }

    /// The ids among the fields (`HKEYS`) of the hash `hash(keys)` of every
    /// partition, in order (see [`parse_ids`]).
    pub(crate) fn ids_in_partitions(&self, hash: impl Fn(&Keys) -> String) -> Result<Vec<i64>> {
        let partitions: Vec<Vec<String>> = self.read_partitions(|keys| {
            let mut hkeys = redis::cmd("HKEYS");
            hkeys.arg(hash(keys));
            hkeys
        })?;
        Ok(parse_ids(&partitions.concat()))
    }
}

/// Field names that parse as a non-zero i64, in order; others are skipped,
/// as FreeIM's id-list reads do (`0` is the system's id, never a client).
fn parse_ids(fields: &[String]) -> Vec<i64> {
    fields
        .iter()
        .filter_map(|f| f.parse().ok())
        .filter(|&id| id != 0)
        .collect()
}

/// An Online count is "online" when it is an integer above zero.
fn is_positive(count: Option<&str>) -> bool {
    count
        .and_then(|c| c.trim().parse::<i64>().ok())
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_do_not_parse_are_skipped() {
        let fields: Vec<String> = ["1", "x", "-7", "", "0", "9223372036854775808", "42"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(parse_ids(&fields), vec![1, -7, 42]);
    }

    #[test]
    fn only_positive_counts_are_online() {
        assert!(is_positive(Some("1")));
        assert!(is_positive(Some("3")));
        assert!(!is_positive(Some("0")));
        assert!(!is_positive(Some("-1")));
        assert!(!is_positive(Some("junk")));
        assert!(!is_positive(None));
    }
}
