//! Pieces of the final summary shared by the modes, and the exit status.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::args::Options;
use crate::histogram::Histogram;
use crate::shared::Shared;

/// Nanoseconds as microseconds with one decimal.
pub fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// `count` per second of `time` (0 if no time passed).
pub fn per_sec(count: u64, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        count as f64 / time.as_secs_f64()
    }
}

/// The latency line of a summary.
pub fn latency_line(h: &Histogram) -> String {
    if h.count() == 0 {
        return "no samples".to_owned();
    }
    format!(
        "min {}  p50 {}  p99 {}  p99.9 {}  max {}  mean {} (µs, {} samples)",
        us(h.min()),
        us(h.quantile(0.50)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        us(h.mean()),
        h.count()
    )
}

/// The `pNN_us=` fields of a RESULT line.
pub fn latency_fields(h: &Histogram) -> String {
    format!(
        "p50_us={} p99_us={} p999_us={} max_us={}",
        us(h.quantile(0.50)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max())
    )
}

/// Prints the summary lines every mode ends with: closes, deflate, errors.
pub fn print_closes_and_errors(opts: &Options, shared: &Shared, clean: u64, unclean: u64, errors: u64) {
    println!("  closes     {}", closes_line(clean, unclean));
    if let Some(line) = deflate_line(opts, shared) {
        println!("  deflate    {line}");
    }
    println!("  errors     {errors}");
}

/// The closes line: how many of our Close frames the server answered.
pub fn closes_line(clean: u64, unclean: u64) -> String {
    format!("{clean} answered by the server's Close, {unclean} not answered in time")
}

/// The deflate line of a summary: on how many connections the server
/// accepted permessage-deflate; `None` when it was not offered.
pub fn deflate_line(opts: &Options, shared: &Shared) -> Option<String> {
    if !opts.deflate {
        return None;
    }
    let (deflated, opened) = (shared.deflated.load(Relaxed), shared.opened.load(Relaxed));
    let mut line = format!("{deflated} of {opened} connections");
    if deflated < opened {
        line += &format!("; the server declined permessage-deflate on {}", opened - deflated);
    }
    if opts.deflate_no_context_takeover {
        line += ", without context takeover";
    }
    Some(line)
}

/// Prints the errors by kind and returns the exit status: 1 if nothing
/// connected or anything went wrong, else 0.
pub fn conclude(shared: &Shared, url: &str) -> i32 {
    let errors = shared.errors.load(Relaxed);
    let kinds = shared.error_kinds();
    if !kinds.is_empty() {
        println!("errors by kind:");
        for (kind, count) in kinds {
            println!("  {count:>8}  {kind}");
        }
    }
    if shared.opened.load(Relaxed) == 0 {
        eprintln!("ferrows-load: no connection to {url} could be opened");
        return 1;
    }
    if errors > 0 {
        eprintln!("ferrows-load: {errors} error(s) during the run");
        return 1;
    }
    0
}

/// Thread `index`'s part of `total` split over `threads` threads.
pub fn share(total: usize, threads: usize, index: usize) -> usize {
    total / threads + usize::from(index < total % threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, threads) in [(10, 3), (1, 1), (7, 7), (100, 4)] {
            assert_eq!((0..threads).map(|i| share(total, threads, i)).sum::<usize>(), total);
        }
    }
}
