//! Lua scripts the node runs in Redis, each atomic.
//!
//! Presence is counted twice: cluster-wide in `{prefix}Online` (FreeIM's key)
//! and per node in `{prefix}Node{server}`, so the share of a node that died can
//! be subtracted again (by the node itself when it restarts, or by any node
//! once the dead node's `{prefix}Alive{server}` lease lapses).

/// Lua: `leave_all(prefix, id)` removes `id` from every channel it joined,
/// keeping `ListChan` counts right (FreeIM's LeaveChan, for all channels),
/// and announces each change on `{prefix}ChanChanged` for the member caches.
const LEAVE_ALL: &str = r#"
local function leave_all(prefix, id)
  local client_key = prefix .. 'Client' .. id
  for _, chan in ipairs(redis.call('HKEYS', client_key)) do
    if redis.call('HDEL', prefix .. 'Chan' .. chan, id) == 1 then
      if redis.call('HINCRBY', prefix .. 'ListChan', chan, -1) <= 0 then
        redis.call('HDEL', prefix .. 'ListChan', chan)
      end
      redis.call('PUBLISH', prefix .. 'ChanChanged', chan)
    end
  end
  redis.call('DEL', client_key)
end
"#;

/// One socket closed.
/// KEYS: Online, Node{self}, NodeMeta{self}. ARGV: id, event json, offline channel, prefix.
/// When the client has no socket left anywhere, it also leaves its channels.
const SOCKET_CLOSED: &str = r#"
local id = ARGV[1]
if redis.call('HINCRBY', KEYS[2], id, -1) <= 0 then
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
redis.call('PUBLISH', ARGV[3], ARGV[2])
if redis.call('HINCRBY', KEYS[1], id, -1) <= 0 then
  redis.call('HDEL', KEYS[1], id)
  leave_all(ARGV[4], id)
end
return 1
"#;

/// Takes back a node's share of presence, publishing an offline event per socket.
/// KEYS: Alive{node}, Node{node}, NodeMeta{node}, Online.
/// ARGV: force ('1' = even if the lease is live), offline channel, prefix.
/// Returns the number of sockets reaped.
const REAP_NODE: &str = r#"
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local held = redis.call('HGETALL', KEYS[2])
local reaped = 0
for i = 1, #held, 2 do
  local id, count = held[i], tonumber(held[i + 1]) or 0
  local event = redis.call('HGET', KEYS[3], id) or ('{"Item1":' .. id .. ',"Item2":null}')
  for _ = 1, count do
    redis.call('PUBLISH', ARGV[2], event)
  end
  if count > 0 and redis.call('HINCRBY', KEYS[4], id, -count) <= 0 then
    redis.call('HDEL', KEYS[4], id)
    leave_all(ARGV[3], id)
  end
  reaped = reaped + count
end
redis.call('DEL', KEYS[2], KEYS[3])
return reaped
"#;

/// Re-asserts the sockets one event loop holds after Redis was unreachable
/// (or restarted empty), correcting `Online` by the difference.
/// KEYS: Node{self}, NodeMeta{self}, Online.
/// ARGV: prefix, online channel, offline channel, gone count G, then G ids of
/// clients the loop no longer holds, then triples (id, sockets, event) of the
/// clients it holds. Publishes an online event per socket Redis did not know
/// of and an offline event per socket that closed while Redis was away.
const RESTORE_PRESENCE: &str = r#"
local gone = tonumber(ARGV[4])
for i = 5, 4 + gone do
  local id = ARGV[i]
  local count = tonumber(redis.call('HGET', KEYS[1], id)) or 0
  local event = redis.call('HGET', KEYS[2], id) or ('{"Item1":' .. id .. ',"Item2":null}')
  for _ = 1, count do
    redis.call('PUBLISH', ARGV[3], event)
  end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if count > 0 and redis.call('HINCRBY', KEYS[3], id, -count) <= 0 then
    redis.call('HDEL', KEYS[3], id)
    leave_all(ARGV[1], id)
  end
end
for i = 5 + gone, #ARGV, 3 do
  local id, count, event = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local known = tonumber(redis.call('HGET', KEYS[1], id)) or 0
  if count ~= known then
    redis.call('HINCRBY', KEYS[3], id, count - known)
  end
  for _ = known + 1, count do
    redis.call('PUBLISH', ARGV[2], event)
  end
  redis.call('HSET', KEYS[1], id, count)
  redis.call('HSET', KEYS[2], id, event)
end
return 1
"#;

/// The scripts' sources, ready for `SCRIPT LOAD`.
pub struct Scripts {
    /// See [`SOCKET_CLOSED`].
    pub socket_closed: String,
    /// See [`REAP_NODE`].
    pub reap_node: String,
    /// See [`RESTORE_PRESENCE`].
    pub restore_presence: String,
}

impl Scripts {
    /// Assembles every script with its shared functions.
    pub fn new() -> Scripts {
        Scripts {
            socket_closed: format!("{LEAVE_ALL}{SOCKET_CLOSED}"),
            reap_node: format!("{LEAVE_ALL}{REAP_NODE}"),
            restore_presence: format!("{LEAVE_ALL}{RESTORE_PRESENCE}"),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}
