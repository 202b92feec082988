//! The join/leave Lua scripts (PROTOCOL.md, `JoinChan` / `LeaveChan`).
//!
//! Both take any number of (client, channel) pairs in one atomic call:
//!
//! * `KEYS[1]` = `{prefix}ListChan`; pair `j` (from 0) uses
//!   `KEYS[2 + 2j]` = `{prefix}Chan{chan}` and `KEYS[3 + 2j]` = `{prefix}Client{id}`;
//! * `ARGV[1 + 2j]` = the client id, `ARGV[2 + 2j]` = the channel name.
//!
//! Every key a script touches is passed in `KEYS`. They return how many
//! pairs changed something. `redis::Script` runs them with EVALSHA and loads
//! them on `NOSCRIPT` (after a Redis restart, for instance).

use redis::{Script, ScriptInvocation};

use crate::keys::Keys;

/// Join: only a new membership (`HSETNX` set the field) records the channel
/// on the client and counts it in `ListChan`, so a double join counts once.
const JOIN: &str = r"
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
const LEAVE: &str = r"
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

/// The two scripts, hashed once.
pub(crate) struct Scripts {
    join: Script,
    leave: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
        }
    }

    /// A join of every `(client_id, chan)` pair.
    pub(crate) fn join<'a>(&'a self, keys: &Keys, pairs: &[(i64, &str)]) -> ScriptInvocation<'a> {
        invocation(&self.join, keys, pairs)
    }

    /// A leave of every `(client_id, chan)` pair.
    pub(crate) fn leave<'a>(&'a self, keys: &Keys, pairs: &[(i64, &str)]) -> ScriptInvocation<'a> {
        invocation(&self.leave, keys, pairs)
    }
}

fn invocation<'a>(script: &'a Script, keys: &Keys, pairs: &[(i64, &str)]) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation.key(keys.list_chan()).arg(keys.chan_changed());
    for &(client_id, chan) in pairs {
        invocation
            .key(keys.chan(chan))
            .key(keys.client(client_id))
            .arg(client_id)
            .arg(chan);
    }
    invocation
}
