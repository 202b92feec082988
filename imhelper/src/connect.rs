//! Where a client connects: `select_server` and connect tokens.

use rand::RngCore;

use crate::error::Result;
use crate::helper::ImHelper;
use freeim_protocol::{server_index, ClientTicket};

/// Seconds a connect token lives (FreeIM: 10 s).
const TOKEN_TTL_SECS: u64 = 10;

/// Random bytes in a token; hex-encoded they make FreeIM's 128 characters.
const TOKEN_BYTES: usize = 64;

impl ImHelper {
    /// The node that holds (and reaches) `client_id`:
    /// `servers[client_id mod servers.len()]`.
    ///
    /// A negative id has a negative remainder, which is out of range; like
    /// FreeIM and this project's ImServer, such ids fall back to the first
    /// server (FreeIM only supports non-negative ids).
    ///
    /// # Example
    ///
    /// ```
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// let helper = ImHelper::new(ImHelperOptions::new(
    ///     "redis://127.0.0.1:6379/",
    ///     vec!["a:1".into(), "b:2".into(), "c:3".into()],
    /// ))?;
    /// assert_eq!(helper.select_server(0), "a:1");
    /// assert_eq!(helper.select_server(4), "b:2");
    /// assert_eq!(helper.select_server(-1), "a:1"); // out of range: first server
    /// # Ok::<(), imhelper::Error>(())
    /// ```
    pub fn select_server(&self, client_id: i64) -> &str {
        &self.servers[server_index(client_id, self.servers.len())]
    }

    /// Prepares a WebSocket connection for `client_id` and returns the URL the
    /// client must open within 10 seconds:
    /// `ws://{select_server(client_id)}{path}?token={token}` (`wss://` with
    /// [`ImHelperOptions::secure`](crate::ImHelperOptions::secure)).
    ///
    /// The token is 128 random hex characters (from the thread-local CSPRNG);
    /// `{prefix}Token{token}` (with a Redis Cluster, in the owner's shard,
    /// where the owner looks for it) holds
    /// `{"Item1":client_id,"Item2":client_meta}` with a 10 s TTL. The node
    /// hands `client_meta` back in the client's online/offline events.
    ///
    /// Any id is accepted, as in FreeIM: a negative one connects to the
    /// first server (see [`select_server`](ImHelper::select_server)), and
    /// `0`, the system's id, is never listed by
    /// [`get_client_list_by_online`](ImHelper::get_client_list_by_online).
    /// Any metadata is accepted (it is JSON-escaped).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// let url = helper.prev_connect_server(42, "web; alice")?;
    /// assert!(url.starts_with("ws://127.0.0.1:6001/ws?token="));
    /// # Ok(())
    /// # }
    /// ```
    pub fn prev_connect_server(&self, client_id: i64, client_meta: &str) -> Result<String> {
        let token = new_token();
        let shard = self.owner_shard(client_id);
        let value = ClientTicket::new(client_id, client_meta).to_json();
        let mut set = redis::cmd("SET");
        set.arg(shard.keys.token(&token))
            .arg(&value)
            .arg("EX")
            .arg(TOKEN_TTL_SECS);
        self.pool.run(shard.slot, |c| set.query::<()>(c))?;
        Ok(format!(
            "{}://{}{}?token={token}",
            if self.secure { "wss" } else { "ws" },
            self.select_server(client_id),
            self.path
        ))
    }
}

/// 128 lowercase hex characters from 64 random bytes.
fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut token = String::with_capacity(TOKEN_BYTES * 2);
    for byte in bytes {
        token.push(char::from(HEX[usize::from(byte >> 4)]));
        token.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_hex_chars_and_differ() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 128);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
