//! Giving the memory of a large table back without stalling the operation that frees it.
//!
//! # Why
//! Freeing an allocation of many pages hands them all back to the kernel in one call: growing a
//! `ScalablePodMap` to 4M entries, `strace -T` timed the `munmap` of its old tables (8, 16, 32 and
//! 64 MiB) at 0.6, 1.1, 2.2 and 3.8 ms. Freeing the 3,500 to 7,000 blocks of overflow buckets of
//! the larger of those tables took another 0.5 to 0.8 ms. A retired table is freed by whichever
//! operation reclaims it, a write or a read, so that one operation stalled for milliseconds.
//!
//! # How
//! A table's allocations go to one thread per process, started on first use, when they add up to
//! at least [`LARGE`] bytes. It gives each large allocation's pages back [`STEP`] bytes at a
//! time (`madvise(MADV_DONTNEED)` on Linux), yielding the processor between steps, then frees it,
//! which leaves no pages to unmap. No operation waits for it; [`settle_memory`] does, for
//! measurements of memory.
//!
//! Smaller tables, those freed inside [`on_this_thread`] (`shrink_to_fit`, which promises the
//! memory back on return and is a maintenance call the caller chose to pay for), and every table
//! under schedule explorers are freed at once.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Tables whose allocations add up to this many bytes are freed by the release thread: freeing
/// 1 MiB at once takes about 70 us here.
#[cfg(not(shuttle))]
const LARGE: usize = 1 << 20;

/// Bytes given back per step of the release thread, about 20 us of kernel work.
#[cfg(not(shuttle))]
const STEP: usize = 256 << 10;

#[cfg(not(shuttle))]
crate::sync::thread_local! {
    /// Set while this thread runs [`on_this_thread`]'s work.
    static FREE_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work`, freeing on this thread every allocation it frees, however large: for
/// `shrink_to_fit`, whose caller asked for the memory back on return.
pub(crate) fn on_this_thread<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(not(shuttle))]
    {
        /// Clears the flag, even if `work` unwinds.
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                FREE_HERE.with(|here| here.set(self.0));
            }
        }
        let _reset = Reset(FREE_HERE.with(|here| here.replace(true)));
        work()
    }
    #[cfg(shuttle)]
    work()
}

/// One allocation of the global allocator, to be freed.
pub(crate) struct Allocation {
    pub(crate) memory: NonNull<u8>,
    pub(crate) layout: Layout,
}

/// Frees `allocations` now, or, if they add up to [`LARGE`] bytes, hands them to the release
/// thread.
///
/// # Safety
/// Each allocation was made by the global allocator with its layout, is freed once, and nothing
/// uses it again.
pub(crate) unsafe fn free(allocations: Vec<Allocation>) {
    #[cfg(not(shuttle))]
    {
        let bytes: usize = allocations.iter().map(|a| a.layout.size()).sum();
        if bytes >= LARGE && !FREE_HERE.with(std::cell::Cell::get) {
            if let Some(releaser) = background::releaser() {
                releaser.hand_over(allocations.iter().map(background::Pending::of).collect());
                return;
            }
        }
    }
    for allocation in allocations {
        // SAFETY: as the caller promises.
        unsafe { alloc::dealloc(allocation.memory.as_ptr(), allocation.layout) };
    }
}

/// Waits until the memory of every large table a map has let go of so far is back with the
/// allocator.
///
/// `ScalableMap` and `ScalablePodMap` free a table of 1 MiB or more (one they grew out of, or
/// one of a map that was dropped) on a background thread, a step at a time, so that no
/// operation stalls for the milliseconds that giving many pages back to the kernel takes
/// (`shrink_to_fit` frees on the caller's thread instead). Call this before measuring a
/// process's memory.
///
/// ```
/// use safemap::{ConcurrentMap, ScalablePodMap};
///
/// let map = ScalablePodMap::<u64, u64>::new();
/// for k in 0..100_000 {
///     map.insert(k, k);
/// }
/// drop(map);
/// safemap::settle_memory(); // the map's tables are freed by now
/// ```
pub fn settle_memory() {
    #[cfg(not(shuttle))]
    if let Some(releaser) = background::started() {
        releaser.settle();
    }
}

#[cfg(not(shuttle))]
mod background {
    use std::sync::OnceLock;

    use std::alloc::Layout;
    use std::collections::VecDeque;

    use super::STEP;
    use crate::sync::{Condvar, Mutex};

    /// An allocation waiting for the release thread; an address, so that it can cross threads.
    pub(super) struct Pending {
        address: usize,
        layout: Layout,
    }

    impl Pending {
        pub(super) fn of(allocation: &super::Allocation) -> Self {
            Pending {
                address: allocation.memory.as_ptr() as usize,
                layout: allocation.layout,
            }
        }
    }

    /// The tables the release thread has been handed, each as its allocations, first come
    /// first freed.
    type Queue = VecDeque<Vec<Pending>>;

    pub(super) struct Releaser {
        /// Tables not yet freed; the front one is being released.
        queue: Mutex<Queue>,
        /// Notified when the queue gains a table, and when it empties.
        changed: Condvar,
    }

    static RELEASER: OnceLock<Releaser> = OnceLock::new();
    /// Whether the release thread was started.
    static THREAD: OnceLock<bool> = OnceLock::new();

    /// The release thread's state, starting the thread on first use; `None` if no thread could
    /// be started, so that the caller frees at once.
    pub(super) fn releaser() -> Option<&'static Releaser> {
        let releaser = RELEASER.get_or_init(|| Releaser {
            queue: Mutex::new(Queue::new()),
            changed: Condvar::new(),
        });
        let started = THREAD.get_or_init(|| {
            std::thread::Builder::new()
                .name("safemap-release".into())
                .spawn(|| run(releaser))
                .is_ok()
        });
        started.then_some(releaser)
    }

    /// The release thread's state, if the thread was ever started.
    pub(super) fn started() -> Option<&'static Releaser> {
        THREAD
            .get()
            .copied()
            .unwrap_or(false)
            .then(|| RELEASER.get())
            .flatten()
    }

    impl Releaser {
        pub(super) fn hand_over(&self, pending: Vec<Pending>) {
            self.queue.lock().push_back(pending);
            self.changed.notify_all();
        }

        pub(super) fn settle(&self) {
            let mut queue = self.queue.lock();
            while !queue.is_empty() {
                queue = self.changed.wait(queue);
            }
        }
    }

    /// The release thread: frees what it is handed, forever.
    fn run(releaser: &Releaser) {
        loop {
            let table = {
                let mut queue = releaser.queue.lock();
                loop {
                    match queue.front_mut() {
                        Some(front) => break std::mem::take(front),
                        None => queue = releaser.changed.wait(queue),
                    }
                }
            };
            for Pending { address, layout } in table {
                if layout.size() >= STEP {
                    give_pages_back(address, layout.size());
                }
                // SAFETY: handed over through `free`, whose caller promised an allocation of this
                // layout that nothing uses again; freed once, here, taken out of the queue.
                unsafe { std::alloc::dealloc(address as *mut u8, layout) };
            }
            let mut queue = releaser.queue.lock();
            queue.pop_front();
            if queue.is_empty() {
                releaser.changed.notify_all();
            }
        }
    }

    /// Returns the whole pages of `[address, address + size)` to the kernel, a step at a time.
    fn give_pages_back(address: usize, size: usize) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `sysconf` has no preconditions.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
            if page == 0 {
                return;
            }
            let start = address.next_multiple_of(page);
            let end = (address + size) / page * page;
            let mut at = start;
            while at < end {
                let len = STEP.min(end - at);
                // `[at, at + len)` is whole pages inside an allocation that this thread owns and
                // nothing reads again before it is freed; `MADV_DONTNEED` only discards their
                // contents (private anonymous pages read as zero afterwards), and the allocator's
                // own records lie outside the bytes it handed out. A failure leaves the pages in
                // place, for the free that follows.
                // SAFETY: so the call changes only bytes no one will read, as argued above.
                unsafe { libc::madvise(at as *mut libc::c_void, len, libc::MADV_DONTNEED) };
                at += len;
                std::thread::yield_now();
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (address, size);
    }
}
