//! The process's descriptor limit, and the connection limit that fits it.
//!
//! A connection is a descriptor. With `max_connections` above what the
//! process may open, the server would run out of descriptors before it
//! reaches its own limit, and a connection past that point could only wait
//! in the backlog, unanswered. So at start the limit is lowered to what the
//! descriptors allow, less a reserve for the rest of the process (listeners,
//! polls, the cluster's links, files, and the connections being answered 503),
//! and a connection past it is answered 503 like any other over the limit.

/// Descriptors kept for the process besides its connections.
const RESERVE: usize = 128;
/// Descriptors kept per event loop (its poll, its waker, its listeners, and
/// connections over the limit being answered 503).
const RESERVE_PER_LOOP: usize = 16;

/// The connection limit for a process that may open `descriptors` at most:
/// `max_connections`, or less where the descriptors would run out first.
pub(crate) fn fit(max_connections: usize, descriptors: Option<u64>, loops: usize) -> usize {
    let Some(descriptors) = descriptors.and_then(|d| usize::try_from(d).ok()) else {
        return max_connections;
    };
    // A small limit keeps at least half its descriptors for connections.
    let reserve = (RESERVE + RESERVE_PER_LOOP * loops).min(descriptors / 2);
    max_connections.min(descriptors - reserve)
}

/// The soft limit on open descriptors (`ulimit -n`), where the platform tells
/// without a system call (Linux: `/proc/self/limits`); `None` when unknown or
/// unlimited.
pub(crate) fn soft_limit() -> Option<u64> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return None;
    }
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_soft_limit(&limits)
}

/// The soft limit in the text of `/proc/self/limits`.
fn parse_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max processes             94006                94006                processes
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
";

    #[test]
    fn reads_the_soft_limit() {
        assert_eq!(parse_soft_limit(LIMITS), Some(20_000));
        assert_eq!(parse_soft_limit(&LIMITS.replace("20000                20000", "unlimited unlimited")), None);
        assert_eq!(parse_soft_limit("nothing here"), None);
    }

    #[test]
    fn the_limit_leaves_a_reserve() {
        assert_eq!(fit(20_000, Some(20_000), 2), 20_000 - 128 - 32);
        assert_eq!(fit(20_000, Some(1_000_000), 2), 20_000);
        assert_eq!(fit(20_000, None, 2), 20_000);
        assert_eq!(fit(500, Some(1_024), 1), 500);
        // A small limit keeps half for connections.
        assert_eq!(fit(20_000, Some(40), 1), 20);
    }
}
