//! An asymmetric Dekker barrier, for a handshake whose one side runs on every write and whose
//! other side runs rarely (the writers' gate: writes announce themselves; `len`, `clear` and
//! `snapshot` close the gate).
//!
//! # Why
//! In Dekker's pattern each side stores a flag, then loads the other side's flag. Each side needs
//! a full barrier between its store and its load: without one, a load may run while its own store
//! still waits in the store buffer (x86 allows that), and both sides miss each other. A `SeqCst`
//! store gives the barrier, at the cost of a locked instruction on every write.
//!
//! # How
//! The frequent side stores with [`light_store`]'s ordering, then runs [`light_fence`] (a compiler
//! fence, no instruction) before its `SeqCst` load. The rare side stores, calls [`heavy`], then
//! loads. On Linux, `heavy` is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: every thread of the
//! process that is running executes a full barrier (the kernel interrupts its CPU), and a thread
//! that is not running has passed one (its context switch). So each frequent-side thread is cut
//! at one point of its instruction stream. If its store came before that point, the store is
//! visible to the rare side's load after the call. If it came after, so did its load (the
//! compiler fence keeps the program order), and the load sees the rare side's store, which the
//! call's own barrier made visible. Either way one side sees the other. seize's guards use the
//! same scheme (its `fast-barrier`), as folly's `asymmetricHeavyBarrier` did before.
//!
//! Where the call is not available (another system, a kernel or sandbox that refuses it, or under
//! shuttle, whose model knows no such call), both sides are `SeqCst`: the light store and the
//! heavy fence. [`prepare`] decides once per process, before any handshake can run: a map calls
//! it when it is made, and sharing the map orders that before every use. A frequent side that
//! reads the strategy stale sees the fallback and only pays more.

use std::sync::atomic::Ordering::{self, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, compiler_fence, fence};

/// Whether `heavy` is the process-wide barrier; false until [`prepare`] finds it works.
static EXPEDITED: AtomicBool = AtomicBool::new(false);

/// Finds out, once per process, whether [`heavy`] can be the process-wide barrier, and registers
/// the process for it. Call before the first handshake of a protocol that uses this module.
pub(crate) fn prepare() {
    #[cfg(all(target_os = "linux", not(shuttle)))]
    {
        static PREPARED: std::sync::Once = std::sync::Once::new();
        PREPARED.call_once(|| {
            if membarrier::register() {
                // Relaxed: the `Once` orders this before every caller of `prepare` goes on.
                EXPEDITED.store(true, Relaxed);
            }
        });
    }
}

/// The ordering of the frequent side's store.
#[inline(always)]
pub(crate) fn light_store() -> Ordering {
    // Relaxed: a stale `false` only makes the store `SeqCst` (module docs).
    if EXPEDITED.load(Relaxed) {
        Relaxed
    } else {
        SeqCst
    }
}

/// Between the frequent side's store and its `SeqCst` load.
#[inline(always)]
pub(crate) fn light_fence() {
    compiler_fence(SeqCst);
}

/// Between the rare side's store and its load: a full barrier on every thread of the process.
pub(crate) fn heavy() {
    #[cfg(all(target_os = "linux", not(shuttle)))]
    // Relaxed: `prepare` ran before any handshake and is ordered before this (module docs).
    if EXPEDITED.load(Relaxed) {
        membarrier::barrier();
        return;
    }
    // SeqCst: the fallback, for a light side whose store is SeqCst too (module docs).
    fence(SeqCst);
}

#[cfg(all(target_os = "linux", not(shuttle)))]
mod membarrier {
    /// `membarrier(2)` commands.
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn call(command: libc::c_int) -> libc::c_long {
        // SAFETY: `membarrier` takes a command and flags by value and touches no memory of the
        // caller's; an unknown command fails with an error code.
        unsafe { libc::syscall(libc::SYS_membarrier, command, 0 as libc::c_int) }
    }

    /// Registers the process for expedited barriers; whether they are available.
    pub(super) fn register() -> bool {
        let supported = call(QUERY);
        let wanted = libc::c_long::from(PRIVATE_EXPEDITED | REGISTER_PRIVATE_EXPEDITED);
        supported >= 0 && supported & wanted == wanted && call(REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// A full barrier on every running thread of the process.
    pub(super) fn barrier() {
        let done = call(PRIVATE_EXPEDITED);
        // A registered process's expedited barrier cannot fail; if it did, the handshake would
        // not hold, so no write may go on.
        assert_eq!(done, 0, "membarrier failed after registration");
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    const ROUNDS: usize = 50_000;

    /// Up to eight spins, different each round, so that the two sides' stores meet at every
    /// offset.
    fn jitter(round: usize) {
        for _ in 0..(round.wrapping_mul(0x9E37_79B9) >> 7) % 8 {
            std::hint::spin_loop();
        }
    }

    /// Dekker's handshake, round after round: the frequent side stores with the light ordering,
    /// the rare side runs the heavy barrier, and in no round do both miss the other's flag. The
    /// sides start each round together, spinning on one counter. (Without the heavy barrier,
    /// x86's store buffer lets both loads pass their stores: such rounds show up here.)
    #[test]
    fn one_side_always_sees_the_other() {
        super::prepare();
        let flags = [AtomicBool::new(false), AtomicBool::new(false)];
        let (go, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut both_missed = 0;
        std::thread::scope(|scope| {
            let frequent = scope.spawn(|| {
                let mut saw = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    // Acquire: the round starts after the reset of the flags.
                    while go.load(Acquire) != round {
                        std::hint::spin_loop();
                    }
                    jitter(round);
                    flags[0].store(true, super::light_store());
                    super::light_fence();
                    // SeqCst: the light side's load.
                    saw.push(flags[1].load(SeqCst));
                    // Release: the reset comes after this round's loads.
                    done.store(round, Release);
                }
                saw
            });
            let mut rare_saw = Vec::with_capacity(ROUNDS);
            for round in 1..=ROUNDS {
                // Release: pairs with the frequent side's wait.
                go.store(round, Release);
                jitter(round.wrapping_mul(7));
                // SeqCst: the heavy side's store and load, as the gate's closer does.
                flags[1].store(true, SeqCst);
                super::heavy();
                rare_saw.push(flags[0].load(SeqCst));
                // Acquire: pairs with the frequent side's `done`.
                while done.load(Acquire) != round {
                    std::hint::spin_loop();
                }
                // Both sides are past their loads, and the next round starts after this.
                flags[0].store(false, Relaxed);
                flags[1].store(false, Relaxed);
            }
            let frequent_saw = frequent.join().expect("the frequent side does not panic");
            both_missed = (frequent_saw.iter().zip(&rare_saw))
                .filter(|(frequent, rare)| !**frequent && !**rare)
                .count();
        });
        assert_eq!(both_missed, 0, "rounds in which both sides missed");
    }
}
