//! The channel Lua scripts of `freeim_protocol::scripts::channels` (join,
//! leave, clear), in the layout's form (`SPUBLISH` for a Redis Cluster),
//! hashed once and bound to their keys and arguments. `redis::Script` runs
//! them with EVALSHA and loads them on `NOSCRIPT` (after a Redis restart,
//! for instance). Every key and channel one call names is one shard's, so
//! each call stays atomic in a Redis Cluster too.

use freeim_protocol::scripts::channels::{CLEAR, JOIN, LEAVE};
use freeim_protocol::{Keys, Layout};
use redis::{Script, ScriptInvocation};

/// The scripts, hashed once.
pub(crate) struct Scripts {
    join: Script,
    leave: Script,
    clear: Script,
}

impl Scripts {
    pub(crate) fn new(layout: Layout) -> Scripts {
        Scripts {
            join: Script::new(&layout.script(JOIN)),
            leave: Script::new(&layout.script(LEAVE)),
            clear: Script::new(&layout.script(CLEAR)),
        }
    }

    /// A clear of `members` (fields of `chan`'s `Chan` hash) that are not
    /// online.
    pub(crate) fn clear<'a>(
        &'a self,
        keys: &Keys,
        chan: &str,
        members: &[String],
    ) -> ScriptInvocation<'a> {
        let mut invocation = self.clear.prepare_invoke();
        invocation
            .key(keys.list_chan())
            .key(keys.online())
            .key(keys.chan(chan))
            .arg(keys.chan_changed())
            .arg(chan);
        for member in members {
            invocation.key(keys.client(member)).arg(member);
        }
        invocation
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_runs_its_own_form_of_the_scripts() {
        let single = Scripts::new(Layout::Single);
        let sharded = Scripts::new(Layout::Sharded);
        for (single, sharded, source) in [
            (&single.join, &sharded.join, JOIN),
            (&single.leave, &sharded.leave, LEAVE),
            (&single.clear, &sharded.clear, CLEAR),
        ] {
            assert_eq!(single.get_hash(), Script::new(source).get_hash());
            let spublish = Layout::Sharded.script(source);
            assert_eq!(sharded.get_hash(), Script::new(&spublish).get_hash());
            assert_ne!(sharded.get_hash(), single.get_hash());
        }
    }
}
