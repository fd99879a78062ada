//! permessage-deflate backends side by side: zlib-rs (through flate2, what
//! ferrows uses) and miniz_oxide, compressing and inflating 1 KiB JSON-like
//! messages with a sync flush and context takeover, as a connection does.
//!
//! Run with `cargo bench --bench deflate`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use miniz_oxide::deflate::core::{compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush};
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush};

fn message(i: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut n = i;
    while s.len() < 1024 {
        s.push_str(&format!(
            "{{\"id\":{n},\"user\":\"user-{}\",\"score\":{},\"tags\":[\"a\",\"b\"]}},",
            n % 97,
            n * 7 % 1000
        ));
        n += 1;
    }
    s.truncate(1024);
    s.into_bytes()
}

fn backends(c: &mut Criterion) {
    let messages: Vec<Vec<u8>> = (0..64).map(|i| message(i * 13)).collect();
    let mut group = c.benchmark_group("deflate_1KiB_json");
    group.throughput(Throughput::Bytes(1024));

    // zlib-rs through flate2.
    let mut zc = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let mut zd = Decompress::new_with_window_bits(false, 15);
    let mut out = Vec::with_capacity(4096);
    let mut back = Vec::with_capacity(4096);
    let mut i = 0;
    group.bench_function("zlib-rs/compress+inflate", |b| {
        b.iter(|| {
            let m = &messages[i % messages.len()];
            i += 1;
            out.clear();
            zc.compress_vec(black_box(m), &mut out, FlushCompress::Sync).unwrap();
            back.clear();
            zd.decompress_vec(&out, &mut back, FlushDecompress::Sync).unwrap();
            assert_eq!(back.len(), m.len());
        });
    });

    // miniz_oxide directly.
    let flags = create_comp_flags_from_zip_params(6, -15, 0);
    let mut mc = Box::new(CompressorOxide::new(flags));
    let mut md = InflateState::new_boxed(DataFormat::Raw);
    let mut obuf = vec![0u8; 4096];
    let mut ibuf = vec![0u8; 4096];
    let mut j = 0;
    group.bench_function("miniz_oxide/compress+inflate", |b| {
        b.iter(|| {
            let m = &messages[j % messages.len()];
            j += 1;
            let (_, _, written) = compress(&mut mc, black_box(m), &mut obuf, TDEFLFlush::Sync);
            let result = inflate(&mut md, &obuf[..written], &mut ibuf, MZFlush::Sync);
            assert_eq!(result.bytes_written, m.len());
        });
    });
    group.finish();

    // Compressed size, for the record.
    let mut zc = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let mut mc = Box::new(CompressorOxide::new(flags));
    let (mut zsize, mut msize) = (0, 0);
    for m in &messages {
        out.clear();
        zc.compress_vec(m, &mut out, FlushCompress::Sync).unwrap();
        zsize += out.len();
        let (_, _, written) = compress(&mut mc, m, &mut obuf, TDEFLFlush::Sync);
        msize += written;
    }
    println!("compressed 64 KiB of messages: zlib-rs {zsize} bytes, miniz_oxide {msize} bytes");
}

criterion_group!(benches, backends);
criterion_main!(benches);
