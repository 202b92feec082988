//! Origins (RFC 6454) and the node's `Origin` rule.
//!
//! [`Origin`] reads an origin's ASCII serialization, `scheme://host[:port]`,
//! as browsers send it in the `Origin` header and as `--allowed-origins`
//! lists it, and compares origins the way RFC 6454 §5 does: the scheme and
//! host ASCII case-insensitively, and a scheme's default port (`http`/`ws`
//! 80, `https`/`wss` 443) the same as no port. So `https://A.test:443` and
//! `https://a.test` are one origin; `http://a.test` and `https://a.test:8443`
//! are others.
//!
//! [`OriginPolicy`] is the check the upgrade makes (403 when it fails):
//! with an allow-list, a request's `Origin` must be on it; a request without
//! `Origin` (native apps, server-side clients; browsers always send one) is
//! accepted unless the policy requires the header.

use std::fmt;
use std::str::FromStr;

use super::upgrade::Rejection;

/// An origin: scheme, host and port, compared as RFC 6454 compares them.
///
/// # Example
///
/// ```
/// use freeim_server::http::Origin;
///
/// let a: Origin = "https://A.test:443".parse().unwrap();
/// let b: Origin = "https://a.test".parse().unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "https://a.test");
/// assert!("https://a.test/app".parse::<Origin>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Lower case.
    scheme: String,
    /// Lower case; an IPv6 literal keeps its brackets.
    host: String,
    /// `None` for the scheme's default port (or no port, for a scheme
    /// without a default).
    port: Option<u16>,
}

/// Why a text is not an origin; the message completes "… is not an origin: ".
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidOrigin {
    /// `null`: the opaque origin of sandboxed frames and `file:` pages.
    #[error(
        "\"null\" is the opaque origin of sandboxed frames and file: pages, \
         shared by all of them, so it cannot be allowed"
    )]
    Opaque,
    /// No `scheme://`.
    #[error("it has no scheme (write it as https://host or https://host:port)")]
    NoScheme,
    /// The scheme is empty or has characters a scheme cannot have.
    #[error("its scheme is not a URI scheme")]
    BadScheme,
    /// A path, query or fragment follows the host (even a lone `/`).
    #[error("an origin ends after the host and port: no path, not even a trailing /")]
    HasPath,
    /// `user@` or `user:password@` before the host.
    #[error("an origin has no user name or password")]
    HasUserInfo,
    /// Nothing between `://` and the port.
    #[error("its host is empty")]
    EmptyHost,
    /// A host character outside letters, digits and `-._~`, or a bracketed
    /// IPv6 literal with something other than hex digits, `:` and `.`.
    #[error(
        "its host has a character a host name cannot have \
         (international names go in their xn-- form; no wildcards)"
    )]
    BadHost,
    /// The port is empty, not a number, 0, or above 65535.
    #[error("its port is not a number from 1 to 65535")]
    BadPort,
}

/// The port a scheme has when an origin names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

impl FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(text: &str) -> Result<Origin, InvalidOrigin> {
        if text.eq_ignore_ascii_case("null") {
            return Err(InvalidOrigin::Opaque);
        }
        let (scheme, rest) = text.split_once("://").ok_or(InvalidOrigin::NoScheme)?;
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(InvalidOrigin::BadScheme);
        }
        if rest.contains(['/', '?', '#']) {
            return Err(InvalidOrigin::HasPath);
        }
        if rest.contains('@') {
            return Err(InvalidOrigin::HasUserInfo);
        }
        let (host, port) = split_host_port(rest)?;
        if host.is_empty() {
            return Err(InvalidOrigin::EmptyHost);
        }
        let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(ipv6) => {
                !ipv6.is_empty()
                    && ipv6
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            }
            None => host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')),
        };
        if !host_ok {
            return Err(InvalidOrigin::BadHost);
        }
        let scheme = scheme.to_ascii_lowercase();
        let port = match port {
            None => None,
            Some(digits) => {
                let port = digits
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| digits.parse::<u16>().ok())
                    .flatten()
                    .filter(|&p| p != 0)
                    .ok_or(InvalidOrigin::BadPort)?;
                Some(port).filter(|&p| Some(p) != default_port(&scheme))
            }
        };
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// `host[:port]` or `[v6]:port` → host and the port's text, if any.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), InvalidOrigin> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(InvalidOrigin::BadHost)?;
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(InvalidOrigin::BadHost),
            },
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

impl fmt::Display for Origin {
    /// The origin's serialization, without a default port.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Which `Origin`s may upgrade (`--allowed-origins`, `--require-origin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<Origin>,
    required: bool,
}

impl OriginPolicy {
    /// Only `allowed` origins when it is not empty (any otherwise); a
    /// request without `Origin` only when `required` is false.
    pub fn new(allowed: Vec<Origin>, required: bool) -> OriginPolicy {
        OriginPolicy { allowed, required }
    }

    /// The allowed origins; empty: any.
    pub fn allowed(&self) -> &[Origin] {
        &self.allowed
    }

    /// Whether a request must send `Origin`.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Checks a request's `Origin` header value (`None`: not sent; an empty
    /// value counts as not sent). A value that is not an origin (`null`,
    /// garbage) matches no allowed origin.
    ///
    /// # Errors
    /// [`Rejection::Forbidden`] when the origin is not allowed, or is
    /// missing and required.
    pub fn check(&self, origin: Option<&str>) -> Result<(), Rejection> {
        match origin.filter(|o| !o.is_empty()) {
            None if self.required => Err(Rejection::Forbidden("Origin header required")),
            None => Ok(()),
            Some(_) if self.allowed.is_empty() => Ok(()),
            Some(text) => match text.parse::<Origin>() {
                Ok(origin) if self.allowed.contains(&origin) => Ok(()),
                _ => Err(Rejection::Forbidden("origin not allowed")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Origin {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} is an origin: {e}"))
    }

    #[test]
    fn same_origins() {
        for (a, b) in [
            ("https://a.test", "https://a.test:443"),
            ("https://A.Test", "HTTPS://a.test"),
            ("http://a.test:80", "http://a.test"),
            ("wss://a.test:443", "wss://a.test"),
            ("ws://a.test:80", "ws://a.test"),
            ("http://[::1]:80", "http://[::1]"),
            ("https://[FE80::1]:8443", "https://[fe80::1]:8443"),
            ("http://127.0.0.1:6001", "http://127.0.0.1:6001"),
            ("capacitor://localhost", "Capacitor://LOCALHOST"),
            ("chrome-extension://abcdef", "chrome-extension://abcdef"),
        ] {
            assert_eq!(origin(a), origin(b), "{a} vs {b}");
        }
    }

    #[test]
    fn different_origins() {
        for (a, b) in [
            ("https://a.test", "http://a.test"),
            ("https://a.test", "https://a.test:8443"),
            ("https://a.test", "https://b.test"),
            ("https://a.test", "https://www.a.test"),
            ("http://a.test:443", "https://a.test"),
            ("https://a.test", "wss://a.test"),
            ("app://x:1", "app://x"),
        ] {
            assert_ne!(origin(a), origin(b), "{a} vs {b}");
        }
    }

    #[test]
    fn serialization_drops_default_ports() {
        assert_eq!(origin("HTTPS://A.test:443").to_string(), "https://a.test");
        assert_eq!(
            origin("http://a.test:8080").to_string(),
            "http://a.test:8080"
        );
        assert_eq!(origin("http://[::1]:80").to_string(), "http://[::1]");
    }

    #[test]
    fn not_origins() {
        for (text, why) in [
            ("null", InvalidOrigin::Opaque),
            ("a.test", InvalidOrigin::NoScheme),
            ("", InvalidOrigin::NoScheme),
            ("https:/a.test", InvalidOrigin::NoScheme),
            ("://a.test", InvalidOrigin::BadScheme),
            ("1http://a.test", InvalidOrigin::BadScheme),
            ("ht tp://a.test", InvalidOrigin::BadScheme),
            ("https://a.test/", InvalidOrigin::HasPath),
            ("https://a.test/app", InvalidOrigin::HasPath),
            ("https://a.test?x", InvalidOrigin::HasPath),
            ("https://a.test#x", InvalidOrigin::HasPath),
            ("https://u:p@a.test", InvalidOrigin::HasUserInfo),
            ("https://", InvalidOrigin::EmptyHost),
            ("https://:443", InvalidOrigin::EmptyHost),
            ("https://*.a.test", InvalidOrigin::BadHost),
            ("https://a test", InvalidOrigin::BadHost),
            ("https://bücher.test", InvalidOrigin::BadHost),
            ("https://[::1", InvalidOrigin::BadHost),
            ("https://[]", InvalidOrigin::BadHost),
            ("https://[::1]x", InvalidOrigin::BadHost),
            ("https://[g::1]", InvalidOrigin::BadHost),
            ("https://a.test:", InvalidOrigin::BadPort),
            ("https://a.test:0", InvalidOrigin::BadPort),
            ("https://a.test:65536", InvalidOrigin::BadPort),
            ("https://a.test:+1", InvalidOrigin::BadPort),
            ("https://a.test:1:2", InvalidOrigin::BadPort),
        ] {
            assert_eq!(text.parse::<Origin>(), Err(why), "{text:?}");
        }
    }

    #[test]
    fn policy() {
        let forbidden = Err(Rejection::Forbidden("origin not allowed"));
        let required = Err(Rejection::Forbidden("Origin header required"));
        let any = OriginPolicy::default();
        assert_eq!(any.check(None), Ok(()));
        assert_eq!(any.check(Some("garbage")), Ok(()));
        assert_eq!(any.check(Some("null")), Ok(()));

        let listed = OriginPolicy::new(
            vec![origin("https://a.test"), origin("http://b.test:8080")],
            false,
        );
        assert_eq!(listed.check(None), Ok(()));
        assert_eq!(listed.check(Some("")), Ok(()));
        assert_eq!(listed.check(Some("https://A.TEST:443")), Ok(()));
        assert_eq!(listed.check(Some("http://b.test:8080")), Ok(()));
        assert_eq!(listed.check(Some("http://b.test")), forbidden);
        assert_eq!(listed.check(Some("http://a.test")), forbidden);
        assert_eq!(listed.check(Some("null")), forbidden);
        assert_eq!(listed.check(Some("https://a.test/")), forbidden);

        let strict = OriginPolicy::new(vec![origin("https://a.test")], true);
        assert_eq!(strict.check(None), required);
        assert_eq!(strict.check(Some("")), required);
        assert_eq!(strict.check(Some("https://a.test")), Ok(()));
        assert_eq!(strict.check(Some("https://c.test")), forbidden);

        let any_browser = OriginPolicy::new(Vec::new(), true);
        assert_eq!(any_browser.check(None), required);
        assert_eq!(any_browser.check(Some("https://c.test")), Ok(()));
    }
}
