//! Raw RESP: one command to `127.0.0.1:port` over a fresh TCP connection,
//! without the `redis` crate, so the harness can check a server whatever the
//! code under test does with its own connections.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long [`raw_command`] waits for the connection and for the reply.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one command on `127.0.0.1:port` through a fresh raw RESP connection
/// and returns the reply's first line without its `\r\n` (enough for
/// assertions on integers, strings and errors: `+OK`, `:1`, `$3`, `-ERR …`).
///
/// # Panics
/// When the server cannot be reached or does not answer within 10 s.
pub fn raw_command(port: u16, args: &[&str]) -> String {
    let stream = connect(port, RAW_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect redis on 127.0.0.1:{port}: {e}"));
    (&stream)
        .write_all(&request(args))
        .unwrap_or_else(|e| panic!("write redis on 127.0.0.1:{port}: {e}"));
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read redis on 127.0.0.1:{port}: {e}"));
    line.trim_end().to_string()
}

/// A whole RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+text`
    Status(String),
    /// `-text`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` (None for the null bulk string)
    Bulk(Option<String>),
    /// `*n` (None for the null array)
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or non-null bulk string.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Reply::Status(text) | Reply::Bulk(Some(text)) => Some(text),
            _ => None,
        }
    }

    /// The elements of an array (empty for anything else).
    pub(crate) fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(items)) => items,
            _ => &[],
        }
    }

    /// The value after `key` in a flat `[key, value, key, value, …]` array
    /// (the form of `SENTINEL master` and of each `SENTINEL replicas` entry).
    pub(crate) fn field(&self, key: &str) -> Option<&str> {
        self.items()
            .chunks(2)
            .find(|pair| pair[0].text() == Some(key))
            .and_then(|pair| pair.get(1))
            .and_then(Reply::text)
    }
}

/// Runs one command on `127.0.0.1:port` over a fresh connection, with
/// `timeout` for the connect and for each read and write, and returns the
/// whole reply (a `-ERR` reply is `Ok(Reply::Error)`).
pub(crate) fn query(port: u16, args: &[&str], timeout: Duration) -> io::Result<Reply> {
    let stream = connect(port, timeout)?;
    (&stream).write_all(&request(args))?;
    read_reply(&mut BufReader::new(stream))
}

pub(crate) fn connect(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

pub(crate) fn request(args: &[&str]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request
}

pub(crate) fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad RESP line {line:?}"),
            )
        })
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut data = vec![0; len + 2];
                reader.read_exact(&mut data)?;
                data.truncate(len);
                Reply::Bulk(Some(String::from_utf8_lossy(&data).into_owned()))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(len) => Reply::Array(Some(
                (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<io::Result<_>>()?,
            )),
        },
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad RESP line {line:?}"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_replies() {
        let wire = b"*3\r\n$6\r\nmaster\r\n:42\r\n*2\r\n+OK\r\n$-1\r\n";
        let reply = read_reply(&mut &wire[..]).unwrap();
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Bulk(Some("master".into())),
                Reply::Int(42),
                Reply::Array(Some(vec![Reply::Status("OK".into()), Reply::Bulk(None)])),
            ]))
        );
        let map =
            read_reply(&mut &b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"[..]).unwrap();
        assert_eq!(map.field("b"), Some("2"));
        assert_eq!(map.field("c"), None);
    }
}
