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
}
