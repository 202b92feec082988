//! Benchmarks for the pure codec pieces: decoding masked client frames,
//! encoding server frames, masking, and parsing an upgrade request.
//!
//! Quick check that they run: `cargo bench --bench codec -- --test`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use freeim_server::http::parse_upgrade;
use freeim_server::ws::mask::apply_mask;
use freeim_server::ws::{
    encode_frame, encode_masked_frame, Event, MessageReader, OpCode, ReaderConfig,
};

const SIZES: [(&str, usize); 3] = [("16B", 16), ("1KiB", 1024), ("64KiB", 64 * 1024)];

/// Decodes every frame in `input`; the payload is unmasked in place.
fn decode_all(reader: &mut MessageReader, input: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut events = 0;
    while pos < input.len() {
        let (used, event) = reader.read(&mut input[pos..]).expect("valid frames");
        pos += used;
        events += usize::from(event.is_some());
    }
    events
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        // Binary with a real key: decoding unmasks in place, so decoding the
        // same bytes again re-masks them and every iteration sees a valid frame.
        let mut frame = Vec::new();
        encode_masked_frame(
            &mut frame,
            OpCode::Binary,
            true,
            &vec![0xA5; size],
            [1, 2, 3, 4],
        );
        group.bench_with_input(BenchmarkId::new("binary", name), &size, |b, _| {
            let mut reader = MessageReader::new(ReaderConfig::default());
            b.iter(|| decode_all(&mut reader, black_box(&mut frame)));
        });
        // Text with an all-zero key (still a masked frame): the payload stays
        // valid UTF-8 across iterations, so this measures validation too.
        let mut frame = Vec::new();
        let text = "0123456789abcdef".repeat(size / 16);
        encode_masked_frame(&mut frame, OpCode::Text, true, text.as_bytes(), [0; 4]);
        group.bench_with_input(BenchmarkId::new("text", name), &size, |b, _| {
            let mut reader = MessageReader::new(ReaderConfig::default());
            b.iter(|| decode_all(&mut reader, black_box(&mut frame)));
        });
        // Text kept: assembling the message into a String.
        group.bench_with_input(BenchmarkId::new("text_kept", name), &size, |b, _| {
            let mut reader = MessageReader::new(ReaderConfig {
                keep_data: true,
                ..ReaderConfig::default()
            });
            b.iter(|| {
                let (_, event) = reader.read(black_box(&mut frame)).expect("valid frame");
                matches!(event, Some(Event::Text(Some(_))))
            });
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_frame");
    for (name, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let payload = vec![0x5A; size];
        let mut out = Vec::with_capacity(size + 10);
        group.bench_with_input(BenchmarkId::from_parameter(name), &payload, |b, payload| {
            b.iter(|| {
                out.clear();
                encode_frame(&mut out, OpCode::Text, black_box(payload));
                out.len()
            });
        });
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_mask");
    for (name, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x33; size];
        group.bench_function(name, |b| {
            b.iter(|| apply_mask(black_box(&mut buf), [0x12, 0x34, 0x56, 0x78]));
        });
    }
    group.finish();
}

/// A request as Chrome sends it.
const BROWSER_REQUEST: &[u8] = b"GET /ws?token=Zm9vYmFyYmF6cXV4%2Bx HTTP/1.1\r\n\
Host: push.example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://app.example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=0123456789abcdef0123456789abcdef\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

fn upgrade(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_upgrade");
    group.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));
    group.bench_function("browser", |b| {
        b.iter(|| {
            parse_upgrade(black_box(BROWSER_REQUEST), "/ws", 8192)
                .expect("valid request")
                .map(|(_, used)| used)
        });
    });
    group.finish();
}

criterion_group!(benches, decode, encode, mask, upgrade);
criterion_main!(benches);
