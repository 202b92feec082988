//! The loop's sockets, by the slot keys of their [`Conn`]s: the only place a
//! connection's socket lives, so that the connection state makes no system
//! call. Reads, writes and the write-side shutdown happen here, on the
//! loop's word.

use std::io::{self, Read};
use std::net::Shutdown;

use mio::net::TcpStream;

use super::conn::{Conn, IoStep, Wire};

/// Each connection's socket, at its slot key.
#[derive(Default)]
pub struct Sockets {
    slots: Vec<Option<TcpStream>>,
}

impl Sockets {
    /// Keeps `stream` as the socket of slot `key`.
    pub fn put(&mut self, key: u32, stream: TcpStream) {
        let key = key as usize;
        if self.slots.len() <= key {
            self.slots.resize_with(key + 1, || None);
        }
        debug_assert!(self.slots[key].is_none(), "slot {key} holds a socket");
        self.slots[key] = Some(stream);
    }

    /// Takes the socket of slot `key` (dropping it closes it).
    pub fn take(&mut self, key: u32) -> Option<TcpStream> {
        self.slots.get_mut(key as usize)?.take()
    }

    /// Whether slot `key` holds a socket.
    pub fn holds(&self, key: u32) -> bool {
        matches!(self.slots.get(key as usize), Some(Some(_)))
    }

    /// How many sockets are kept.
    pub fn count(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Reads once from slot `key`'s socket into `buf`.
    pub fn read(&mut self, key: u32, buf: &mut [u8]) -> IoStep {
        let Some(stream) = self.slots.get_mut(key as usize).and_then(Option::as_mut) else {
            return IoStep::Closed;
        };
        loop {
            return match stream.read(buf) {
                Ok(0) => IoStep::Closed,
                Ok(n) => IoStep::Moved(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => IoStep::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => IoStep::Closed,
            };
        }
    }

    /// Shuts the write side of slot `key`'s socket (after its last bytes).
    pub fn shut_write(&mut self, key: u32) {
        if let Some(Some(stream)) = self.slots.get_mut(key as usize) {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }
}

impl Wire for Sockets {
    fn flush(&mut self, key: u32, conn: &mut Conn) -> IoStep {
        match self.slots.get_mut(key as usize).and_then(Option::as_mut) {
            Some(stream) => conn.flush(stream),
            None => IoStep::Closed,
        }
    }
}
