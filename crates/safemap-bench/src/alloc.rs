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
