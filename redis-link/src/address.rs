//! [`RedisUrl`]: the URL forms of the crate docs, parsed and checked once.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Default port of a Redis server.
const REDIS_PORT: u16 = 6379;
/// Default port of a Redis Sentinel.
const SENTINEL_PORT: u16 = 26379;

/// A URL that is not one of the forms in the crate docs; the message names
/// what is wrong and never contains a password.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct AddressError(String);

fn bad(message: impl Into<String>) -> AddressError {
    AddressError(message.into())
}

impl AddressError {
    /// This error, or a generic one when the URL holds an `@`: then the
    /// text it quotes may be part of a password cut off by a `?` or `#`.
    fn unless_secret(self, url_rest: &str) -> AddressError {
        if url_rest.contains('@') {
            bad(
                "bad host or port in the Redis URL; characters such as '?', '#' or '%' in \
                 the user or password must be percent-encoded",
            )
        } else {
            self
        }
    }
}

/// Where the primary is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// A host name (looked up on every connect) and port.
    Tcp { host: String, port: u16 },
    /// A Unix socket.
    Unix(PathBuf),
    /// Ask these sentinels for the primary called `master`.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
    },
    /// A Redis Cluster; ask these seeds which master serves a slot.
    Cluster { seeds: Vec<(String, u16)> },
}

/// Credentials for one AUTH.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Credentials {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

/// A parsed, validated Redis URL (see the crate docs for the forms).
///
/// # Example
///
/// ```
/// use redis_link::RedisUrl;
///
/// let url: RedisUrl = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2/im/2".parse()?;
/// assert_eq!(url.to_string(), "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26379/im/2");
/// assert!(url.is_sentinel());
/// assert!("http://nope".parse::<RedisUrl>().is_err());
/// # Ok::<(), redis_link::AddressError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub(crate) place: Place,
    /// TLS to every server; `Some(ca)` when the URL names a CA file.
    pub(crate) tls: Option<Tls>,
    pub(crate) db: i64,
    /// The primary's credentials.
    pub(crate) auth: Credentials,
    /// The sentinels' credentials.
    pub(crate) sentinel_auth: Credentials,
    /// The sentinel (or cluster seed) that answered last, asked first next
    /// time (shared by clones of this URL).
    pub(crate) first_to_ask: FirstToAsk,
}

/// An index into the sentinel or seed list, shared by clones; not part of what a
/// URL *is*, so every two values compare equal.
#[derive(Clone, Default, Debug)]
pub(crate) struct FirstToAsk(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl FirstToAsk {
    pub(crate) fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set(&self, index: usize) {
        self.0.store(index, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PartialEq for FirstToAsk {
    fn eq(&self, _: &FirstToAsk) -> bool {
        true
    }
}

impl Eq for FirstToAsk {}

/// TLS settings.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Tls {
    /// PEM bytes of the CA to trust instead of the system's roots.
    pub(crate) ca_pem: Option<Arc<Vec<u8>>>,
}

impl RedisUrl {
    /// Whether the primary is found through Sentinel.
    pub fn is_sentinel(&self) -> bool {
        matches!(self.place, Place::Sentinel { .. })
    }

    /// Whether this is a Redis Cluster (`redis+cluster://`).
    pub fn is_cluster(&self) -> bool {
        matches!(self.place, Place::Cluster { .. })
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The database number (`SELECT`), 0 by default.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// The username and password to `AUTH` with on the primary, if any
    /// (a password alone means the `default` user).
    pub fn auth(&self) -> Option<(Option<&str>, &str)> {
        let password = self.auth.password.as_deref()?;
        Some((self.auth.username.as_deref(), password))
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<RedisUrl, AddressError> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            bad("a Redis URL starts with redis://, rediss://, unix:// or redis+sentinel://")
        })?;
        let (tls, sentinel, cluster) = match scheme {
            "redis" => (false, false, false),
            "rediss" => (true, false, false),
            "redis+sentinel" => (false, true, false),
            "rediss+sentinel" => (true, true, false),
            "redis+cluster" => (false, false, true),
            "rediss+cluster" => (true, false, true),
            "unix" | "redis+unix" => return parse_unix(rest),
            other => {
                return Err(bad(format!(
                    "unknown Redis URL scheme {other:?}: use redis, rediss, unix, redis+sentinel, \
                     rediss+sentinel, redis+cluster or rediss+cluster"
                )))
            }
        };
        // The sentinel list is not one URL host: parse it apart and let the
        // `url` crate read (and percent-decode) the rest. The user info ends
        // at the last `@` before the query, so a password holding `/` (as
        // base64 keys do) is not mistaken for the host; nothing of the user
        // info is ever quoted in an error.
        let before_query = rest.find('?').unwrap_or(rest.len());
        let (userinfo, after) = match rest[..before_query].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (hosts, tail) = after.split_at(authority_end);
        let placeholder = match userinfo {
            Some(userinfo) => format!("redis://{}@placeholder{tail}", userinfo.replace('/', "%2F")),
            None => format!("redis://placeholder{tail}"),
        };
        let parsed = url::Url::parse(&placeholder).map_err(|e| match userinfo {
            Some(_) => bad(format!(
                "bad Redis URL ({e}); characters such as '?', '#' or '%' in the user or \
                 password must be percent-encoded"
            )),
            None => bad(format!("bad Redis URL: {e}")),
        })?;
        if parsed.fragment().is_some() {
            return Err(bad("Redis URLs take no #fragment"));
        }
        let auth = Credentials {
            username: decode(parsed.username()).filter(|u| !u.is_empty()),
            password: parsed.password().and_then(decode),
        };
        let mut segments: Vec<String> = parsed
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let place = if sentinel {
            if segments.is_empty() {
                return Err(bad("a Sentinel URL names the master after the hosts: redis+sentinel://host:port,…/master_name"));
            }
            let master = decode(&segments.remove(0)).unwrap_or_default();
            let sentinels = hosts
                .split(',')
                .map(|h| host_port(h, SENTINEL_PORT).map_err(|e| e.unless_secret(rest)))
                .collect::<Result<Vec<_>, _>>()?;
            Place::Sentinel { sentinels, master }
        } else if cluster {
            if !segments.is_empty() {
                return Err(bad(
                    "a Redis Cluster has only database 0: redis+cluster://host:port,host:port/",
                ));
            }
            let seeds = hosts
                .split(',')
                .map(|h| host_port(h, REDIS_PORT).map_err(|e| e.unless_secret(rest)))
                .collect::<Result<Vec<_>, _>>()?;
            Place::Cluster { seeds }
        } else {
            let (host, port) = host_port(hosts, REDIS_PORT).map_err(|e| e.unless_secret(rest))?;
            Place::Tcp { host, port }
        };
        if auth.username.is_some() && auth.password.is_none() {
            return Err(bad(
                "a Redis URL with a user needs its password: redis://user:password@host",
            ));
        }
        let db = match segments.as_slice() {
            [] => 0,
            [db] => db
                .parse::<u32>()
                .map_err(|_| bad(format!("database {db:?} is not a number ≥ 0")))?
                .into(),
            _ => return Err(bad("too many path segments in the Redis URL")),
        };
        let mut url = RedisUrl {
            place,
            tls: tls.then(Tls::default),
            db,
            auth,
            sentinel_auth: Credentials::default(),
            first_to_ask: FirstToAsk::default(),
        };
        url.apply_query(parsed.query_pairs())?;
        Ok(url)
    }
}

impl RedisUrl {
    fn apply_query<'a>(
        &mut self,
        pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> Result<(), AddressError> {
        for (key, value) in pairs {
            match key.as_ref() {
                "ssl_ca_certs" => {
                    let Some(tls) = self.tls.as_mut() else {
                        return Err(bad("ssl_ca_certs needs a rediss:// URL"));
                    };
                    let pem = std::fs::read(value.as_ref())
                        .map_err(|e| bad(format!("cannot read ssl_ca_certs {value:?}: {e}")))?;
                    tls.ca_pem = Some(Arc::new(pem));
                }
                "sentinel_password" => self.sentinel_auth.password = Some(value.into_owned()),
                "sentinel_username" => self.sentinel_auth.username = Some(value.into_owned()),
                other => {
                    return Err(bad(format!(
                        "unknown Redis URL parameter {other:?} (known: ssl_ca_certs, sentinel_password, sentinel_username)"
                    )))
                }
            }
        }
        if !self.is_sentinel() && self.sentinel_auth != Credentials::default() {
            return Err(bad("sentinel_password needs a redis+sentinel:// URL"));
        }
        Ok(())
    }
}

fn parse_unix(rest: &str) -> Result<RedisUrl, AddressError> {
    if rest.contains(['?', '#', '@']) {
        return Err(bad(
            "a unix:// URL is only a socket path (no user, password or parameters)",
        ));
    }
    let path = rest;
    if !path.starts_with('/') {
        return Err(bad(
            "a unix:// URL needs an absolute socket path: unix:///run/redis.sock",
        ));
    }
    Ok(RedisUrl {
        place: Place::Unix(PathBuf::from(path)),
        tls: None,
        db: 0,
        auth: Credentials::default(),
        sentinel_auth: Credentials::default(),
        first_to_ask: FirstToAsk::default(),
    })
}

/// Percent-decodes a user name, password or path segment; None when empty.
/// Not form decoding: `+` is a plus here and `&` an ampersand (only query
/// strings are form-encoded).
fn decode(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (bytes[i], hex) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap_or_default();
                decoded.push(u8::from_str_radix(hex, 16).unwrap_or_default());
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

fn host_port(text: &str, default_port: u16) -> Result<(String, u16), AddressError> {
    let text = text.trim();
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad(format!("bad IPv6 host {text:?}")))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad(format!("bad IPv6 host {text:?}: [address]:port")))?,
            ),
        };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad("a Redis URL needs a host"));
    }
    let port = match port {
        Some(port) => port
            .parse()
            .map_err(|_| bad(format!("port {port:?} is not a number")))?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

fn write_host(f: &mut fmt::Formatter<'_>, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}

/// The URL with its passwords replaced by `***`.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = if self.tls.is_some() { "s" } else { "" };
        let userinfo = |f: &mut fmt::Formatter<'_>| match (&self.auth.username, &self.auth.password)
        {
            (None, None) => Ok(()),
            (user, password) => write!(
                f,
                "{}{}@",
                user.as_deref().unwrap_or(""),
                if password.is_some() { ":***" } else { "" }
            ),
        };
        match &self.place {
            Place::Unix(path) => return write!(f, "unix://{}", path.display()),
            Place::Tcp { host, port } => {
                write!(f, "redis{tls}://")?;
                userinfo(f)?;
                write_host(f, host, *port)?;
            }
            Place::Sentinel { sentinels, master } => {
                write!(f, "redis{tls}+sentinel://")?;
                userinfo(f)?;
                for (i, (host, port)) in sentinels.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_host(f, host, *port)?;
                }
                write!(f, "/{master}")?;
            }
            Place::Cluster { seeds } => {
                write!(f, "redis{tls}+cluster://")?;
                userinfo(f)?;
                for (i, (host, port)) in seeds.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_host(f, host, *port)?;
                }
            }
        }
        write!(f, "/{}", self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RedisUrl {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn cluster_forms() {
        let url = parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2/");
        assert!(url.is_cluster());
        assert_eq!(
            url.place,
            Place::Cluster {
                seeds: vec![("10.0.0.1".into(), 7000), ("10.0.0.2".into(), 6379)]
            }
        );
        assert_eq!(
            url.to_string(),
            "redis+cluster://:***@10.0.0.1:7000,10.0.0.2:6379/0"
        );
        assert!(parse("rediss+cluster://h:1").is_tls());
        let error = "redis+cluster://h:1/2".parse::<RedisUrl>().unwrap_err();
        assert!(error.to_string().contains("only database 0"), "{error}");
    }

    #[test]
    fn plain_forms() {
        let url = parse("redis://127.0.0.1:6380/2");
        assert_eq!(
            url.place,
            Place::Tcp {
                host: "127.0.0.1".into(),
                port: 6380
            }
        );
        assert_eq!(url.db, 2);
        assert_eq!(url.auth(), None);
        assert_eq!(
            parse("redis://localhost").place,
            Place::Tcp {
                host: "localhost".into(),
                port: 6379
            }
        );
        assert_eq!(
            parse("redis://[::1]:7000/").place,
            Place::Tcp {
                host: "::1".into(),
                port: 7000
            }
        );
        assert_eq!(
            parse("unix:///run/redis.sock").place,
            Place::Unix("/run/redis.sock".into())
        );
        assert!(parse("rediss://h:1/").is_tls());
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let url = parse("redis://app:p%40ss%3Aword@h:1/0");
        assert_eq!(url.auth(), Some((Some("app"), "p@ss:word")));
        assert_eq!(url.to_string(), "redis://app:***@h:1/0");
        assert!(!format!("{url:?}").contains("ss"));
        let url = parse("redis://:only@h:1/");
        assert_eq!(url.auth(), Some((None, "only")));
        assert_eq!(url.to_string(), "redis://:***@h:1/0");
        // User info is percent-encoded, not form-encoded.
        let url = parse("redis://a+b:c+d&e%2B%2f%zz%@h:1/");
        assert_eq!(url.auth(), Some((Some("a+b"), "c+d&e+/%zz%")));
    }

    #[test]
    fn passwords_with_url_delimiters() {
        let url = parse("redis://app:Ab3/xYz9+q==@h:6379/0");
        assert_eq!(url.auth(), Some((Some("app"), "Ab3/xYz9+q==")));
        assert_eq!(
            url.place,
            Place::Tcp {
                host: "h".into(),
                port: 6379
            }
        );
        // A raw '?' cannot be told from the query: refused, and the error
        // quotes nothing of the password.
        let error = "redis://app:se?cr#et@h/"
            .parse::<RedisUrl>()
            .unwrap_err()
            .to_string();
        assert!(!error.contains("se") && !error.contains("cr"), "{error}");
    }

    #[test]
    fn sentinel_form() {
        let url = parse("redis+sentinel://:pw@a:26380,b,[::1]:9/mymaster/3?sentinel_password=x");
        assert_eq!(
            url.place,
            Place::Sentinel {
                sentinels: vec![("a".into(), 26380), ("b".into(), 26379), ("::1".into(), 9)],
                master: "mymaster".into()
            }
        );
        assert_eq!(url.db, 3);
        assert_eq!(url.sentinel_auth.password.as_deref(), Some("x"));
        assert_eq!(
            url.to_string(),
            "redis+sentinel://:***@a:26380,b:26379,[::1]:9/mymaster/3"
        );
        assert!(parse("rediss+sentinel://a/m").is_tls());
    }

    #[test]
    fn bad_urls_say_why() {
        for (text, why) in [
            ("http://h", "scheme"),
            ("h:1", "starts with"),
            ("redis+sentinel://a:1", "master"),
            ("redis://h:x/", "port"),
            ("redis://h/zero", "database"),
            ("redis://h/?nope=1", "unknown Redis URL parameter"),
            ("redis://h/?ssl_ca_certs=/x", "rediss"),
            ("rediss://h/?ssl_ca_certs=/does/not/exist", "cannot read"),
            ("redis://h/?sentinel_password=x", "sentinel"),
            ("unix://relative", "absolute"),
            ("redis:///0", "host"),
            ("redis://[::1]junk:7000/", "IPv6"),
            ("unix:///s.sock?db=2", "only a socket path"),
            ("redis://user@h/", "needs its password"),
            ("redis://h/-1", "database"),
        ] {
            let error = text.parse::<RedisUrl>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
