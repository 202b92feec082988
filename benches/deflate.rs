//! permessage-deflate's cost per message, and the backend choice behind it:
//! a 1 KiB chat JSON compressed and inflated with `flate2` on zlib-rs (what
//! the node links) at levels 1 and 6, against `miniz_oxide` (flate2's
//! default pure-Rust backend) at the same levels, each with one compressor
//! reset per message as the node does. Prints each variant's
//! compressed size once.
//!
//! `cargo bench --bench deflate` (quick check: `-- --test`).

use std::cell::RefCell;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::{Compress, Compression, FlushCompress};
use freeim_server::ws::deflate::deflate_message;
use freeim_server::ws::inflate::inflate_message;
use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
};

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

/// zlib-rs through flate2 at `level`, one compressor reset per message (as
/// the node does): raw DEFLATE with a sync flush.
fn zlib_rs(level: u32) -> impl Fn(&[u8]) -> Vec<u8> {
    let compress = RefCell::new(Compress::new(Compression::new(level), false));
    move |input| {
        let mut compress = compress.borrow_mut();
        compress.reset();
        let mut out = Vec::with_capacity(input.len() + 64);
        compress
            .compress_vec(input, &mut out, FlushCompress::Sync)
            .unwrap();
        out
    }
}

/// miniz_oxide at `level`, one compressor reset per message: raw DEFLATE
/// with a sync flush.
fn miniz(level: i32) -> impl Fn(&[u8]) -> Vec<u8> {
    let flags = create_comp_flags_from_zip_params(level, -15, 0);
    let compressor = RefCell::new(CompressorOxide::new(flags));
    move |input| {
        let mut compressor = compressor.borrow_mut();
        compressor.reset();
        let mut out = Vec::with_capacity(input.len() + 64);
        compress_to_output(&mut compressor, input, TDEFLFlush::Sync, |chunk| {
            out.extend_from_slice(chunk);
            true
        });
        out
    }
}

fn compress(c: &mut Criterion) {
    let json = chat_json();
    let mut group = c.benchmark_group("deflate_1KiB_json");
    group.throughput(Throughput::Bytes(json.len() as u64));
    let (zlib_1, zlib_6, miniz_1, miniz_6) = (zlib_rs(1), zlib_rs(6), miniz(1), miniz(6));
    let variants: [Variant; 5] = [
        ("node (zlib-rs, LEVEL)", &|i| deflate_message(i).unwrap()),
        ("zlib-rs level 1", &zlib_1),
        ("zlib-rs level 6", &zlib_6),
        ("miniz_oxide level 1", &miniz_1),
        ("miniz_oxide level 6", &miniz_6),
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
    // The tail back, then an empty final block (miniz_oxide's one-shot API
    // wants a finished stream).
    let mut finished = data.clone();
    finished.extend_from_slice(&[0x00, 0x00, 0xff, 0xff, 0x03, 0x00]);
    group.bench_function("miniz_oxide", |b| {
        b.iter(|| miniz_oxide::inflate::decompress_to_vec(black_box(&finished)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, compress, inflate);
criterion_main!(benches);
