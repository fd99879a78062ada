//! Reading a process's resident memory and our own open-file limit (Linux `/proc`).

/// The resident set size of process `pid` in KiB (`VmRSS` in `/proc/PID/status`).
///
/// # Errors
///
/// The process does not exist, cannot be read, or this is not Linux.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS line in {path} (a kernel thread?)"))
}

/// The resident set size of a process: only Linux has `/proc/PID/status`.
///
/// # Errors
///
/// Always, on this platform.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    Err(format!("cannot read the memory of process {pid}: /proc/PID/status exists only on Linux"))
}

/// The CPU time this process used so far, user and system, all threads
/// (`/proc/self/stat`, in clock ticks of 10 ms: Linux's `USER_HZ` is 100
/// wherever this runs).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, in parentheses, may hold spaces: the fields follow its end.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the name: state (3), ..., utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}

/// The CPU time this process used: not read off Linux.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn cpu_time() -> Option<std::time::Duration> {
    None
}

/// Our soft limit on open files, when it can be read.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// Our soft limit on open files: unknown off Linux.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn open_file_limit() -> Option<u64> {
    None
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    #[test]
    fn reads_our_own_rss_and_limit() {
        assert!(super::vm_rss_kib(std::process::id()).unwrap() > 0);
        assert!(super::open_file_limit().unwrap() > 0);
        assert!(super::vm_rss_kib(u32::MAX).is_err());
    }

    #[test]
    fn reads_our_own_cpu_time_which_grows_with_work() {
        let before = super::cpu_time().unwrap();
        let start = std::time::Instant::now();
        let mut x = 1u64;
        while start.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        assert!(super::cpu_time().unwrap() > before, "100 ms of spinning showed no CPU time");
    }
}
