//! Which open sockets each client has on one event loop.

use std::collections::HashMap;

/// The sockets (slab keys) of one client: almost always one, so no allocation then.
#[derive(Debug)]
enum Sockets {
    One(u32),
    Many(Vec<u32>),
}

/// clientId → the keys of its open WebSocket connections on this loop.
#[derive(Debug, Default)]
pub struct Registry {
    clients: HashMap<i64, Sockets>,
}

impl Registry {
    /// Records that `key` is a socket of `client_id`.
    pub fn add(&mut self, client_id: i64, key: u32) {
        match self.clients.get_mut(&client_id) {
            None => {
                self.clients.insert(client_id, Sockets::One(key));
            }
            Some(Sockets::One(first)) => {
                let first = *first;
                self.clients
                    .insert(client_id, Sockets::Many(vec![first, key]));
            }
            Some(Sockets::Many(keys)) => keys.push(key),
        }
    }

    /// Forgets socket `key` of `client_id`; returns how many sockets the client still has here.
    pub fn remove(&mut self, client_id: i64, key: u32) -> usize {
        let left = match self.clients.get_mut(&client_id) {
            None => return 0,
            Some(Sockets::One(only)) if *only == key => 0,
            Some(Sockets::One(_)) => 1,
            Some(Sockets::Many(keys)) => {
                keys.retain(|k| *k != key);
                keys.len()
            }
        };
        match left {
            0 => {
                self.clients.remove(&client_id);
            }
            1 => {
                if let Some(Sockets::Many(keys)) = self.clients.get(&client_id) {
                    let last = keys[0];
                    self.clients.insert(client_id, Sockets::One(last));
                }
            }
            _ => {}
        }
        left
    }

    /// The sockets of `client_id` (empty when it has none here).
    pub fn sockets(&self, client_id: i64) -> &[u32] {
        match self.clients.get(&client_id) {
            None => &[],
            Some(Sockets::One(key)) => std::slice::from_ref(key),
            Some(Sockets::Many(keys)) => keys,
        }
    }

    /// Number of clients with sockets here.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client has a socket here.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Every client with its sockets.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[u32])> {
        self.clients.iter().map(|(id, sockets)| {
            let keys = match sockets {
                Sockets::One(key) => std::slice::from_ref(key),
                Sockets::Many(keys) => keys.as_slice(),
            };
            (*id, keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_many_sockets_per_client() {
        let mut registry = Registry::default();
        registry.add(7, 1);
        registry.add(7, 2);
        registry.add(8, 3);
        assert_eq!(registry.sockets(7), &[1, 2]);
        assert_eq!(registry.remove(7, 1), 1);
        assert_eq!(registry.sockets(7), &[2]);
        assert_eq!(registry.remove(7, 2), 0);
        assert!(registry.sockets(7).is_empty());
        assert_eq!(registry.remove(7, 2), 0, "removing twice is harmless");
        assert_eq!(registry.iter().count(), 1);
    }
}
