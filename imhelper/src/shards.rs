//! Which of the nodes' names an operation uses, and which master its
//! commands go to (`freeim_protocol::layout`).
//!
//! In the single layout every node shares FreeIM's names on one Redis, so
//! every operation has one place to go. In the sharded layout (a Redis
//! Cluster) the names of node `server` start with its own hash tag and share
//! one hash slot: a [`Shard`] is one node's names with that slot, and the
//! pool sends their commands to the master serving it. A client's token,
//! presence and channel memberships live in its owner's shard; a read that
//! spans the cluster visits every partition, one in the single layout, so
//! there it sends exactly the commands FreeIM's helper sends.

use freeim_protocol::{key_slot, Keys};
use redis::{Cmd, FromRedisValue};

use crate::error::Result;
use crate::helper::ImHelper;

/// One node's names and the hash slot they all share.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shard<'a> {
    /// The names.
    pub(crate) keys: &'a Keys,
    /// Their slot: the connection their commands need (any connection in
    /// the single layout, where it is the same for every shard).
    pub(crate) slot: u16,
}

impl<'a> Shard<'a> {
    fn new(keys: &'a Keys) -> Shard<'a> {
        Shard {
            keys,
            slot: key_slot(keys.prefix()),
        }
    }
}

/// Two shards are one when they have the same names (every node's, in the
/// single layout).
impl PartialEq for Shard<'_> {
    fn eq(&self, other: &Shard<'_>) -> bool {
        self.keys == other.keys
    }
}

impl ImHelper {
    /// The shard of `client_id`'s owner (`servers[id mod len]`): where its
    /// token, presence and memberships live.
    pub(crate) fn owner_shard(&self, client_id: i64) -> Shard<'_> {
        Shard::new(self.directory.owner(client_id).1)
    }

    /// The shard of node `server`, one of `servers`: where its command
    /// channel and presence events are.
    pub(crate) fn node_shard(&self, server: &str) -> Shard<'_> {
        Shard::new(self.directory.of(server))
    }

    /// The shards a cluster-wide read visits: one in the single layout, one
    /// per distinct node when sharded.
    pub(crate) fn partitions(&self) -> impl Iterator<Item = Shard<'_>> {
        self.directory.partitions().map(Shard::new)
    }

    /// The answers to the read `command(keys)` on every partition, in order.
    pub(crate) fn read_partitions<T: FromRedisValue>(
        &self,
        command: impl Fn(&Keys) -> Cmd,
    ) -> Result<Vec<T>> {
        self.partitions()
            .map(|shard| {
                let command = command(shard.keys);
                self.pool.run(shard.slot, |c| command.query(c))
            })
            .collect()
    }
}

/// `items` grouped by shard, groups in order of first appearance and items
/// in their given order within each: a single group in the single layout.
pub(crate) fn group_by_shard<'a, T>(
    items: impl IntoIterator<Item = (Shard<'a>, T)>,
) -> Vec<(Shard<'a>, Vec<T>)> {
    let mut groups: Vec<(Shard<'a>, Vec<T>)> = Vec::new();
    for (shard, item) in items {
        match groups.iter_mut().find(|(known, _)| *known == shard) {
            Some((_, group)) => group.push(item),
            None => groups.push((shard, vec![item])),
        }
    }
    groups
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ImHelperOptions;

    /// A helper for `servers` in the single layout, or the sharded one
    /// (a cluster URL); no Redis is contacted.
    pub(crate) fn helper(sharded: bool, servers: &[&str]) -> ImHelper {
        let url = if sharded {
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"
        } else {
            "redis://127.0.0.1:6379/"
        };
        let servers = servers.iter().map(|s| s.to_string()).collect();
        ImHelper::new(ImHelperOptions::new(url, servers)).unwrap()
    }

    #[test]
    fn every_shard_is_freeims_in_the_single_layout() {
        let helper = helper(false, &["a:1", "b:2"]);
        assert_eq!(helper.owner_shard(1).keys.online(), "im_v2_wsOnline");
        assert_eq!(helper.owner_shard(1), helper.owner_shard(2));
        assert_eq!(helper.node_shard("b:2"), helper.owner_shard(0));
        assert_eq!(helper.partitions().count(), 1);
    }

    #[test]
    fn sharded_names_are_the_owners_with_its_slot() {
        let helper = helper(true, &["a:1", "b:2", "a:1"]);
        let (a, b) = (helper.node_shard("a:1"), helper.node_shard("b:2"));
        assert_ne!(a, b);
        assert_ne!(a.slot, b.slot);
        assert!(a.keys.online().starts_with("{a:1#"), "{}", a.keys.online());
        assert_eq!(a.slot, key_slot(&a.keys.chan("room")));
        assert_eq!(helper.owner_shard(3), a); // servers[0]
        assert_eq!(helper.owner_shard(4), b);
        assert_eq!(helper.owner_shard(5), a); // servers[2], a again
        assert_eq!(helper.owner_shard(-1), a);
        let partitions: Vec<Shard<'_>> = helper.partitions().collect();
        assert_eq!(partitions, [a, b]);
    }

    #[test]
    fn grouping_keeps_first_appearance_order() {
        let sharded = helper(true, &["a:1", "b:2"]);
        let ids = [1, 2, 4, 3];
        let groups = group_by_shard(ids.iter().map(|&id| (sharded.owner_shard(id), id)));
        let groups: Vec<(&str, Vec<i64>)> = groups
            .iter()
            .map(|(shard, ids)| (shard.keys.prefix(), ids.clone()))
            .collect();
        assert_eq!(
            groups,
            [
                (sharded.node_shard("b:2").keys.prefix(), vec![1, 3]),
                (sharded.node_shard("a:1").keys.prefix(), vec![2, 4]),
            ]
        );
        let single = helper(false, &["a:1", "b:2"]);
        let groups = group_by_shard(ids.iter().map(|&id| (single.owner_shard(id), id)));
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].1, ids);
    }
}
