//! Which node owns a client (`servers[clientId mod len(servers)]`, FreeIM's
//! rule), and how one send splits into one command per node.

use std::collections::HashSet;

/// The place in `servers` of the node that owns `client_id`:
/// `client_id mod server_count`, falling back to `0` when the remainder is
/// out of range, exactly as FreeIM does. Only negative ids have an
/// out-of-range (negative) remainder, so every negative id maps to the first
/// server.
///
/// # Panics
/// When `server_count` is 0 (both sides refuse an empty servers list).
pub fn server_index(client_id: i64, server_count: usize) -> usize {
    assert!(server_count > 0, "a cluster has at least one server");
    let count = i64::try_from(server_count).unwrap_or(i64::MAX);
    // `count >= 1`, so `%` cannot overflow; a negative remainder falls back.
    usize::try_from(client_id % count).unwrap_or(0)
}

/// For each place in `servers`, the first place holding the same name. A
/// server listed twice owns both places' shares of the ids (routing is over
/// the whole list, as on the nodes), but it is one node, with one command
/// channel: it is named by its first place.
pub fn first_places(servers: &[String]) -> Vec<usize> {
    servers
        .iter()
        .enumerate()
        .map(|(place, name)| servers.iter().position(|n| n == name).unwrap_or(place))
        .collect()
}

/// De-duplicates `receivers` (first occurrence wins) and groups them by
/// node: by the first place (see [`first_places`]) of the server each is
/// routed to, as FreeIM groups them by server name. Groups come in the order
/// their node was first needed; receivers keep their order inside a group.
pub fn group_by_server(receivers: &[i64], first_places: &[usize]) -> Vec<(usize, Vec<i64>)> {
    let mut seen = HashSet::with_capacity(receivers.len());
    let mut groups: Vec<(usize, Vec<i64>)> = Vec::new();
    for &id in receivers {
        if !seen.insert(id) {
            continue;
        }
        let index = first_places[server_index(id, first_places.len())];
        match groups.iter_mut().find(|(i, _)| *i == index) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((index, vec![id])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_routing_vector_holds() {
        for &(client_id, count, index) in crate::vectors::ROUTING {
            assert_eq!(
                server_index(client_id, count),
                index,
                "{client_id} mod {count}"
            );
        }
    }

    #[test]
    fn negative_ids_group_on_the_first_server() {
        assert_eq!(
            group_by_server(&[-1, 1, -2], &[0, 1]),
            vec![(0, vec![-1, -2]), (1, vec![1])]
        );
    }

    #[test]
    fn groups_dedup_and_keep_order() {
        let groups = group_by_server(&[5, 1, 2, 5, 4, 1, 3], &[0, 1]);
        assert_eq!(groups, vec![(1, vec![5, 1, 3]), (0, vec![2, 4])]);
    }

    #[test]
    fn a_server_listed_twice_is_one_group() {
        let servers: Vec<String> = ["a:1", "b:2", "a:1", "c:3", "b:2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let places = first_places(&servers);
        assert_eq!(places, [0, 1, 0, 3, 1]);
        // Ids 0 and 2 route to a:1's two places, 1 and 4 to b:2's.
        assert_eq!(
            group_by_server(&[0, 1, 2, 3, 4, 5], &places),
            vec![(0, vec![0, 2, 5]), (1, vec![1, 4]), (3, vec![3])]
        );
    }

    #[test]
    fn empty_receivers_make_no_group() {
        assert!(group_by_server(&[], &[0, 1, 2, 3]).is_empty());
    }
}
