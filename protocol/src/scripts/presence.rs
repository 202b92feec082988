//! The presence Lua scripts the node runs in Redis, each atomic.
//!
//! Presence is kept twice: counted cluster-wide in `{prefix}Online` (FreeIM's
//! key), and socket by socket in `{prefix}Node{server}` (socket name →
//! `id|event`), so the sockets of a node that died can be taken back, each
//! with its own offline event (by the node itself when it restarts, or by any
//! node once the dead node's `{prefix}Alive{server}` lease lapses).

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

/// Lua: `split(entry)` turns a `{prefix}Node{server}` value `id|event` into `id, event`.
const SPLIT: &str = r#"
local function split(entry)
  local bar = string.find(entry, '|', 1, true)
  return string.sub(entry, 1, bar - 1), string.sub(entry, bar + 1)
end
"#;

/// Lua: `uncount(prefix, online, id)` takes one socket of `id` off `Online`;
/// at zero the field goes and the client leaves its channels.
const UNCOUNT: &str = r#"
local function uncount(prefix, online, id)
  if redis.call('HINCRBY', online, id, -1) <= 0 then
    redis.call('HDEL', online, id)
    leave_all(prefix, id)
  end
end
"#;

/// One socket opened: count it and announce it, once.
/// KEYS: Node{self}, Online. ARGV: socket, id, event json, online channel.
/// Returns 1 when the socket was new, 0 when Redis already knew it.
///
/// Idempotent, so the worker may send it again whenever a first send's
/// outcome was lost: only the send that adds the socket's field to
/// `Node{self}` counts it in `Online` and publishes the online event, and a
/// repeat (or a presence snapshot that already restored the socket) finds the
/// field and does nothing.
const SOCKET_OPENED: &str = r#"
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('PUBLISH', ARGV[4], ARGV[3])
  return 1
end
return 0
"#;

/// One socket closed.
/// KEYS: Online, Node{self}. ARGV: id, event json, offline channel, prefix,
/// socket, announce.
/// Returns 1 when Redis knew the socket, 0 when not.
///
/// The socket is uncounted only if Redis knew it (so a close while Redis was
/// away, or restarted empty, cannot drive `Online` below the truth), and its
/// offline event is published only then too, which makes a repeated send
/// harmless: the repeat finds no field and neither uncounts nor announces.
///
/// One path needs the event although Redis does not know the socket: Redis
/// restarted empty (or failed over to a replica that missed the open),
/// subscribers saw the socket's online event before that, and the socket
/// closes after the worker reconnected but before its loop's presence
/// snapshot restored it. The worker knows that window (its new connection
/// reached a Redis process with another `run_id`, and the loop's snapshot
/// has not been applied since) and sets `announce` to `1` there, for a first
/// send only; the offline event is then published even when the field is
/// missing. Everywhere else a missing field means the event was already
/// published (a repeat, or a node that reaped this one's sockets) or the
/// online event never was (an open that finally failed), and publishing
/// would duplicate an event or send one without its pair.
/// Writes come before the publish, so a command refused at its first write
/// (`READONLY` after a failover) has done nothing.
const SOCKET_CLOSED: &str = r#"
local known = redis.call('HDEL', KEYS[2], ARGV[5]) == 1
if known or ARGV[6] == '1' then
  redis.call('PUBLISH', ARGV[3], ARGV[2])
end
if known then
  uncount(ARGV[4], KEYS[1], ARGV[1])
  return 1
end
return 0
"#;

/// Takes back every socket a node held, publishing each one's offline event.
/// KEYS: Alive{node}, Node{node}, Online.
/// ARGV: force ('1' = even if the lease is live), offline channel, prefix.
/// Returns the number of sockets reaped.
const REAP_NODE: &str = r#"
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local held = redis.call('HGETALL', KEYS[2])
for i = 2, #held, 2 do
  local id, event = split(held[i])
  redis.call('PUBLISH', ARGV[2], event)
  uncount(ARGV[3], KEYS[3], id)
end
redis.call('DEL', KEYS[2])
return #held / 2
"#;

/// Makes Redis agree with the sockets one event loop holds, after Redis was
/// unreachable (or restarted empty). Sockets of the loop that Redis knows but
/// the loop no longer holds closed meanwhile: uncounted, offline event.
/// Sockets the loop holds that Redis does not know: counted, online event.
/// Idempotent: a repeat finds Redis agreeing and changes nothing, so the
/// worker may send it again when a first send's outcome was lost.
/// KEYS: Node{self}, Online.
/// ARGV: prefix, online channel, offline channel, the loop's socket-name
/// prefix, then triples (socket, id, event) of the sockets it holds.
const RESTORE_PRESENCE: &str = r#"
local held = {}
for i = 5, #ARGV, 3 do
  held[ARGV[i]] = i
end
local known = redis.call('HGETALL', KEYS[1])
for j = 1, #known, 2 do
  local socket = known[j]
  if string.sub(socket, 1, #ARGV[4]) == ARGV[4] then
    if held[socket] then
      held[socket] = nil
    else
      local id, event = split(known[j + 1])
      redis.call('HDEL', KEYS[1], socket)
      redis.call('PUBLISH', ARGV[3], event)
      uncount(ARGV[1], KEYS[2], id)
    end
  end
end
for socket, i in pairs(held) do
  local id, event = ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', KEYS[1], socket, id .. '|' .. event)
  redis.call('HINCRBY', KEYS[2], id, 1)
  redis.call('PUBLISH', ARGV[2], event)
end
return 1
"#;

/// **[ext]** Renames sockets in `Node{self}` after a hand-over (hot upgrade)
/// moved them to new slots of a new process: no count changes, no event.
/// Idempotent: a repeat finds the old names gone and does nothing.
/// KEYS: Node{self}. ARGV: pairs (old name, new name).
/// Returns the number of sockets renamed.
const RENAME_SOCKETS: &str = r#"
local renamed = 0
for i = 1, #ARGV, 2 do
  local entry = redis.call('HGET', KEYS[1], ARGV[i])
  if entry then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('HSET', KEYS[1], ARGV[i + 1], entry)
    renamed = renamed + 1
  end
end
return renamed
"#;

/// The scripts' sources, ready for `SCRIPT LOAD`.
pub struct PresenceScripts {
    /// See [`SOCKET_OPENED`].
    pub socket_opened: String,
    /// See [`SOCKET_CLOSED`].
    pub socket_closed: String,
    /// See [`REAP_NODE`].
    pub reap_node: String,
    /// See [`RESTORE_PRESENCE`].
    pub restore_presence: String,
    /// See [`RENAME_SOCKETS`].
    pub rename_sockets: String,
}

impl PresenceScripts {
    /// Assembles every script with its shared functions.
    pub fn new() -> PresenceScripts {
        PresenceScripts {
            socket_opened: SOCKET_OPENED.to_string(),
            socket_closed: format!("{LEAVE_ALL}{UNCOUNT}{SOCKET_CLOSED}"),
            reap_node: format!("{LEAVE_ALL}{UNCOUNT}{SPLIT}{REAP_NODE}"),
            restore_presence: format!("{LEAVE_ALL}{UNCOUNT}{SPLIT}{RESTORE_PRESENCE}"),
            rename_sockets: RENAME_SOCKETS.to_string(),
        }
    }
}

impl PresenceScripts {
    /// Every script as `layout` runs it (see [`Layout::script`]).
    pub fn for_layout(layout: crate::Layout) -> PresenceScripts {
        let PresenceScripts {
            socket_opened,
            socket_closed,
            reap_node,
            restore_presence,
            rename_sockets,
        } = PresenceScripts::new();
        PresenceScripts {
            socket_opened: layout.script(&socket_opened),
            socket_closed: layout.script(&socket_closed),
            reap_node: layout.script(&reap_node),
            restore_presence: layout.script(&restore_presence),
            rename_sockets: layout.script(&rename_sockets),
        }
    }
}

impl Default for PresenceScripts {
    fn default() -> Self {
        PresenceScripts::new()
    }
}
