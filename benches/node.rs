//! Benchmarks of the node's per-message work without I/O: decoding a command
//! published on Redis, and routing one message to 1, 1,000 and 10,000 local
//! connections (registry lookups, the echo rule, appending the frame to each
//! socket's queue). Writing the queues to sockets is measured end to end by
//! `freeim-loadtest`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use freeim_protocol::decode_command;
use freeim_server::bus::{Audience, Frame, Push};
use freeim_server::config::DEFAULT_COMPRESSION_MIN_BYTES;
use freeim_server::node::conn::{Conn, IoStep, Wire};
use freeim_server::node::connections::Connections;
use freeim_server::node::delivery::route;
use freeim_server::node::registry::Registry;

/// The node's own allocator, so allocation costs here match the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn decode(c: &mut Criterion) {
    let message = serde_json::to_string(&serde_json::json!({"text": "x".repeat(100)})).unwrap();
    let send_one =
        serde_json::json!({"Item1": 1, "Item2": [2], "Item3": message, "Item4": true}).to_string();
    let receivers: Vec<i64> = (0..100).collect();
    let send_many =
        serde_json::json!({"Item1": 1, "Item2": receivers, "Item3": message, "Item4": false})
            .to_string();
    let chan = format!(
        "__FreeIM__(ChanMessage){}",
        serde_json::json!({"Item1": 1, "Item2": "room", "Item3": message, "Item4": true})
    );
    let mut group = c.benchmark_group("decode_command");
    for (name, payload) in [
        ("send_1", &send_one),
        ("send_100", &send_many),
        ("chan", &chan),
    ] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| decode_command(payload.as_bytes()).unwrap())
        });
    }
    group.finish();
}

/// `n` connections, one per client (they hold no socket: routing never
/// writes).
fn connections(n: usize) -> (Connections, Registry) {
    let mut conns = Connections::default();
    let mut registry = Registry::default();
    for client_id in 0..n as i64 {
        let id = conns.insert(u64::MAX);
        registry.add(client_id, id.key);
    }
    (conns, registry)
}

/// Sockets that take nothing (never asked: no queue reaches the cap).
struct Full;

impl Wire for Full {
    fn flush(&mut self, _key: u32, _conn: &mut Conn) -> IoStep {
        IoStep::WouldBlock
    }
}

fn routing(c: &mut Criterion) {
    const MOST: usize = 10_000;
    let (mut conns, registry) = connections(MOST);
    let frame = Arc::new(Frame::text(
        &serde_json::to_string("hello, a 40-byte push message").unwrap(),
    ));
    let mut group = c.benchmark_group("route_one_message");
    for n in [1usize, 1_000, MOST] {
        let push = Push {
            sender: 0,
            audience: Audience::Clients((0..n as i64).collect()),
            frame: frame.clone(),
            receipt: false,
        };
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &push, |b, push| {
            b.iter(|| {
                let min_deflate = DEFAULT_COMPRESSION_MIN_BYTES;
                let routed = route(
                    &registry,
                    &mut conns,
                    &mut Full,
                    push,
                    0,
                    1 << 20,
                    min_deflate,
                );
                for key in conns.take_dirty() {
                    if let Some(conn) = conns.get_mut(key) {
                        conn.discard_unstarted();
                    }
                }
                routed.pushed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, routing);
criterion_main!(benches);
