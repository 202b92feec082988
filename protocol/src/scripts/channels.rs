//! The channel Lua scripts (`docs/protocol.md`, `JoinChan` / `LeaveChan` /
//! `ClearChanClient`).
//!
//! Join and leave take any number of (client, channel) pairs in one atomic
//! call:
//!
//! * `KEYS[1]` = `{prefix}ListChan`; pair `j` (from 0) uses
//!   `KEYS[2 + 2j]` = `{prefix}Chan{chan}` and `KEYS[3 + 2j]` = `{prefix}Client{id}`;
//! * `ARGV[1]` = the `{prefix}ChanChanged` channel (nodes' member caches);
//!   `ARGV[2 + 2j]` = the client id, `ARGV[3 + 2j]` = the channel name.
//!
//! They return how many pairs changed something. Clear takes one channel
//! and the members to check (see [`CLEAR`]) and returns how many it removed.
//!
//! Every key a script touches is passed in `KEYS`.

/// Join: only a new membership (`HSETNX` set the field) records the channel
/// on the client and counts it in `ListChan`, so a double join counts once.
pub const JOIN: &str = r"
local joined = 0
for i = 2, #ARGV, 2 do
  local chan_key, client_key = KEYS[i], KEYS[i + 1]
  local id, chan = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', chan_key, id, 0) == 1 then
    redis.call('HSET', client_key, chan, 0)
    redis.call('HINCRBY', KEYS[1], chan, 1)
    redis.call('PUBLISH', ARGV[1], chan)
    joined = joined + 1
  end
end
return joined
";

/// Leave: only a real membership (`HDEL` removed the field) is undone, so a
/// non-member's leave does not decrement; the count's field goes at <= 0.
pub const LEAVE: &str = r"
local left = 0
for i = 2, #ARGV, 2 do
  local chan_key, client_key = KEYS[i], KEYS[i + 1]
  local id, chan = ARGV[i], ARGV[i + 1]
  if redis.call('HDEL', chan_key, id) == 1 then
    redis.call('HDEL', client_key, chan)
    if redis.call('HINCRBY', KEYS[1], chan, -1) <= 0 then
      redis.call('HDEL', KEYS[1], chan)
    end
    redis.call('PUBLISH', ARGV[1], chan)
    left = left + 1
  end
end
return left
";

/// Clear: removes each listed member of one channel that is still a member
/// and not online (no `Online` count above 0) as leave does, then sets the
/// channel's `ListChan` count to the members left (deleting it at 0), which
/// also repairs a count that FreeIM's own `ClearChanClient` left wrong.
///
/// `KEYS[1]` = `{prefix}ListChan`, `KEYS[2]` = `{prefix}Online`, `KEYS[3]` =
/// `{prefix}Chan{chan}`, `KEYS[3 + j]` = `{prefix}Client{member j}`;
/// `ARGV[1]` = the change-notice channel, `ARGV[2]` = the channel name,
/// `ARGV[2 + j]` = member `j` (from 1), as its `Chan` field reads.
pub const CLEAR: &str = r"
local chan = ARGV[2]
local removed = 0
for i = 4, #KEYS do
  local member = ARGV[i - 1]
  local online = tonumber(redis.call('HGET', KEYS[2], member))
  if (online == nil or online <= 0) and redis.call('HDEL', KEYS[3], member) == 1 then
    redis.call('HDEL', KEYS[i], chan)
    removed = removed + 1
  end
end
local left = redis.call('HLEN', KEYS[3])
if left > 0 then
  redis.call('HSET', KEYS[1], chan, left)
else
  redis.call('HDEL', KEYS[1], chan)
end
if removed > 0 then
  redis.call('PUBLISH', ARGV[1], chan)
end
return removed
";
