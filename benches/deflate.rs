//! permessage-deflate's cost per message, and the backend choice behind it:
//! a 1 KiB chat JSON compressed and inflated with `flate2` on zlib-rs (what
//! the node links) at levels 1 and 6, against `miniz_oxide` (flate2's
//! default pure-Rust backend) at the same levels. Prints each variant's
//! compressed size once.
//!
//! `cargo bench --bench deflate` (quick check: `-- --test`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::{Compress, Compression, FlushCompress};
use freeim_server::ws::deflate::deflate_message;
use freeim_server::ws::inflate::inflate_message;

/// About 1 KiB of JSON as a chat service pushes it (the load tester's
/// `--payload-bytes 1024` messages are similar).
fn chat_json() -> Vec<u8> {
    let mut text = String::from(r#"{"type":"chan","room":"general","lines":["#);
    for i in 0..14 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"id":{},"from":"user{}","text":"see you at the station at nine, bring the tickets"}}"#,
            1000 + i,
            i % 3
        ));
    }
    text.push_str("]}");
    text.into_bytes()
}

/// A compressor under test: its name and what it makes of the input.
type Variant<'a> = (&'a str, &'a dyn Fn(&[u8]) -> Vec<u8>);

/// zlib-rs through flate2 at `level`: raw DEFLATE with a sync flush.
fn zlib_rs(level: u32, input: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() + 64);
    compress
        .compress_vec(input, &mut out, FlushCompress::Sync)
        .unwrap();
    out
}

fn compress(c: &mut Criterion) {
    let json = chat_json();
    let mut group = c.benchmark_group("deflate_1KiB_json");
    group.throughput(Throughput::Bytes(json.len() as u64));
    let variants: [Variant; 5] = [
        ("node (zlib-rs, LEVEL)", &|i| deflate_message(i).unwrap()),
        ("zlib-rs level 1", &|i| zlib_rs(1, i)),
        ("zlib-rs level 6", &|i| zlib_rs(6, i)),
        ("miniz_oxide level 1", &|i| {
            miniz_oxide::deflate::compress_to_vec(i, 1)
        }),
        ("miniz_oxide level 6", &|i| {
            miniz_oxide::deflate::compress_to_vec(i, 6)
        }),
    ];
    for (name, run) in variants {
        eprintln!("{name}: {} -> {} bytes", json.len(), run(&json).len());
        group.bench_function(name, |b| b.iter(|| run(black_box(&json))));
    }
    group.finish();
}

fn inflate(c: &mut Criterion) {
    let json = chat_json();
    let data = deflate_message(&json).unwrap();
    let mut group = c.benchmark_group("inflate_1KiB_json");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("node (zlib-rs)", |b| {
        b.iter(|| {
            let mut total = 0;
            inflate_message(black_box(&data), 1 << 20, &mut |piece| {
                total += piece.len();
                Ok(())
            })
            .unwrap();
            total
        })
    });
    let mut finished = data.clone();
    finished.extend_from_slice(&[0x03, 0x00]); // an empty final block
    group.bench_function("miniz_oxide", |b| {
        b.iter(|| miniz_oxide::inflate::decompress_to_vec(black_box(&finished)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, compress, inflate);
criterion_main!(benches);
