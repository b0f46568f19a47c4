//! What the process holds at idle: the async runtime's threads and the allocator's arenas.
//!
//! comfydeck serves a handful of phones; a pod has many cores. Left alone, tokio starts one
//! worker thread per core and glibc gives each thread that allocates an arena of its own (up to
//! 8 × cores), and memory freed into an arena is rarely handed back. Both scale with the pod,
//! not with the work.

/// Worker threads at most, unless `TOKIO_WORKER_THREADS` says otherwise.
pub const MAX_WORKERS: usize = 4;

/// glibc malloc arenas at most (`M_ARENA_MAX`), unless `MALLOC_ARENA_MAX` says otherwise.
pub const MAX_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas; call first, before any other thread exists.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread is running yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS);
        }
    }
}

/// Hands the heap's free pages back to the kernel (glibc keeps them otherwise). Cheap; meant
/// for after start-up, when the catalog's parse and the migrations have freed their memory.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only returns unused memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The multi-threaded runtime with at most [`MAX_WORKERS`] workers (`TOKIO_WORKER_THREADS`,
/// when set, is tokio's own override and wins).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores.clamp(1, MAX_WORKERS));
    }
    builder.build()
}
