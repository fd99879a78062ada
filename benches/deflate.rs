//! permessage-deflate backends side by side: zlib-rs (through flate2, what
//! ferrows uses) and miniz_oxide, compressing and inflating 1 KiB JSON-like
//! messages with a sync flush and context takeover, as a connection does.
//! First it prints the compression ratio of a chat-like JSON corpus for each
//! context takeover and window setting that permessage-deflate can agree.
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

/// A deterministic conversation: `count` chat messages of 100 to 300 bytes,
/// as a chat application's clients send them.
fn chat_corpus(count: usize) -> Vec<Vec<u8>> {
    const USERS: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
    const ROOMS: [&str; 4] = ["lobby", "general", "support", "random"];
    const SERVICES: [&str; 8] =
        ["payments", "search", "auth", "billing", "export", "notifications", "gateway", "scheduler"];
    const TIMES: [&str; 6] = ["9:15", "10am", "this morning", "lunch", "yesterday", "3pm"];
    // `{u}` a user, `{s}` a service, `{t}` a time, `{n}` a number.
    const SENTENCES: [&str; 40] = [
        "hey, is anyone around?",
        "good morning everyone",
        "did the {s} deploy go out yet?",
        "I think the build is broken on main again, pipeline #{n} failed",
        "{u}, can you review PR #{n} when you get a chance",
        "lunch at noon? the place around the corner has a new menu",
        "the meeting moved to {t}, same room",
        "thanks {u}! that fixed it",
        "no worries, happy to help",
        "I'm seeing timeouts from {s} since {t}, about {n} per minute",
        "restarting the {s} workers now",
        "looks good to me, ship it",
        "could you share the link to the {s} dashboard?",
        "brb, coffee",
        "has anyone tried release candidate {n}?",
        "the tests pass locally but fail in CI, no idea why",
        "I'll be out tomorrow, ping {u} if it's urgent",
        "that's a great idea, let's try it next sprint",
        "which branch should I rebase onto?",
        "the customer says the {s} export is missing two columns",
        "I pushed a fix for ticket {n}, can you check again?",
        "sorry, wrong channel",
        "happy friday!",
        "anyone know why staging is so slow today? queries take {n} ms",
        "we should write this down in the runbook",
        "ok, rolling {s} back to build {n}",
        "latency is back to normal, p99 is {n} ms",
        "see you all on monday",
        "what time zone is the demo at {t} in?",
        "I can take ticket {n}",
        "nice work on the {s} migration {u}, zero downtime",
        "let me check the logs and get back to you",
        "{u} is on call this week, not me",
        "disk usage on the {s} hosts is at {n} GB",
        "the incident review is at {t}",
        "we had {n} signups since {t}, not bad",
        "can we pair on the {s} bug after {t}?",
        "it works on my machine",
        "the docs for {s} are out of date",
        "merged, thanks {u}",
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };
    let sentence = |next: &mut dyn FnMut(usize) -> usize| {
        let mut out = String::new();
        let template = SENTENCES[next(SENTENCES.len())];
        let mut parts = template.split('{');
        out.push_str(parts.next().unwrap_or_default());
        for part in parts {
            let (slot, rest) = part.split_at(1);
            match slot {
                "u" => out.push_str(USERS[next(USERS.len())]),
                "s" => out.push_str(SERVICES[next(SERVICES.len())]),
                "t" => out.push_str(TIMES[next(TIMES.len())]),
                _ => out.push_str(&(1 + next(5000)).to_string()),
            }
            out.push_str(&rest[1..]);
        }
        out
    };
    let mut ts: u64 = 1_764_950_400_000;
    (0..count)
        .map(|id| {
            let (user, room) = (USERS[next(USERS.len())], ROOMS[next(ROOMS.len())]);
            ts += 500 + next(20_000) as u64;
            let head = format!(
                "{{\"type\":\"message\",\"room\":\"{room}\",\"user\":\"{user}\",\"id\":{},\"ts\":{ts},\"text\":\"",
                1000 + id
            );
            let target = 100 + next(201);
            let mut text = sentence(&mut next);
            while head.len() + text.len() + 2 < target {
                let more = sentence(&mut next);
                if head.len() + text.len() + more.len() + 4 > 300 {
                    break;
                }
                text.push_str(". ");
                text.push_str(&more);
            }
            format!("{head}{text}\"}}").into_bytes()
        })
        .collect()
}

/// Compressed bytes over raw bytes for `messages` sent one after another on
/// one connection: raw deflate at level 6, a sync flush per message and its
/// 0x00 0x00 0xff 0xff removed (RFC 7692 §7.2.1), the compressor kept
/// (context takeover) or reset after every message.
fn ratio(messages: &[Vec<u8>], window_bits: u8, context_takeover: bool) -> f64 {
    let mut compressor = Compress::new_with_window_bits(Compression::new(6), false, window_bits);
    let mut out = Vec::with_capacity(1024);
    let (mut raw, mut compressed) = (0, 0);
    for m in messages {
        out.clear();
        compressor.compress_vec(m, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "the output buffer held the whole flush");
        raw += m.len();
        compressed += out.len() - 4;
        if !context_takeover {
            compressor.reset();
        }
    }
    compressed as f64 / raw as f64
}

/// Prints the ratio of each setting on the chat corpus (not timed).
fn ratios(_: &mut Criterion) {
    let corpus = chat_corpus(500);
    let raw: usize = corpus.iter().map(Vec::len).sum();
    println!(
        "chat corpus: {} JSON messages, {raw} bytes, {} to {} bytes each",
        corpus.len(),
        corpus.iter().map(Vec::len).min().unwrap_or(0),
        corpus.iter().map(Vec::len).max().unwrap_or(0)
    );
    println!("{:<36} compressed / raw", "setting (level 6)");
    for bits in (9..=15).rev() {
        println!("{:<36} {:.3}", format!("context takeover, {bits}-bit window"), ratio(&corpus, bits, true));
    }
    println!("{:<36} {:.3}", "no context takeover", ratio(&corpus, 15, false));
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

criterion_group!(benches, ratios, backends);
criterion_main!(benches);
