//! The floor under every delivery: what one `write()` to a loopback TCP
//! socket costs the writing thread on this machine, with the reader awake in
//! another thread, as the node's loops and the load generator are.
//!
//! Each iteration writes one small WebSocket frame to every one of N
//! sockets (one `write()` each, as a p2p message or a paced fan-out does),
//! or 16 frames to each in one `write()` (as a fan-out burst does once a loop
//! turn has queued several messages per socket). Time is the writer thread's
//! own CPU time (`CLOCK_THREAD_CPUTIME_ID`), user and system, so it includes
//! the receiving socket's TCP input path that loopback runs in the sender's
//! context; throughput is per frame. A third case writes one frame to each
//! socket after 5 ms of quiet, as a paced fan-out does.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mio::{Events, Interest, Poll, Token};

/// A 64-byte text frame as the node sends it (server frames are unmasked).
const FRAME: [u8; 64] = {
    let mut frame = [b'x'; 64];
    frame[0] = 0x81;
    frame[1] = 62;
    frame
};

/// The writer's ends of `count` loopback connections, and a thread reading
/// every reader's end until dropped.
struct Pairs {
    writers: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pairs {
    fn open(count: usize) -> Pairs {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let mut writers = Vec::with_capacity(count);
        let mut readers = Vec::with_capacity(count);
        for _ in 0..count {
            let writer = TcpStream::connect(address).unwrap();
            writer.set_nodelay(true).unwrap();
            writers.push(writer);
            let (reader, _) = listener.accept().unwrap();
            reader.set_nonblocking(true).unwrap();
            readers.push(mio::net::TcpStream::from_std(reader));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reader = std::thread::spawn({
            let stop = stop.clone();
            move || read_all(readers, &stop)
        });
        Pairs {
            writers,
            stop,
            reader: Some(reader),
        }
    }
}

impl Drop for Pairs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

fn read_all(mut readers: Vec<mio::net::TcpStream>, stop: &AtomicBool) {
    let mut poll = Poll::new().unwrap();
    for (key, reader) in readers.iter_mut().enumerate() {
        poll.registry()
            .register(reader, Token(key), Interest::READABLE)
            .unwrap();
    }
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        for event in &events {
            let reader = &mut readers[event.token().0];
            loop {
                match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
}

fn write_each(writers: &mut [TcpStream], chunk: &[u8]) {
    for writer in writers {
        writer.write_all(chunk).unwrap();
    }
}

/// This thread's CPU time so far.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn loopback_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("loopback_write");
    group.sample_size(20);
    for sockets in [1_000usize, 5_000] {
        let mut pairs = Pairs::open(sockets);
        for frames_per_write in [1usize, 16] {
            let chunk = FRAME.repeat(frames_per_write);
            group.throughput(Throughput::Elements((sockets * frames_per_write) as u64));
            let id = BenchmarkId::new(format!("{frames_per_write}_frames_per_write"), sockets);
            group.bench_function(id, |b| {
                b.iter_custom(|iterations| {
                    let start = thread_cpu_time();
                    for _ in 0..iterations {
                        write_each(&mut pairs.writers, &chunk);
                    }
                    thread_cpu_time() - start
                })
            });
        }
        // As a paced fan-out meets them: the reader has gone back to sleep
        // and the sockets' kernel state has left the caches.
        group.throughput(Throughput::Elements(sockets as u64));
        let id = BenchmarkId::new("1_frame_per_write_after_idle", sockets);
        group.bench_function(id, |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    std::thread::sleep(Duration::from_millis(5));
                    let start = thread_cpu_time();
                    write_each(&mut pairs.writers, &FRAME);
                    spent += thread_cpu_time() - start;
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, loopback_write);
criterion_main!(benches);
