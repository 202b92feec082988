//! Channel membership in Redis: join, leave (both forms) and the reads.

use crate::error::Result;
use crate::helper::ImHelper;
use crate::presence::parse_ids;

/// A channel and its member count, from `{prefix}ListChan`.
///
/// # Example
///
/// ```no_run
/// use imhelper::{ChanInfo, ImHelper, ImHelperOptions};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
/// for ChanInfo { chan, online } in helper.get_chan_list()? {
///     println!("{chan}: {online} members");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChanInfo {
    /// The channel's name.
    pub chan: String,
    /// How many clients have joined it (whether connected or not).
    pub online: i64,
}

impl ImHelper {
    /// Makes `client_id` a member of every channel in `chans`, atomically (one
    /// Lua script call). Joining a channel twice counts once.
    ///
    /// Per channel: if `HSETNX {prefix}Chan{chan} id 0` added the member,
    /// then `HSET {prefix}Client{id} chan 0` and `HINCRBY {prefix}ListChan chan 1`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.join_chan(42, &["room-1", "room-2"])?;
    /// assert!(helper.get_chan_client_list("room-1")?.contains(&42));
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_chan(&self, client_id: i64, chans: &[&str]) -> Result<()> {
        let pairs: Vec<(i64, &str)> = chans.iter().map(|&chan| (client_id, chan)).collect();
        self.run_membership(true, &pairs)
    }

    /// Removes `client_id` from every channel in `chans`, atomically. Leaving
    /// a channel one is not in changes nothing.
    ///
    /// Per channel: if `HDEL {prefix}Chan{chan} id` removed the member, then
    /// `HDEL {prefix}Client{id} chan` and `HINCRBY {prefix}ListChan chan -1`,
    /// deleting the count's field at `<= 0`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.leave_chan(42, &["room-1", "room-2"])?;
    /// assert!(helper.get_chan_list_by_client_id(42)?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave_chan(&self, client_id: i64, chans: &[&str]) -> Result<()> {
        let pairs: Vec<(i64, &str)> = chans.iter().map(|&chan| (client_id, chan)).collect();
        self.run_membership(false, &pairs)
    }

    /// Removes every client in `client_ids` from channel `chan`, atomically
    /// (FreeIM's `LeaveChan(chan, ids…)`); same rules as
    /// [`leave_chan`](ImHelper::leave_chan).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.leave_chan_clients("room-1", &[7, 8, 9])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave_chan_clients(&self, chan: &str, client_ids: &[i64]) -> Result<()> {
        let pairs: Vec<(i64, &str)> = client_ids.iter().map(|&id| (id, chan)).collect();
        self.run_membership(false, &pairs)
    }

    /// The members of `chan` (`HKEYS {prefix}Chan{chan}`), connected or not;
    /// fields that are not decimal i64 are skipped.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// let members = helper.get_chan_client_list("room-1")?;
    /// let online = helper.has_online_many(&members)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_client_list(&self, chan: &str) -> Result<Vec<i64>> {
        let mut hkeys = redis::cmd("HKEYS");
        hkeys.arg(self.keys.chan(chan));
        let fields: Vec<String> = self.pool.run(|c| hkeys.query(c))?;
        Ok(parse_ids(&fields))
    }

    /// Every channel with at least one member, with its member count
    /// (`HGETALL {prefix}ListChan`), in Redis' order. A count that is not an
    /// integer skips its channel.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// let busiest = helper.get_chan_list()?.into_iter().max_by_key(|c| c.online);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_list(&self) -> Result<Vec<ChanInfo>> {
        let mut hgetall = redis::cmd("HGETALL");
        hgetall.arg(self.keys.list_chan());
        let flat: Vec<String> = self.pool.run(|c| hgetall.query(c))?;
        Ok(flat
            .chunks_exact(2)
            .filter_map(|pair| {
                let online = pair[1].trim().parse().ok()?;
                Some(ChanInfo {
                    chan: pair[0].clone(),
                    online,
                })
            })
            .collect())
    }

    /// The channels `client_id` has joined (`HKEYS {prefix}Client{id}`).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// let chans = helper.get_chan_list_by_client_id(42)?;
    /// let chans: Vec<&str> = chans.iter().map(String::as_str).collect();
    /// helper.leave_chan(42, &chans)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_list_by_client_id(&self, client_id: i64) -> Result<Vec<String>> {
        let mut hkeys = redis::cmd("HKEYS");
        hkeys.arg(self.keys.client(client_id));
        self.pool.run(|c| hkeys.query(c))
    }

    /// The member count of `chan` (`HGET {prefix}ListChan chan`); `0` when the
    /// channel has no members.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]))?;
    /// println!("room-1 has {} members", helper.get_chan_online("room-1")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_chan_online(&self, chan: &str) -> Result<i64> {
        let mut hget = redis::cmd("HGET");
        hget.arg(self.keys.list_chan()).arg(chan);
        let count: Option<i64> = self.pool.run(|c| hget.query(c))?;
        Ok(count.unwrap_or(0))
    }

    /// Runs the join (`join = true`) or leave script over `pairs` in one call.
    fn run_membership(&self, join: bool, pairs: &[(i64, &str)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let invocation = if join {
            self.scripts.join(&self.keys, pairs)
        } else {
            self.scripts.leave(&self.keys, pairs)
        };
        let _changed: i64 = self.pool.run(|c| invocation.invoke(c))?;
        Ok(())
    }
}
