//! Taking and giving back the memory of a large table without stalling the operation that does
//! it.
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
//!
//! Making a large table stalls too: `calloc` clears memory the allocator recycles (after a large
//! free, glibc serves allocations of up to 32 MiB from its heap), and making the tables of a
//! `ScalablePodMap` growing to 4M entries took up to 7.7 ms (16 MiB). An [`Order`] has the same
//! thread make the zeroed memory; the map goes on with the table it has until the order is
//! filled.

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
/// allocator, and every large table a map has asked for so far is made.
///
/// `ScalableMap` and `ScalablePodMap` free a table of 1 MiB or more (one they grew out of, or
/// one of a map that was dropped) on a background thread, a step at a time, so that no
/// operation stalls for the milliseconds that giving many pages back to the kernel takes
/// (`shrink_to_fit` frees on the caller's thread instead). The same thread makes the zeroed
/// memory of a table of 128 KiB or more that a growing map will move to. Call this before
/// measuring a process's memory: after it, neither kind of background work changes the count.
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

/// Zeroed memory of one layout, made by the release thread for a caller that comes back for it
/// ([`Order::take`]). Memory an order made but nobody took is freed with the order.
pub(crate) struct Order(std::sync::Arc<Ordered>);

/// An order's layout and, once made, its memory (an address, so that it can cross threads).
struct Ordered {
    layout: Layout,
    made: crate::sync::BookkeepingMutex<Option<usize>>,
}

impl Drop for Ordered {
    /// Frees memory made and not taken (a map that let go of its order), through [`free`], so
    /// that a large block does not stall whoever drops the order.
    fn drop(&mut self) {
        let made = self.made.get_mut().take();
        if let Some(memory) = made.and_then(|address| NonNull::new(address as *mut u8)) {
            let layout = self.layout;
            // SAFETY: made by `alloc_zeroed` with this layout, and not taken, so nothing else
            // holds it; freed once, here.
            unsafe { free(vec![Allocation { memory, layout }]) };
        }
    }
}

impl Order {
    /// Orders zeroed memory of `layout` from the release thread, or makes it here if there is
    /// none (under schedule explorers, or if the thread could not start).
    pub(crate) fn place(layout: Layout) -> Order {
        let order = Order::unfilled(layout);
        #[cfg(not(shuttle))]
        if let Some(releaser) = background::releaser() {
            releaser.take_order(std::sync::Arc::clone(&order.0));
            return order;
        }
        order.0.fill();
        order
    }

    /// An order for `layout`, handed to no thread yet (in tests, to none ever: a release thread
    /// that never gets a core).
    pub(crate) fn unfilled(layout: Layout) -> Order {
        Order(std::sync::Arc::new(Ordered {
            layout,
            made: crate::sync::BookkeepingMutex::new(None),
        }))
    }

    /// The layout ordered.
    pub(crate) fn layout(&self) -> Layout {
        self.0.layout
    }

    /// The memory, once made: zeroed, from the global allocator with the order's layout, and the
    /// caller's to free. `None` until then.
    pub(crate) fn take(&self) -> Option<NonNull<u8>> {
        let address = self.0.made.lock().take()?;
        NonNull::new(address as *mut u8)
    }
}

impl Ordered {
    /// Makes the memory.
    fn fill(&self) {
        // SAFETY: a table's layout is never zero in size.
        let memory = unsafe { alloc::alloc_zeroed(self.layout) };
        if memory.is_null() {
            alloc::handle_alloc_error(self.layout);
        }
        *self.made.lock() = Some(memory as usize);
    }
}

#[cfg(not(shuttle))]
mod background {
    use std::sync::OnceLock;

    use std::alloc::Layout;
    use std::collections::VecDeque;
    use std::sync::Arc;

    use super::{Ordered, STEP};
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
    /// first freed; and the orders for new tables' memory, which it fills first.
    #[derive(Default)]
    struct Queue {
        frees: VecDeque<Vec<Pending>>,
        orders: VecDeque<Arc<Ordered>>,
        /// Whether an order taken off `orders` is being filled.
        filling: bool,
    }

    impl Queue {
        /// No order waits or is being filled, and no table waits to be freed.
        fn settled(&self) -> bool {
            self.frees.is_empty() && self.orders.is_empty() && !self.filling
        }
    }

    /// What the release thread does next.
    enum Job {
        Fill(Arc<Ordered>),
        Free(Vec<Pending>),
    }

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
            queue: Mutex::new(Queue::default()),
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
            self.queue.lock().frees.push_back(pending);
            self.changed.notify_all();
        }

        pub(super) fn take_order(&self, order: Arc<Ordered>) {
            self.queue.lock().orders.push_back(order);
            self.changed.notify_all();
        }

        pub(super) fn settle(&self) {
            let mut queue = self.queue.lock();
            while !queue.settled() {
                queue = self.changed.wait(queue);
            }
        }
    }

    /// The release thread: fills the orders and frees what it is handed, forever.
    fn run(releaser: &Releaser) {
        loop {
            let job = {
                let mut queue = releaser.queue.lock();
                loop {
                    if let Some(order) = queue.orders.pop_front() {
                        queue.filling = true;
                        break Job::Fill(order);
                    }
                    match queue.frees.front_mut() {
                        Some(front) => break Job::Free(std::mem::take(front)),
                        None => queue = releaser.changed.wait(queue),
                    }
                }
            };
            let table = match job {
                // An order whose map let go of it is freed as soon as it is filled.
                Job::Fill(order) => {
                    order.fill();
                    drop(order);
                    let mut queue = releaser.queue.lock();
                    queue.filling = false;
                    if queue.settled() {
                        releaser.changed.notify_all();
                    }
                    continue;
                }
                Job::Free(table) => table,
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
            queue.frees.pop_front();
            if queue.settled() {
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

#[cfg(all(test, not(shuttle)))]
mod tests {
    use std::alloc::{self, Layout};
    use std::time::{Duration, Instant};

    use super::Order;

    fn layout() -> Layout {
        Layout::from_size_align(4 << 20, 16).expect("a valid layout")
    }

    /// Waits for `order`'s memory, for at most 10 seconds.
    fn wait_for(order: &Order) -> std::ptr::NonNull<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(memory) = order.take() {
                return memory;
            }
            assert!(Instant::now() < deadline, "the order was not filled");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_order_is_filled_once_with_zeroed_memory_of_its_layout() {
        // Dirty memory of the same size first, so that the allocator may hand it out again.
        // SAFETY: a non-zero size; written within bounds, then freed with its layout.
        unsafe {
            let dirty = alloc::alloc(layout());
            assert!(!dirty.is_null());
            dirty.write_bytes(0xA5, layout().size());
            alloc::dealloc(dirty, layout());
        }
        let order = Order::place(layout());
        assert_eq!(order.layout(), layout());
        let memory = wait_for(&order);
        // SAFETY: the order's memory, of its layout, initialized (zeroed) and now ours.
        let bytes = unsafe { std::slice::from_raw_parts(memory.as_ptr(), layout().size()) };
        assert!(bytes.iter().all(|&b| b == 0), "the memory is not zeroed");
        assert!(
            order.take().is_none(),
            "an order's memory is handed out once"
        );
        // SAFETY: made by the global allocator with this layout, and ours.
        unsafe { alloc::dealloc(memory.as_ptr(), layout()) };
    }

    #[test]
    fn settling_waits_for_the_orders_placed_so_far() {
        let order = Order::place(layout());
        super::settle_memory();
        let memory = order.take().expect("settled with an order not yet filled");
        // SAFETY: made by the global allocator with this layout, and ours.
        unsafe { alloc::dealloc(memory.as_ptr(), layout()) };
    }

    /// The sanitizer runs' leak check fails this if an order's memory outlives the order.
    #[test]
    fn an_order_nobody_takes_is_freed_with_it() {
        drop(Order::place(layout()));
        // Orders are filled in turn: once this one is, the first was filled and freed.
        let memory = wait_for(&Order::place(layout()));
        // SAFETY: made by the global allocator with this layout, and ours.
        unsafe { alloc::dealloc(memory.as_ptr(), layout()) };
    }
}
