//! A global allocator that counts the bytes each thread allocates and frees, so that a test can
//! measure its own allocations while other tests' threads run, and the bytes the whole process
//! holds, for a test that runs alone in its binary. A test file that wants it declares
//! `#[global_allocator] static COUNTING: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// Bytes the process holds, from every thread.
static PROCESS_LIVE: AtomicIsize = AtomicIsize::new(0);

pub struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static FREED: Cell<usize> = const { Cell::new(0) };
    static LARGEST_FREED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to `System` unchanged; the counts are thread-local `Cell`s with no destructor,
// const-initialized, so touching them allocates nothing and cannot recurse into this allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        // Relaxed: a count, read after the work it measures has been waited for.
        PROCESS_LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = FREED.try_with(|f| f.set(f.get() + layout.size()));
        let _ = LARGEST_FREED.try_with(|l| l.set(l.get().max(layout.size())));
        PROCESS_LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: `ptr` came from `alloc` above, that is from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Bytes this thread has allocated so far.
pub fn allocated() -> usize {
    ALLOCATED.with(Cell::get)
}

/// Bytes this thread allocated and has not freed (negative if it freed others' memory).
pub fn live() -> isize {
    allocated() as isize - FREED.with(Cell::get) as isize
}

/// Bytes this thread allocated while `work` ran.
pub fn allocated_by<R>(work: impl FnOnce() -> R) -> (R, usize) {
    let before = allocated();
    let result = work();
    (result, allocated() - before)
}

/// The largest block this thread freed while `work` ran (0 if none).
pub fn largest_freed_by<R>(work: impl FnOnce() -> R) -> (R, usize) {
    let outer = LARGEST_FREED.with(|l| l.replace(0));
    let result = work();
    let largest = LARGEST_FREED.with(|l| l.replace(outer.max(l.get())));
    (result, largest)
}

/// Bytes the whole process holds, whichever thread allocated or freed them.
pub fn process_live() -> isize {
    PROCESS_LIVE.load(Relaxed)
}
