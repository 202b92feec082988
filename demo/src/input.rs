//! Request bodies and query strings of the HTTP API and their validation.
//! Pure: no I/O, unit-tested. Every rejection is a one-line message for a
//! `400`.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::history::Conversation;

/// Largest id accepted: JavaScript's `Number.MAX_SAFE_INTEGER`, so ids
/// survive a round trip through a browser.
pub const MAX_ID: i64 = (1 << 53) - 1;
/// Longest channel name, in characters.
pub const MAX_CHAN_CHARS: usize = 32;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 24;
/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest client message id (`mid`), in characters.
pub const MAX_MID_CHARS: usize = 64;

/// `POST /prev-connect`: who connects (an id is assigned when absent).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrevConnect {
    /// The client's id, if it has one already.
    pub id: Option<i64>,
    /// A display name; the default is derived from the id.
    pub name: Option<String>,
}

/// `POST /join` and `POST /leave`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// The client joining or leaving.
    pub id: i64,
    /// The channel.
    pub chan: String,
}

/// `POST /chan-message`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChanMessage {
    /// The sender, who must be a member of `chan`.
    pub id: i64,
    /// The channel.
    pub chan: String,
    /// The text.
    pub text: String,
    /// A client-chosen message id, echoed in the pushed message.
    pub mid: Option<String>,
}

/// `POST /direct`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    /// The sender.
    pub from: i64,
    /// The receiver.
    pub to: i64,
    /// The text.
    pub text: String,
    /// Whether the sender wants a receipt (default `true`).
    pub receipt: Option<bool>,
    /// A client-chosen message id, echoed in the pushed message (and so in
    /// the receipt's `content`).
    pub mid: Option<String>,
}

/// `POST /broadcast`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    /// The announcing client; absent for a system announcement.
    pub from: Option<i64>,
    /// The text.
    pub text: String,
}

/// `POST /force-offline`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceOffline {
    /// The client to disconnect.
    pub id: i64,
    /// Who asks (named in the notice the client gets).
    pub by: Option<i64>,
}

/// `GET /history`'s query string, before validation (values
/// percent-decoded; other parameters, such as cache busters, ignored).
#[derive(Debug, Default, Deserialize)]
struct HistoryQuery {
    chan: Option<String>,
    id: Option<String>,
    with: Option<String>,
}

/// The conversation `GET /history` asks for: `chan=NAME`, or
/// `id=ME&with=OTHER` (two different ids).
///
/// # Example
///
/// ```
/// use freeim_demo::history::Conversation;
/// use freeim_demo::input::history;
///
/// assert_eq!(history("chan=%23g%C3%A9n%C3%A9ral").unwrap(), Conversation::Chan("général".into()));
/// assert_eq!(history("id=9&with=4").unwrap(), Conversation::direct(4, 9));
/// assert!(history("id=9").is_err());
/// ```
pub fn history(query: &str) -> Result<Conversation, String> {
    let query: HistoryQuery =
        serde_urlencoded::from_str(query).map_err(|e| format!("invalid query string: {e}"))?;
    match query {
        HistoryQuery {
            chan: Some(name),
            id: None,
            with: None,
        } => Ok(Conversation::Chan(chan(&name)?)),
        HistoryQuery {
            chan: None,
            id: Some(me),
            with: Some(other),
        } => {
            let (me, other) = (query_id("id", &me)?, query_id("with", &other)?);
            if me == other {
                return Err("with must differ from id".into());
            }
            Ok(Conversation::direct(me, other))
        }
        _ => Err("give chan=NAME, or id=ME&with=OTHER".into()),
    }
}

/// An id given as a query value.
fn query_id(field: &str, value: &str) -> Result<i64, String> {
    let number = value
        .trim()
        .parse()
        .map_err(|_| format!("{field} must be a number, not {value:?}"))?;
    id(field, number)
}

/// Decodes a JSON body; an empty body reads as `{}`.
///
/// # Example
///
/// ```
/// use freeim_demo::input::{parse, PrevConnect};
///
/// let empty: PrevConnect = parse(b"").unwrap();
/// assert!(empty.id.is_none());
/// assert!(parse::<PrevConnect>(b"{\"nope\":1}").unwrap_err().contains("nope"));
/// ```
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

/// A client id: `1..=MAX_ID` (`0` is the system, negatives route nowhere).
pub fn id(field: &str, value: i64) -> Result<i64, String> {
    if (1..=MAX_ID).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{field} must be between 1 and {MAX_ID}, not {value}"
        ))
    }
}

/// A channel name: 1 to [`MAX_CHAN_CHARS`] letters, digits, `-`, `_` or `.`,
/// after trimming a leading `#` and surrounding spaces.
///
/// # Example
///
/// ```
/// use freeim_demo::input::chan;
///
/// assert_eq!(chan(" #lobby ").unwrap(), "lobby");
/// assert!(chan("two words").is_err());
/// ```
pub fn chan(value: &str) -> Result<String, String> {
    let name = value.trim().trim_start_matches('#');
    if name.is_empty() {
        return Err("chan must not be empty".into());
    }
    if name.chars().count() > MAX_CHAN_CHARS {
        return Err(format!("chan must be at most {MAX_CHAN_CHARS} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "chan may hold letters, digits, '-', '_' and '.', not {bad:?}"
        ));
    }
    Ok(name.to_string())
}

/// Message text: not blank, at most [`MAX_TEXT_CHARS`]; kept as typed.
pub fn text(value: &str) -> Result<&str, String> {
    if value.trim().is_empty() {
        return Err("text must not be empty".into());
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("text must be at most {MAX_TEXT_CHARS} characters"));
    }
    Ok(value)
}

/// A display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters.
pub fn name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not hold control characters".into());
    }
    Ok(name.to_string())
}

/// A client message id: at most [`MAX_MID_CHARS`] of `[A-Za-z0-9_-]`;
/// absent → a fresh random one.
pub fn mid(value: Option<&str>) -> Result<String, String> {
    match value {
        None => Ok(format!("s{:016x}", rand::random::<u64>())),
        Some(mid)
            if !mid.is_empty()
                && mid.len() <= MAX_MID_CHARS
                && mid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')) =>
        {
            Ok(mid.to_string())
        }
        Some(_) => Err(format!(
            "mid must be 1 to {MAX_MID_CHARS} letters, digits, '-' or '_'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_and_browser_safe() {
        assert_eq!(id("id", 1), Ok(1));
        assert_eq!(id("id", MAX_ID), Ok(MAX_ID));
        for bad in [0, -1, MAX_ID + 1, i64::MIN] {
            assert!(id("to", bad).unwrap_err().starts_with("to must be"));
        }
    }

    #[test]
    fn channel_names() {
        assert_eq!(chan("room-1").unwrap(), "room-1");
        assert_eq!(chan("#général").unwrap(), "général");
        for bad in ["", "  ", "#", "a b", "a/b", "a\u{0}b", &"x".repeat(33)] {
            assert!(chan(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn texts_and_names() {
        assert_eq!(text(" hi "), Ok(" hi "));
        assert!(text(" \n").is_err());
        assert!(text(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(text(&"é".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert_eq!(name(" Alice ").unwrap(), "Alice");
        assert!(name("a\u{7}").is_err());
        assert!(name(&"n".repeat(25)).is_err());
    }

    #[test]
    fn mids() {
        assert_eq!(mid(Some("abc-1_2")).unwrap(), "abc-1_2");
        assert_ne!(mid(None).unwrap(), mid(None).unwrap());
        for bad in ["", "a b", "<x>", &"m".repeat(65)] {
            assert!(mid(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn history_queries() {
        assert_eq!(
            history("chan=lobby&_=123"),
            Ok(Conversation::Chan("lobby".into()))
        );
        assert_eq!(
            history("chan=+%23lobby+"),
            Ok(Conversation::Chan("lobby".into()))
        );
        assert_eq!(history("with=2&id=1"), Ok(Conversation::Direct(1, 2)));
        for (bad, needle) in [
            ("", "give chan"),
            ("chan=a&id=1&with=2", "give chan"),
            ("with=2", "give chan"),
            ("chan=a%20b", "chan may hold"),
            ("chan=", "chan must not be empty"),
            ("id=x&with=2", "id must be a number"),
            ("id=1&with=0", "with must be between"),
            ("id=5&with=5", "differ"),
            ("chan=a&chan=b", "invalid query string"),
        ] {
            let error = history(bad).unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    #[test]
    fn bodies() {
        let direct: Direct = parse(br#"{"from":1,"to":2,"text":"hi"}"#).unwrap();
        assert_eq!((direct.from, direct.to, direct.receipt), (1, 2, None));
        let error = parse::<Direct>(br#"{"from":1,"text":"hi"}"#).unwrap_err();
        assert!(error.contains("missing field `to`"), "{error}");
        let error = parse::<Membership>(b"not json").unwrap_err();
        assert!(error.starts_with("invalid JSON body"), "{error}");
        let error = parse::<Membership>(br#"{"id":"7","chan":"x"}"#).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
    }
}
