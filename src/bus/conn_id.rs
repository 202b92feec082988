//! Naming a connection across threads: [`ConnId`] (slab key + generation)
//! and its name in Redis's `{prefix}Node{server}` hash ([`socket_name`]).

/// A connection's slab key tagged with its generation, so a message for a
/// connection that closed (and whose slot was reused) is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// Slab key.
    pub key: u32,
    /// Generation of the slot when the message was made.
    pub generation: u32,
}

/// The name of a socket in `{prefix}Node{server}`: `loop:key:generation`,
/// unique within one run of the node.
pub fn socket_name(loop_index: usize, conn: ConnId) -> String {
    format!(
        "{}{}:{}",
        socket_name_prefix(loop_index),
        conn.key,
        conn.generation
    )
}

/// The part of [`socket_name`] that names the loop.
pub fn socket_name_prefix(loop_index: usize) -> String {
    format!("{loop_index}:")
}

/// The loop a [`socket_name`] belongs to.
pub fn socket_loop(socket: &str) -> Option<usize> {
    socket.split(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_name_tells_its_loop() {
        let conn = ConnId {
            key: 17,
            generation: 3,
        };
        assert_eq!(socket_name(2, conn), "2:17:3");
        assert_eq!(socket_loop(&socket_name(2, conn)), Some(2));
        assert_eq!(socket_loop("x:1:1"), None);
    }
}
