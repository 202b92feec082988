//! The Lua scripts that keep membership and presence atomic in Redis, as
//! source text: [`channels`] (join, leave, clear; run by `imhelper`) and
//! [`presence`] (sockets opened and closed, dead nodes reaped, presence
//! restored; run by the node). Each side hashes and loads them itself.

pub mod channels;
pub mod presence;
