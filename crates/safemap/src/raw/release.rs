//! Giving the memory of a large table back, and faulting the pages of a fresh one in, without
//! stalling the operations that free or fill it.
//!
//! # Why
//! Freeing an allocation of many pages hands them all back to the kernel in one call: growing a
//! `ScalablePodMap` to 4M entries, `strace -T` timed the `munmap` of its old tables (8, 16, 32 and
//! 64 MiB) at 0.6, 1.1, 2.2 and 3.8 ms. Freeing the 3,500 to 7,000 blocks of overflow buckets of
//! the larger of those tables took another 0.5 to 0.8 ms. A retired table is freed by whichever
//! operation reclaims it, a write or a read, so that one operation stalled for milliseconds. The
//! hashbrown tables of the lock-based strategies free their old buckets inside the insert that
//! grows them, with the lock held (`raw::table::TableAlloc` hands large ones over instead). And
//! `munmap` holds the process's address-space lock for writing, so every other thread of the
//! process that maps memory waited as long: a thread beside a `LockedMap` growing to 4M entries
//! (`safemap-bench neighbour`) waited 6.6-8.9 ms at the longest, 0.4-0.5 ms since.
//!
//! The other way round, a table to grow into is allocated unwritten, and the first write to each
//! of its pages stalled the write that made it while the kernel cleared the page (a quarter of
//! the time of growing a map to 4M entries went to clearing pages, `perf record -e cpu-clock`):
//! those writes were the slowest 1% of inserts.
//!
//! # How
//! A table's allocations go to one thread per process, started on first use, when they add up to
//! at least [`LARGE`] bytes. It gives each large allocation's pages back [`STEP`] bytes at a
//! time (`madvise(MADV_DONTNEED)` on Linux), then frees it, which leaves no pages to unmap. No
//! operation waits for it; [`settle_memory`] does, for measurements of memory.
//!
//! The same thread faults in the pages of fresh allocations of [`PREFAULT_FROM`] bytes or more
//! ([`prefault`]), [`PREFAULT_STEP`] bytes at a time (`madvise(MADV_POPULATE_WRITE)`, which maps
//! the pages as a write would, without writing), ahead of the writes that will fill them, and
//! before any freeing it has been handed. The owner of the allocation stops that work before it
//! frees the allocation ([`Prefaulting`]). Every few steps of either kind it sleeps ([`PAUSE`]), so
//! that the process's other threads can change their mappings.
//!
//! That thread runs at idle priority, so when every processor is busy it gets almost no time, and
//! the writes took the faults again: growing a map to 4M entries with a reading thread beside the
//! inserting one, on this 2-core machine, the inserting thread took 24,000 page faults, against
//! 3,700 alone (`perf record -e page-faults`). So a write about to fill pages the thread has not
//! reached does its next step itself ([`Prefaulting::catch_up`]). Such a step maps
//! [`CATCH_UP_STEP`] bytes, 64 pages, in one call, so where one move in 16 paid for a fault (about
//! one insert in 170 while the map grew), one in 1,024 pays for a step: few enough to leave the
//! fastest 99.9% of inserts alone, where steps of 16 pages, one in 256 moves, were about one insert
//! in 1,000.
//!
//! Smaller tables, those freed inside [`on_this_thread`] (`shrink_to_fit`, which promises the
//! memory back on return and is a maintenance call the caller chose to pay for), and every table
//! under schedule explorers are freed at once.

use std::alloc::{self, Layout};
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::sync::{BookkeepingMutex, HintCell};

/// Tables whose allocations add up to this many bytes are freed by the release thread: freeing
/// 1 MiB at once takes about 70 us here.
#[cfg(not(shuttle))]
const LARGE: usize = 1 << 20;

/// Bytes given back per step of the release thread, about 20 us of kernel work.
#[cfg(not(shuttle))]
const STEP: usize = 256 << 10;

/// Fresh allocations this large have their pages faulted in by the release thread: 64 pages
/// and more, where doing it on the writes' path cost the slowest of them.
#[cfg(not(shuttle))]
const PREFAULT_FROM: usize = 256 << 10;

/// Bytes faulted in per step: 16 pages, tens of microseconds of clearing, the longest an owner
/// that stops the work waits for it.
#[cfg(not(shuttle))]
const PREFAULT_STEP: usize = 64 << 10;

/// How long the release thread sleeps after every [`PAUSE_EVERY`] bytes of steps. Each step holds
/// the process's address-space lock (`mmap_lock`) for reading, and Linux lets a reader that comes
/// back at once take it ahead of a waiting writer until that writer has waited a scheduler tick
/// (4 ms at `HZ=250`); every `mmap`, `munmap`, `mprotect` and `brk` of the process is such a
/// writer, so is any allocation that grows or shrinks a heap. With only a yield between steps,
/// which gives nothing away while a processor is idle, they waited that long: under `perf record
/// -e sched:sched_switch`, a `ScalablePodMap` growing to 4M entries had its own thread's
/// `mprotect` (glibc growing a heap) put back to sleep 64 times over 2.5 ms while the release
/// thread faulted pages in. A pause longer than a woken writer takes to run lets it in. Seven
/// alternated runs of `safemap-bench run --workload Growth --threads 1 --reps 3`: the longest
/// insert took 1.2-8.1 ms (median 4.3) with yields, 0.42-1.25 ms (median 0.47) with pauses, and
/// writers were put back to sleep 235 and 366 times in two such runs, against 17 and 18.
#[cfg(not(shuttle))]
const PAUSE: std::time::Duration = std::time::Duration::from_micros(50);

/// Bytes of steps between two pauses: four steps of faulting in, one of giving back. Pausing after
/// every 64 KiB step slowed faulting in so much that writes did a fifth of it themselves: in three
/// growths to 4M entries (`perf record -e syscalls:sys_enter_madvise`), 1,419 writes faulted in
/// a [`CATCH_UP_STEP`] each, against 356 with yields; with a pause every 256 KiB, 447.
#[cfg(not(shuttle))]
const PAUSE_EVERY: usize = 256 << 10;

/// Bytes a write that catches up faults in at once: the fewer such writes, the fewer of the
/// slowest inserts, as long as each stays far below a millisecond. Growing `ScalablePodMap` to 4M
/// entries beside a reading thread (`safemap-bench run --workload Growth --threads 2 --reps 3`),
/// seven alternated runs: insert p99.9 1.3-2.9 us with 256 KiB (under 2 us in six), 1.3-4.2 us
/// with 64 KiB (in two).
#[cfg(not(shuttle))]
const CATCH_UP_STEP: usize = 256 << 10;

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
#[derive(Clone, Copy)]
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
pub(crate) unsafe fn free(allocations: &[Allocation]) {
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

/// The release thread faulting in the pages of a fresh allocation: what is left of it to do,
/// shared with that thread. Dropping it stops the work, after a step under way, so the owner may
/// free the allocation next.
pub(crate) struct Prefaulting(Left);

/// The addresses of an allocation left to fault in, shared by its owner, the release thread and
/// the writes that catch up with it.
struct Progress {
    left: BookkeepingMutex<Range<usize>>,
    /// Where `left` started when last advanced, read without the lock so that a write whose
    /// pages are done skips it. Only a hint: a stale one costs a `try_lock`, or a page fault.
    done: HintCell,
}

type Left = Arc<Progress>;

impl Drop for Prefaulting {
    fn drop(&mut self) {
        // Taking the lock waits for a step under way; none begins after.
        let mut left = self.0.left.lock();
        left.start = left.end;
    }
}

impl Prefaulting {
    /// Faults in the next step's pages on the calling thread, unless those up to `through` are
    /// done or the release thread is in a step: for a write about to fill them, when the release
    /// thread has fallen behind (module docs).
    pub(crate) fn catch_up(&self, through: usize) {
        if self.is_behind(through) {
            self.0.step_unless_busy();
        }
    }

    /// [`Self::catch_up`] to run later, for a caller that holds a lock other writes take and
    /// should not hold it through a step; `None` if the pages up to `through` are done.
    pub(crate) fn behind(&self, through: usize) -> Option<CatchUp> {
        self.is_behind(through)
            .then(|| CatchUp(Arc::clone(&self.0)))
    }

    fn is_behind(&self, through: usize) -> bool {
        self.0.done.load(Relaxed) < through
    }
}

/// A step of faulting in that a write is to take on ([`Prefaulting::behind`]).
pub(crate) struct CatchUp(Left);

impl CatchUp {
    pub(crate) fn run(self) {
        self.0.step_unless_busy();
    }
}

impl Progress {
    /// One step of the work, unless the release thread (or another write) is in one.
    fn step_unless_busy(&self) {
        #[cfg(not(shuttle))]
        if let Some(mut left) = self.left.try_lock() {
            background::fault_step(&mut left, &self.done, CATCH_UP_STEP);
        }
    }
}

/// Has the release thread fault in the pages of `[memory, memory + bytes)`, an allocation of the
/// caller's that writes will fill, if it is [`PREFAULT_FROM`] bytes or more; `None` if it is not
/// (or there is no such thread: under schedule explorers, off Linux, or if none could start).
/// The caller keeps the allocation until the returned value is dropped.
pub(crate) fn prefault(memory: NonNull<u8>, bytes: usize) -> Option<Prefaulting> {
    #[cfg(all(not(shuttle), target_os = "linux"))]
    if bytes >= PREFAULT_FROM
        && let Some(releaser) = background::releaser()
    {
        let start = memory.as_ptr() as usize;
        let left: Left = Arc::new(Progress {
            left: BookkeepingMutex::new(start..start + bytes),
            done: HintCell::new(start),
        });
        releaser.prefault(Arc::clone(&left));
        return Some(Prefaulting(left));
    }
    let _ = (memory, bytes);
    None
}

/// Waits until the memory of every large table a map has let go of so far is back with the
/// allocator.
///
/// Every strategy but `SnapshotMap` frees a table of 1 MiB or more (one it grew out of, one
/// `clear` emptied, or one of a map that was dropped) on a background thread, a step at a time,
/// so that no operation stalls for the milliseconds that giving many pages back to the kernel
/// takes, and no other thread of the process that maps memory waits for it meanwhile
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
    use std::alloc::Layout;
    use std::collections::VecDeque;
    use std::ops::Range;
    use std::sync::OnceLock;

    use std::sync::atomic::Ordering::Relaxed;

    use super::{Left, PAUSE, PAUSE_EVERY, PREFAULT_STEP, Progress, STEP};
    use crate::sync::{Condvar, HintCell, Mutex};

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

    /// What the release thread has been handed.
    #[derive(Default)]
    struct Work {
        /// Tables not yet freed, each as its allocations, first come first freed; the front one
        /// is being released.
        frees: VecDeque<Vec<Pending>>,
        /// Fresh allocations to fault in, each as the addresses left to do; done before frees,
        /// since writes are about to need them.
        prefaults: VecDeque<Left>,
    }

    enum Job {
        Free(Vec<Pending>),
        Prefault(Left),
    }

    pub(super) struct Releaser {
        work: Mutex<Work>,
        /// Notified when work is handed over, and when the last free is done.
        changed: Condvar,
    }

    static RELEASER: OnceLock<Releaser> = OnceLock::new();
    /// Whether the release thread was started.
    static THREAD: OnceLock<bool> = OnceLock::new();

    /// The release thread's state, starting the thread on first use; `None` if no thread could
    /// be started, so that the caller frees at once.
    pub(super) fn releaser() -> Option<&'static Releaser> {
        let releaser = RELEASER.get_or_init(|| Releaser {
            work: Mutex::new(Work::default()),
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
            self.work.lock().frees.push_back(pending);
            self.changed.notify_all();
        }

        pub(super) fn prefault(&self, left: Left) {
            self.work.lock().prefaults.push_back(left);
            self.changed.notify_all();
        }

        /// Waits until every table handed over so far is freed.
        pub(super) fn settle(&self) {
            let mut work = self.work.lock();
            while !work.frees.is_empty() {
                work = self.changed.wait(work);
            }
        }
    }

    /// The release thread: faults in and frees what it is handed, forever.
    fn run(releaser: &Releaser) {
        loop {
            let job = {
                let mut work = releaser.work.lock();
                loop {
                    if let Some(left) = work.prefaults.pop_front() {
                        break Job::Prefault(left);
                    }
                    if let Some(front) = work.frees.front_mut() {
                        break Job::Free(std::mem::take(front));
                    }
                    work = releaser.changed.wait(work);
                }
            };
            match job {
                Job::Prefault(left) => {
                    #[cfg(target_os = "linux")]
                    let _idle = IdlePriority::enter();
                    fault_in(&left);
                }
                Job::Free(table) => {
                    free_now(table);
                    let mut work = releaser.work.lock();
                    work.frees.pop_front();
                    if work.frees.is_empty() {
                        releaser.changed.notify_all();
                    }
                }
            }
        }
    }

    /// Frees a table's allocations, giving large ones' pages back first.
    fn free_now(table: Vec<Pending>) {
        for Pending { address, layout } in table {
            if layout.size() >= STEP {
                give_pages_back(address, layout.size());
            }
            // SAFETY: handed over through `free`, whose caller promised an allocation of this
            // layout that nothing uses again; freed once, here, taken out of the queue.
            unsafe { std::alloc::dealloc(address as *mut u8, layout) };
        }
    }

    /// While it lives, the release thread runs only on a processor no other thread wants
    /// (`SCHED_IDLE`): faulting pages in ahead of the writes saves them time only if it takes
    /// none from them, and on a busy machine it would preempt them.
    #[cfg(target_os = "linux")]
    struct IdlePriority {
        /// The policy and parameters the thread had, put back on drop.
        policy: libc::c_int,
        param: libc::sched_param,
    }

    #[cfg(target_os = "linux")]
    impl IdlePriority {
        fn enter() -> Self {
            let mut param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread, and `param` is a valid `sched_param` to fill.
            let policy = unsafe {
                libc::sched_getparam(0, &mut param);
                libc::sched_getscheduler(0)
            };
            let idle = libc::sched_param { sched_priority: 0 };
            // SAFETY: as above; a failure leaves the policy as it was.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) };
            IdlePriority { policy, param }
        }
    }

    #[cfg(target_os = "linux")]
    impl Drop for IdlePriority {
        fn drop(&mut self) {
            if self.policy >= 0 {
                // SAFETY: as in `enter`, with what `enter` read back.
                unsafe { libc::sched_setscheduler(0, self.policy, &self.param) };
            }
        }
    }

    /// Spaces the release thread's steps: a yield after each, a sleep of [`PAUSE`] once
    /// [`PAUSE_EVERY`] bytes of them have gone by since the last.
    #[derive(Default)]
    pub(super) struct Pacer {
        pub(super) since_pause: usize,
    }

    impl Pacer {
        /// After a step over `bytes`.
        pub(super) fn after(&mut self, bytes: usize) {
            self.since_pause += bytes;
            if self.since_pause >= PAUSE_EVERY {
                self.since_pause = 0;
                std::thread::sleep(PAUSE);
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// The size of a page, or 0 where it cannot be told.
    fn page_size() -> usize {
        #[cfg(target_os = "linux")]
        // SAFETY: `sysconf` has no preconditions.
        return usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
        #[cfg(not(target_os = "linux"))]
        0
    }

    /// Faults in the whole pages left in `progress`, a step at a time, each step under its lock,
    /// until none is left or the owner empties it.
    fn fault_in(progress: &Progress) {
        let mut pacer = Pacer::default();
        while fault_step(&mut progress.left.lock(), &progress.done, PREFAULT_STEP) {
            pacer.after(PREFAULT_STEP);
        }
    }

    /// Faults in the next `step` bytes of whole pages in `left`, whose lock the caller holds,
    /// and advances it and `done` past them; false if none were left to do.
    pub(super) fn fault_step(left: &mut Range<usize>, done: &HintCell, step: usize) -> bool {
        let page = page_size();
        if page == 0 {
            return false;
        }
        let start = left.start.next_multiple_of(page);
        let end = left.end / page * page;
        if start >= end {
            return false;
        }
        let len = step.min(end - start);
        // `[start, start + len)` is whole pages of a live allocation: its owner frees it only
        // after dropping its `Prefaulting`, which takes this lock first and empties the range.
        // `MADV_POPULATE_WRITE` maps the pages as a write would, without writing: what the
        // allocation holds, and what its owner's threads write meanwhile, is unchanged. A
        // failure (a kernel without it) ends the work for everyone; the writes then map the
        // pages as before.
        #[cfg(target_os = "linux")]
        // SAFETY: so the call changes no byte anyone reads or writes, as argued above.
        if unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) } != 0
        {
            left.start = left.end;
            done.store(left.end, Relaxed);
            return false;
        }
        left.start = start + len;
        done.store(left.start, Relaxed);
        true
    }

    /// Returns the whole pages of `[address, address + size)` to the kernel, a step at a time.
    fn give_pages_back(address: usize, size: usize) {
        let page = page_size();
        if page == 0 {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let start = address.next_multiple_of(page);
            let end = (address + size) / page * page;
            let mut at = start;
            let mut pacer = Pacer::default();
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
                pacer.after(len);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (address, size);
    }
}

#[cfg(all(test, not(shuttle), target_os = "linux"))]
mod tests {
    use std::ptr::NonNull;
    use std::time::{Duration, Instant};

    use std::sync::Arc;

    use super::background::Pacer;
    use super::{
        CATCH_UP_STEP, PAUSE, PAUSE_EVERY, PREFAULT_STEP, Prefaulting, Progress, prefault,
    };
    use crate::sync::{BookkeepingMutex, HintCell};

    const PAGE: usize = 4096;

    /// Work on `[memory, memory + bytes)` that the release thread was not handed, so that only
    /// the calling thread's catching up does any of it.
    fn unscheduled(memory: NonNull<u8>, bytes: usize) -> Prefaulting {
        let start = memory.as_ptr() as usize;
        Prefaulting(Arc::new(Progress {
            left: BookkeepingMutex::new(start..start + bytes),
            done: HintCell::new(start),
        }))
    }

    /// Fresh anonymous pages, none of them mapped yet.
    fn fresh(bytes: usize) -> NonNull<u8> {
        // SAFETY: a private anonymous mapping at an address of the kernel's choosing.
        let memory = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(memory, libc::MAP_FAILED);
        NonNull::new(memory.cast()).expect("mmap succeeded")
    }

    /// How many pages of `[memory, memory + bytes)` are mapped.
    fn mapped(memory: NonNull<u8>, bytes: usize) -> usize {
        let mut pages = vec![0u8; bytes / PAGE];
        // SAFETY: the range is one mapping of the caller's, and `pages` has a byte per page.
        let status = unsafe { libc::mincore(memory.as_ptr().cast(), bytes, pages.as_mut_ptr()) };
        assert_eq!(status, 0);
        pages.iter().filter(|&&page| page & 1 != 0).count()
    }

    /// The scheduling policy of the release thread (`/proc`'s `stat`, field 41), if it runs.
    fn release_thread_policy() -> Option<i32> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let task = task.ok()?.path();
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if name.trim() == "safemap-release" {
                let stat = std::fs::read_to_string(task.join("stat")).ok()?;
                // Fields after the parenthesized name, which may hold spaces, start at field 3.
                let after_name = &stat[stat.rfind(')')? + 2..];
                return after_name.split(' ').nth(41 - 3)?.parse().ok();
            }
        }
        None
    }

    /// Waits up to a minute for `done`.
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not after a minute");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn unmap(memory: NonNull<u8>, bytes: usize) {
        // SAFETY: the caller's mapping, unmapped once, with nothing left using it.
        assert_eq!(unsafe { libc::munmap(memory.as_ptr().cast(), bytes) }, 0);
    }

    #[test]
    fn the_release_thread_maps_a_fresh_allocations_pages() {
        let bytes = 1 << 20;
        let memory = fresh(bytes);
        assert_eq!(mapped(memory, bytes), 0);
        let prefaulting = prefault(memory, bytes).expect("1 MiB is prefaulted");
        // It runs on an otherwise idle processor only, which a busy test run may leave it little.
        eventually("every page mapped", || {
            mapped(memory, bytes) == bytes / PAGE
        });
        drop(prefaulting);
        unmap(memory, bytes);
    }

    #[test]
    fn a_write_that_finds_its_page_unmapped_maps_the_next_step() {
        let bytes = 1 << 20;
        let memory = fresh(bytes);
        let start = memory.as_ptr() as usize;
        let step = CATCH_UP_STEP / PAGE;
        let prefaulting = unscheduled(memory, bytes);
        assert!(prefaulting.behind(start + 1).is_some());
        prefaulting.catch_up(start + 1);
        assert_eq!(mapped(memory, bytes), step, "one step from the start");
        prefaulting.catch_up(start + CATCH_UP_STEP);
        assert!(prefaulting.behind(start + CATCH_UP_STEP).is_none());
        assert_eq!(
            mapped(memory, bytes),
            step,
            "nothing for pages already done"
        );
        prefaulting
            .behind(start + CATCH_UP_STEP + 1)
            .expect("the next page is not done")
            .run();
        assert_eq!(mapped(memory, bytes), 2 * step, "the next step");
        drop(prefaulting);
        unmap(memory, bytes);
    }

    #[test]
    fn catching_up_stops_with_the_handle() {
        let bytes = 1 << 20;
        let memory = fresh(bytes);
        let start = memory.as_ptr() as usize;
        let prefaulting = unscheduled(memory, bytes);
        let later = prefaulting.behind(start + 1).expect("nothing done yet");
        drop(prefaulting);
        later.run();
        assert_eq!(
            mapped(memory, bytes),
            0,
            "a step after the owner stopped the work"
        );
        unmap(memory, bytes);
    }

    #[test]
    fn small_allocations_are_left_to_the_writes() {
        let bytes = 64 << 10;
        let memory = fresh(bytes);
        assert!(prefault(memory, bytes).is_none());
        unmap(memory, bytes);
    }

    #[test]
    fn dropping_the_handle_stops_the_work_before_it_returns() {
        let bytes = 256 << 20;
        let memory = fresh(bytes);
        let prefaulting = prefault(memory, bytes).expect("large enough");
        eventually("a page mapped", || mapped(memory, bytes) > 0);
        eventually("the release thread at idle priority", || {
            release_thread_policy() == Some(libc::SCHED_IDLE)
        });
        drop(prefaulting);
        let after_stop = mapped(memory, bytes);
        assert!(
            after_stop < bytes / PAGE,
            "all 256 MiB mapped before the stop"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            mapped(memory, bytes),
            after_stop,
            "pages mapped after the stop"
        );
        unmap(memory, bytes);
    }

    #[test]
    fn the_release_thread_sleeps_once_per_pause_every_bytes_of_steps() {
        let mut pacer = Pacer::default();
        for _ in 1..PAUSE_EVERY / PREFAULT_STEP {
            pacer.after(PREFAULT_STEP);
        }
        assert_eq!(pacer.since_pause, PAUSE_EVERY - PREFAULT_STEP);
        let start = Instant::now();
        pacer.after(PREFAULT_STEP);
        assert!(start.elapsed() >= PAUSE, "slept {:?}", start.elapsed());
        assert_eq!(pacer.since_pause, 0);
    }
}
