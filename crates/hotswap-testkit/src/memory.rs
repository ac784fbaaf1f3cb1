//! What this process holds in memory, read from /proc (Linux): to show that
//! swapped-out revisions are really freed, and what each one costs.

/// The process's resident memory, in KiB. Panics where /proc cannot be
/// read: a zero would make every "memory stays flat" check pass.
pub fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's second field is the resident pages");
    // statm counts 4 KiB pages on every Linux target hotswap builds for.
    pages * 4
}

/// Memory this process holds, in KiB, counting shared memory whole:
/// its private and file-backed resident pages (`RssAnon` + `RssFile`), plus
/// the machine's shared memory (`Shmem` in `/proc/meminfo`), which holds
/// every memfd in full whether or not its pages are mapped. Only deltas
/// mean anything, and only on a machine where nothing else changes its
/// shared memory meanwhile.
pub fn memory_kib() -> u64 {
    let field = |file: &str, name: &str| -> u64 {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(name))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    field("/proc/self/status", "RssAnon:")
        + field("/proc/self/status", "RssFile:")
        + field("/proc/meminfo", "Shmem:")
}
