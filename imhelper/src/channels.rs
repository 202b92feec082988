//! Channel membership in Redis: join, leave (both forms), clearing the
//! members that are not online, and the reads.
//!
//! An empty channel name is never a channel, as in FreeIM: join and leave
//! skip it, the reads answer "nothing" for it without asking Redis, and the
//! list reads leave out an empty name that an older helper may have
//! written.
//!
//! A membership is kept in the shard of the client's owner (`shards.rs`):
//! with one Redis that is FreeIM's one set of hashes; with a Redis Cluster,
//! each node's partition of `Chan{chan}`, `Client{id}` and `ListChan` holds
//! the memberships of the clients it owns, so every script call touches one
//! slot and stays atomic, and the channel-wide reads merge the partitions.

use std::collections::HashMap;

use crate::error::Result;
use crate::helper::ImHelper;
use crate::shards::{group_by_shard, Shard};

/// Members one clear script checks at most: larger channels are cleared in
/// consecutive atomic batches, so Redis is never blocked for long.
const CLEAR_BATCH: usize = 1000;

/// A channel and its member count, from `{prefix}ListChan`.
///
/// # Example
///
/// ```no_run
/// use imhelper::{ChanInfo, ImHelper, ImHelperOptions};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
/// for ChanInfo { chan, online } in helper.get_chan_list()? {
///     println!("{chan}: {online} members");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChanInfo {
    /// The channel's name.
    pub chan: String,
    /// How many clients have joined it (whether connected or not).
    pub online: i64,
}

impl ImHelper {
    /// Makes `client_id` a member of every channel in `chans`, atomically (one
    /// Lua script call, in the owner's shard with a Redis Cluster). Joining a
    /// channel twice counts once.
    ///
    /// Per channel: if `HSETNX {prefix}Chan{chan} id 0` added the member,
    /// then `HSET {prefix}Client{id} chan 0` and `HINCRBY {prefix}ListChan chan 1`.
    ///
    /// Empty names in `chans` are skipped, as FreeIM does; with no channel
    /// left (or `chans` empty) nothing is sent to Redis. Any id is accepted,
    /// as in FreeIM, but mind that FreeIM's reads (and
    /// [`get_chan_client_list`](ImHelper::get_chan_client_list)) never list
    /// the id `0`, the system's.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.join_chan(42, &["room-1", "room-2"])?;
    /// assert!(helper.get_chan_client_list("room-1")?.contains(&42));
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_chan(&self, client_id: i64, chans: &[&str]) -> Result<()> {
        let pairs = client_pairs(client_id, chans);
        self.run_membership(true, self.owner_shard(client_id), &pairs)
    }

    /// Removes `client_id` from every channel in `chans`, atomically. Leaving
    /// a channel one is not in changes nothing.
    ///
    /// Per channel: if `HDEL {prefix}Chan{chan} id` removed the member, then
    /// `HDEL {prefix}Client{id} chan` and `HINCRBY {prefix}ListChan chan -1`,
    /// deleting the count's field at `<= 0`.
    ///
    /// Empty names in `chans` are skipped, as FreeIM does; with no channel
    /// left (or `chans` empty) nothing is sent to Redis.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.leave_chan(42, &["room-1", "room-2"])?;
    /// assert!(helper.get_chan_list_by_client_id(42)?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave_chan(&self, client_id: i64, chans: &[&str]) -> Result<()> {
        let pairs = client_pairs(client_id, chans);
        self.run_membership(false, self.owner_shard(client_id), &pairs)
    }

    /// Removes every client in `client_ids` from channel `chan`, atomically
    /// (FreeIM's `LeaveChan(chan, ids…)`); same rules as
    /// [`leave_chan`](ImHelper::leave_chan). With a Redis Cluster, one
    /// atomic script call per owner node, in order of first appearance.
    ///
    /// # Errors
    /// [`Error::Redis`](crate::Error::Redis); with a Redis Cluster, the
    /// owners' calls before the failing one stay done.
    ///
    /// An empty `chan`, or no `client_ids`, does nothing (nothing is sent to
    /// Redis), as in FreeIM.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.leave_chan_clients("room-1", &[7, 8, 9])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave_chan_clients(&self, chan: &str, client_ids: &[i64]) -> Result<()> {
        if chan.is_empty() {
            return Ok(());
        }
        let owners = client_ids
            .iter()
            .map(|&id| (self.owner_shard(id), (id, chan)));
        for (shard, pairs) in group_by_shard(owners) {
            self.run_membership(false, shard, &pairs)?;
        }
        Ok(())
    }

    /// Removes every member of `chan` that is not online (FreeIM 2.x's
    /// `ClearChanClient`) and returns how many it removed.
    ///
    /// A member is online when its `{prefix}Online` count is above 0 (as for
    /// [`has_online`](ImHelper::has_online)); every other member, a field
    /// that is not an id included, is removed. Each removal is a full leave:
    /// the member leaves `{prefix}Chan{chan}`, the channel leaves its
    /// `{prefix}Client{id}`, and `{prefix}ListChan` is set to the members
    /// left (its field deleted at 0), so the three hashes stay consistent.
    /// **This differs from FreeIM**, which only deletes the `Chan` fields and
    /// leaves `Client{id}` and the `ListChan` count wrong; a count that
    /// FreeIM's clear left wrong is corrected here too (the members' stale
    /// `Client{id}` entries it left cannot be found, and stay).
    ///
    /// Atomic: after `HKEYS {prefix}Chan{chan}`, a Lua script checks and
    /// removes the members in one step, so a member that comes online, or
    /// leaves, meanwhile is handled as it is then. Channels of more than
    /// 1,000 members are cleared in consecutive scripts of 1,000 members,
    /// each atomic, so Redis is never blocked for long. Members that join
    /// while it runs are left alone. Nodes caching the channel's members are
    /// told of the change, as for join and leave.
    ///
    /// With a Redis Cluster, each node's partition of the channel is cleared
    /// in turn (its members' presence is in the same shard), and the
    /// removals are summed.
    ///
    /// An empty `chan` removes nothing and returns `0` without asking Redis,
    /// as in FreeIM.
    ///
    /// # Errors
    /// [`Error::Redis`](crate::Error::Redis); the batches (and partitions)
    /// before the failing one stay done.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let removed = helper.clear_chan_client("room-1")?;
    /// println!("dropped {removed} offline members; {} left", helper.get_chan_online("room-1")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear_chan_client(&self, chan: &str) -> Result<usize> {
        if chan.is_empty() {
            return Ok(0);
        }
        let mut removed = 0;
        for shard in self.partitions() {
            removed += self.clear_partition(shard, chan)?;
        }
        Ok(removed)
    }

    /// The members of `chan` (`HKEYS {prefix}Chan{chan}`; with a Redis
    /// Cluster, every node's partition in turn), connected or not.
    /// As in FreeIM, fields that are not a decimal i64, and `0` (the system's
    /// id), are left out, and an empty `chan` has no members (Redis is not
    /// asked).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let members = helper.get_chan_client_list("room-1")?;
    /// let online = helper.has_online_many(&members)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_client_list(&self, chan: &str) -> Result<Vec<i64>> {
        if chan.is_empty() {
            return Ok(Vec::new());
        }
        self.ids_in_partitions(|keys| keys.chan(chan))
    }

    /// Every channel with at least one member, with its member count
    /// (`HGETALL {prefix}ListChan`), in Redis' order. A count that is not an
    /// integer skips its channel, and so does an empty channel name (older
    /// versions of this helper could write one). With a Redis Cluster, the
    /// counts of every node's partition are added up per channel (channels
    /// in order of first appearance).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let busiest = helper.get_chan_list()?.into_iter().max_by_key(|c| c.online);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_list(&self) -> Result<Vec<ChanInfo>> {
        let partitions: Vec<Vec<String>> = self.read_partitions(|keys| {
            let mut hgetall = redis::cmd("HGETALL");
            hgetall.arg(keys.list_chan());
            hgetall
        })?;
        Ok(add_up_counts(&partitions))
    }

    /// The channels `client_id` has joined (`HKEYS {prefix}Client{id}`, in
    /// its owner's shard with a Redis Cluster), without an empty channel
    /// name (older versions of this helper could write one).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let chans = helper.get_chan_list_by_client_id(42)?;
    /// let chans: Vec<&str> = chans.iter().map(String::as_str).collect();
    /// helper.leave_chan(42, &chans)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_list_by_client_id(&self, client_id: i64) -> Result<Vec<String>> {
        let shard = self.owner_shard(client_id);
        let mut hkeys = redis::cmd("HKEYS");
        hkeys.arg(shard.keys.client(client_id));
        let mut chans: Vec<String> = self.pool.run(shard.slot, |c| hkeys.query(c))?;
        chans.retain(|chan| !chan.is_empty());
        Ok(chans)
    }

    /// The member count of `chan` (`HGET {prefix}ListChan chan`; with a Redis
    /// Cluster, the sum over every node's partition); `0` when the
    /// channel has no members, and for an empty `chan` (Redis is not asked),
    /// as in FreeIM.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// println!("room-1 has {} members", helper.get_chan_online("room-1")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_online(&self, chan: &str) -> Result<i64> {
        if chan.is_empty() {
            return Ok(0);
        }
        let counts: Vec<Option<i64>> = self.read_partitions(|keys| {
            let mut hget = redis::cmd("HGET");
            hget.arg(keys.list_chan()).arg(chan);
            hget
        })?;
        Ok(counts.into_iter().flatten().sum())
    }

    /// Runs the join (`join = true`) or leave script over `pairs`, whose
    /// clients `shard` owns, in one call.
    fn run_membership(&self, join: bool, shard: Shard<'_>, pairs: &[(i64, &str)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let invocation = if join {
            self.scripts.join(shard.keys, pairs)
        } else {
            self.scripts.leave(shard.keys, pairs)
        };
        let _changed: i64 = self.pool.run(shard.slot, |c| invocation.invoke(c))?;
        Ok(())
    }

    /// Clears `chan`'s members in one partition (see
    /// [`clear_chan_client`](ImHelper::clear_chan_client)).
    fn clear_partition(&self, shard: Shard<'_>, chan: &str) -> Result<usize> {
        let mut hkeys = redis::cmd("HKEYS");
        hkeys.arg(shard.keys.chan(chan));
        let members: Vec<String> = self.pool.run(shard.slot, |c| hkeys.query(c))?;
        // At least one script, even with no members: it corrects a stale count.
        let mut removed = 0;
        let mut rest = members.as_slice();
        loop {
            let (batch, tail) = rest.split_at(rest.len().min(CLEAR_BATCH));
            let invocation = self.scripts.clear(shard.keys, chan, batch);
            removed += self
                .pool
                .run(shard.slot, |c| invocation.invoke::<usize>(c))?;
            rest = tail;
            if rest.is_empty() {
                return Ok(removed);
            }
        }
    }
}

/// The channels and counts of every partition's `HGETALL ListChan` reply
/// (flat `[chan, count, …]`), counts added up per channel, channels in
/// order of first appearance; an empty name or a count that is not an
/// integer is skipped.
fn add_up_counts(partitions: &[Vec<String>]) -> Vec<ChanInfo> {
    let mut chans: Vec<ChanInfo> = Vec::new();
    let mut places: HashMap<&str, usize> = HashMap::new();
    for pair in partitions.iter().flat_map(|flat| flat.chunks_exact(2)) {
        let (chan, count) = (pair[0].as_str(), pair[1].trim());
        let Ok(online) = count.parse::<i64>() else {
            continue;
        };
        if chan.is_empty() {
            continue;
        }
        match places.get(chan) {
            Some(&place) => chans[place].online += online,
            None => {
                places.insert(chan, chans.len());
                chans.push(ChanInfo {
                    chan: chan.to_string(),
                    online,
                });
            }
        }
    }
    chans
}

/// `(client_id, chan)` for each non-empty name in `chans`.
fn client_pairs<'a>(client_id: i64, chans: &[&'a str]) -> Vec<(i64, &'a str)> {
    chans
        .iter()
        .filter(|chan| !chan.is_empty())
        .map(|&chan| (client_id, chan))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_added_up_per_channel_in_order_of_first_appearance() {
        let flat = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let partitions = [
            flat(&["b", "2", "", "4", "bad", "x", "a", " 1"]),
            flat(&["a", "3", "c", "1", "b", "-1"]),
        ];
        let chan = |chan: &str, online| ChanInfo {
            chan: chan.into(),
            online,
        };
        assert_eq!(
            add_up_counts(&partitions),
            [chan("b", 1), chan("a", 4), chan("c", 1)]
        );
        assert_eq!(
            add_up_counts(&partitions[..1]),
            [chan("b", 2), chan("a", 1)]
        );
    }

    #[test]
    fn client_pairs_skip_empty_names() {
        assert_eq!(client_pairs(7, &["", "a", "", "b"]), [(7, "a"), (7, "b")]);
        assert!(client_pairs(7, &[""]).is_empty());
    }
}
