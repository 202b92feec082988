//! The subscriber's pub/sub connection: a plain socket to Redis that reads as
//! much as the kernel has, then hands every complete message in it to the
//! caller at once. One `read` can thus carry hundreds of commands, which the
//! subscriber posts to the event loops with one wake-up per loop.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};

use super::resp::{parse_reply, Push, Reply};

/// Bytes read per `read` call at first; grows for larger messages.
const READ_CHUNK: usize = 64 * 1024;

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A subscribed connection.
pub struct PubSubConnection {
    stream: Stream,
    buf: Vec<u8>,
    filled: usize,
}

impl PubSubConnection {
    /// Connects (authenticating when `info` has a password) and subscribes to
    /// `channels`, waiting at most `timeout` for each step.
    pub fn open(info: &ConnectionInfo, channels: &[String], timeout: Duration) -> io::Result<Self> {
        let stream = match &info.addr {
            ConnectionAddr::Tcp(host, port) => {
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "no address for Redis host")
                    })?;
                let stream = TcpStream::connect_timeout(&addr, timeout)?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            ConnectionAddr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "TLS Redis URLs are not supported",
                ))
            }
        };
        let mut conn = PubSubConnection {
            stream,
            buf: vec![0; READ_CHUNK],
            filled: 0,
        };
        conn.set_read_timeout(Some(timeout))?;
        if let Some(password) = &info.redis.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(username) = &info.redis.username {
                auth.push(username.as_bytes());
            }
            auth.push(password.as_bytes());
            conn.write_command(&auth)?;
            conn.expect_replies(1)?;
        }
        let mut subscribe: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        subscribe.extend(channels.iter().map(|c| c.as_bytes()));
        conn.write_command(&subscribe)?;
        conn.expect_replies(channels.len())?;
        // Commands arrive whenever business services send them.
        conn.set_read_timeout(None)?;
        Ok(conn)
    }

    /// Blocks until data arrives, then calls `on_message(channel, payload)`
    /// for every complete message received. Fails when the connection does.
    pub fn read(&mut self, mut on_message: impl FnMut(&[u8], &[u8])) -> io::Result<()> {
        self.fill()?;
        let mut at = 0;
        while let Some((reply, used)) = parse_reply(&self.buf[at..self.filled]).map_err(invalid)? {
            if let Reply::Error(text) = reply {
                return Err(invalid(String::from_utf8_lossy(text)));
            }
            if let Push::Message { channel, payload } = reply.as_push() {
                on_message(channel, payload);
            }
            at += used;
        }
        self.buf.copy_within(at..self.filled, 0);
        self.filled -= at;
        Ok(())
    }

    /// Reads replies until `count` have arrived; an error reply fails.
    fn expect_replies(&mut self, mut count: usize) -> io::Result<()> {
        while count > 0 {
            self.fill()?;
            let mut at = 0;
            while count > 0 {
                let Some((reply, used)) =
                    parse_reply(&self.buf[at..self.filled]).map_err(invalid)?
                else {
                    break;
                };
                if let Reply::Error(text) = reply {
                    return Err(invalid(String::from_utf8_lossy(text)));
                }
                at += used;
                count -= 1;
            }
            self.buf.copy_within(at..self.filled, 0);
            self.filled -= at;
        }
        Ok(())
    }

    /// One `read` into the free end of the buffer (grown when full).
    fn fill(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        let free = &mut self.buf[self.filled..];
        let n = match &mut self.stream {
            Stream::Tcp(stream) => stream.read(free)?,
            Stream::Unix(stream) => stream.read(free)?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        self.filled += n;
        Ok(())
    }

    fn write_command(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut command = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            command.extend_from_slice(arg);
            command.extend_from_slice(b"\r\n");
        }
        match &mut self.stream {
            Stream::Tcp(stream) => stream.write_all(&command),
            Stream::Unix(stream) => stream.write_all(&command),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)
            }
            Stream::Unix(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)
            }
        }
    }
}

fn invalid(error: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}
