//! How many workers "0 = what the process may use" means, and optional pinning.

/// The CPUs this process may use: honours the affinity mask and cgroup CPU quotas
/// (`std::thread::available_parallelism` reads both on Linux).
pub fn available() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Resolves the configured worker count (0 = automatic).
pub fn workers(configured: usize) -> usize {
    if configured == 0 {
        available()
    } else {
        configured
    }
}

/// Pins the calling thread to the `n`-th core the process may use (wrapping around).
/// Returns false when pinning is not possible; the worker then runs unpinned.
pub fn pin(n: usize) -> bool {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => core_affinity::set_for_current(ids[n % ids.len()]),
        _ => false,
    }
}
