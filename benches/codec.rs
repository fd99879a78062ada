//! Codec benchmarks: unmasking beside a plain copy, incremental UTF-8 beside
//! `std::str::from_utf8`, and decoding a stream of small frames.
//!
//! Run with `cargo bench --bench codec`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrows::proto::frame::{encode_frame, OpCode};
use ferrows::proto::mask::{apply_mask, apply_mask_bytewise};
use ferrows::proto::utf8::Utf8Validator;
use ferrows::proto::{Config, Connection};

const SIZES: [(usize, &str); 4] = [(16, "16B"), (1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for (size, name) in SIZES {
        let source: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut buf = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("copy_from_slice", name), &size, |b, _| {
            b.iter(|| buf.copy_from_slice(black_box(&source)));
        });
        group.bench_with_input(BenchmarkId::new("apply_mask", name), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), [0x12, 0x34, 0x56, 0x78], 1));
        });
        group.bench_with_input(BenchmarkId::new("apply_mask_bytewise", name), &size, |b, _| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), [0x12, 0x34, 0x56, 0x78], 1));
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let ascii: Vec<u8> = (0..64 << 10).map(|i| b'a' + (i % 26) as u8).collect();
    let mixed: Vec<u8> = "Hello, κόσμε! Привет мир. 你好世界 🦀🚀 ".bytes().cycle().take(64 << 10).collect();
    // Cut at a character boundary so both inputs are valid.
    let mixed = String::from_utf8_lossy(&mixed).into_owned().into_bytes();
    let mut group = c.benchmark_group("utf8");
    for (name, input) in [("ascii_64KiB", &ascii), ("mixed_64KiB", &mixed)] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(BenchmarkId::new("std_from_utf8", name), |b| {
            b.iter(|| std::str::from_utf8(black_box(input)).is_ok());
        });
        group.bench_function(BenchmarkId::new("validator_whole", name), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.feed(black_box(input)).is_ok() && v.finish().is_ok()
            });
        });
        group.bench_function(BenchmarkId::new("validator_4KiB_pieces", name), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                black_box(input).chunks(4093).all(|piece| v.feed(piece).is_ok()) && v.finish().is_ok()
            });
        });
    }
    group.finish();
}

fn decode_small_frames(c: &mut Criterion) {
    // 1,000 masked client frames of 16 bytes each, as one read.
    const FRAMES: usize = 1000;
    let mut stream = Vec::new();
    for i in 0..FRAMES {
        let opcode = if i % 2 == 0 { OpCode::Text } else { OpCode::Binary };
        encode_frame(true, 0, opcode, b"0123456789abcdef", Some([1, 2, 3, 4]), &mut stream);
    }
    let mut config = Config::default();
    config.keepalive = None;
    let now = Instant::now();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("small_frames_16B", |b| {
        let mut conn = Connection::server(config.clone(), now);
        let mut scratch = stream.clone();
        b.iter(|| {
            scratch.copy_from_slice(&stream);
            conn.handle_read(&mut scratch, now).unwrap();
            let mut n = 0;
            while let Some(event) = conn.poll_event() {
                black_box(event);
                n += 1;
            }
            assert_eq!(n, FRAMES);
        });
    });
    group.finish();
}

criterion_group!(benches, masking, utf8, decode_small_frames);
criterion_main!(benches);
