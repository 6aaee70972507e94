//! A counting global allocator, for bytes per entry and an iteration's peak memory.
//!
//! Counting is switched on only while a footprint is measured, on one thread, so the timed runs
//! pay one relaxed load per allocation and nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use crate::contestants::{Contender, MapOps};
use crate::workload::key;

/// The system allocator, counting live bytes while [`COUNTING`] is on.
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds GlobalAlloc's contract;
// the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's guarantees for `layout` are passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    /// Forwarded, not left to the trait's default (`alloc`, then a write of every byte): the
    /// system's `calloc` takes fresh pages already zero, and a map that orders zeroed tables
    /// would otherwise wait on a memset and a fault per page here that it never pays in use.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through it).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: isize) {
    // Relaxed: the counters are read by the thread that wrote them, after the measured work.
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

/// What `work` returns, and the most bytes it held live at once beyond what was live before it.
/// Other threads' allocations meanwhile count too, so measure with no other thread at work.
pub fn peak_during<T>(work: impl FnOnce() -> T) -> (T, isize) {
    safemap::settle_memory();
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let result = work();
    COUNTING.store(false, Ordering::Relaxed);
    (result, PEAK.load(Ordering::Relaxed))
}

/// Bytes per entry of contestant `M` holding `entries` entries, map structure included.
pub fn footprint<M: Contender>(entries: usize) -> f64 {
    // Tables of earlier maps that are still being freed would count against this one.
    safemap::settle_memory();
    LIVE.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let mut map = M::create();
    {
        let mut handle = map.handles(1).pop().expect("one handle");
        for i in 0..entries as u64 {
            handle.insert(key(i), i);
        }
    }
    // Tables the map grew out of are freed on a background thread: count them gone.
    safemap::settle_memory();
    COUNTING.store(false, Ordering::Relaxed);
    let bytes = LIVE.load(Ordering::Relaxed) + std::mem::size_of::<M>() as isize;
    drop(map);
    bytes as f64 / entries.max(1) as f64
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::Counting;

    /// Resident bytes of this process (`/proc/self/statm`, in 4 KiB pages).
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs");
        let pages: usize = (statm.split_whitespace().nth(1))
            .and_then(|field| field.parse().ok())
            .expect("a resident page count");
        pages * 4096
    }

    #[test]
    fn zeroed_memory_comes_from_the_system_untouched() {
        // Large enough for glibc to map fresh pages, which read as zero until written.
        let layout = Layout::from_size_align(256 << 20, 16).expect("a valid layout");
        let before = resident();
        // SAFETY: a non-zero size; freed below with the same layout.
        let memory = unsafe { Counting.alloc_zeroed(layout) };
        assert!(!memory.is_null());
        let grew = resident().saturating_sub(before);
        // SAFETY: the allocation is 256 MiB long, and zeroed.
        let (first, last) = unsafe { (*memory, *memory.add(layout.size() - 1)) };
        // SAFETY: allocated above by `Counting` with this layout.
        unsafe { Counting.dealloc(memory, layout) };
        assert_eq!((first, last), (0, 0));
        // Writing every byte (the trait's default) would make all 256 MiB resident.
        assert!(grew < 64 << 20, "zeroing made {grew} bytes resident");
    }
}
