//! [`ScalableMap`]: reads that take no lock and write nothing another thread writes, over
//! cache-line buckets of pointers to immutable entries (`raw/buckets/`).
//!
//! A read enters a reclamation guard (a store to the thread's own slot), loads one bucket's tag
//! word and follows the matching pointers; a write locks one chain of buckets and swaps entries
//! in and out, retiring what it displaces to the reclamation, which frees it once no reader can
//! hold it. A full table grows by moving a chain per write, so no write waits for a
//! table-wide rehash.

use crate::front::SafeMap;
use crate::map::DefaultHashBuilder;
use crate::raw::buckets::{Buckets, Inline};

/// A map whose reads scale with cores: they take no lock and write no cache line that another
/// thread writes, so readers of one hot key never slow each other down, and a reader preempted
/// mid-read holds up no one.
///
/// Writers lock one chain of buckets (a cache line, plus overflow lines if it holds more than five
/// keys), so a [`compute`](crate::ConcurrentMap::compute) closure runs exactly once and holds up
/// only writers of its chain; readers go on. When the table fills, each write moves a chain
/// into a table twice the size, and readers follow the moved chains, so growth never stalls a
/// write for long. Since writes move the resize along, a map whose writes stop just after its
/// table began to grow keeps both tables until writes resume (readers of a moved chain look in the
/// new one); [`reserve(0)`](crate::ConcurrentMap::reserve) finishes such a resize at once. (A fifth
/// more inserts past the size that started it finish a resize; a seventh in [`ScalablePodMap`].)
///
/// Entries are immutable once stored and each sits in its own allocation, so:
/// - keys and values must be `Clone`: an update stores a changed clone, and the value a write
///   displaces is returned as a clone (a reader may still be reading the stored one, which is
///   dropped once no reader can);
/// - each entry costs a small allocation besides its pointer in the table;
/// - a whole-map pass (`iter`, `for_each`, `par_iter`) follows a pointer per entry, which in a map
///   larger than the caches is a miss per entry, started a few chains ahead: about 30 ns an entry
///   at 1M entries on the machine we measure on, against about 4 for [`ShardedMap`](crate::ShardedMap)
///   and 7-11 for [`ScalablePodMap`] (`safemap-bench iterate`).
///
/// `len`, `clear` and `snapshot` are atomic. `len` reads the writers' per-thread counts at a
/// moment between writes, holding no one back; only when writes keep it from finding one does it
/// do what `clear` and `snapshot` always do: wait for the writes under way and hold new ones back
/// while it runs (readers go on). Holding the writes back costs the caller a process-wide barrier
/// (the `membarrier` system call, which interrupts every other CPU running one of the process's
/// threads: microseconds), which is what lets a write announce itself with a plain store. `iter`, `for_each` and `retain` go chain by chain, taking
/// no lock (`retain` locks one chain at a time): a key present throughout is seen exactly once,
/// and a key removed and inserted again while its chain is being read may be seen twice.
///
/// Memory is reclaimed by [seize](https://docs.rs/seize), one collector per map, made by the first
/// write (about 16 KiB of per-thread slots): until then an empty map holds a few cache lines. The
/// first `ScalableMap` or `SnapshotMap` a process makes registers the process for seize's heavy
/// barrier (the `membarrier` system call; 12-20 ms on the machine we measure on), so that no
/// write pays it. Only readers and whole-map passes enter seize's guards. A write holds none: the
/// pass through the writers' gate that counts it also keeps the tables it uses, and a table a
/// finished resize leaves behind is handed to seize once the writes under way then have left,
/// which the write that finishes the resize notes with one process-wide barrier. That spares each
/// write a guard's entry and exit (a locked instruction among them): Exchange at 64k keys, one
/// thread, about a tenth faster (the README has the figures).
///
/// ```
/// use safemap::{Action, ConcurrentMap, ScalableMap};
///
/// let hits: ScalableMap<&str, u64> = ScalableMap::new();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..100 {
///                 hits.compute("/index", |n| Action::Set(n.copied().unwrap_or(0) + 1));
///                 assert!(hits.get("/index").is_some());
///             }
///         });
///     }
/// });
/// assert_eq!(hits.get("/index"), Some(400));
/// ```
pub type ScalableMap<K, V, S = DefaultHashBuilder> = SafeMap<Buckets<K, V>, S>;

/// [`ScalableMap`] for keys and values that are plain old data ([`bytemuck::Pod`]: integers,
/// floats, arrays and `#[repr(C)]` structs of them, with no padding), stored in the table itself:
/// a read touches the key's 16-byte line (its chain's lock, version and one tag byte per slot,
/// in a dense array that stays cached) and then the one slot whose tag matches, in a 128-byte
/// block kept apart; a write allocates nothing. A chain longer than its head line links
/// overflow lines, and a read goes on to them only if the head line's six-bit summary of their
/// tags has the key's.
///
/// The protocol, consistency and growth are [`ScalableMap`]'s, with one difference in how a read
/// stays safe without a lock: it copies the line's tags, then the matching slot's words, with
/// atomic loads, and keeps the copies only if the line's sequence word did not change meanwhile
/// (a version-validated read, sound because every word is an atomic). Holding no entry, only the
/// table, a read needs no reclamation guard: it announces itself in the thread's own line of the
/// writers' gate (two plain stores, no locked instruction, where a guard's exit is a swap), and a
/// table a resize leaves behind is freed once the reads and writes then under way have left. A
/// read so writes nothing but its own line, and retries only if a writer changed the key's line
/// during it; it waits
/// only while a writer is between the two stores of the sequence word, which bracket a few word
/// stores and never a closure. A line keeps no hashes, only tags, keys and values (seven `u64 ->
/// u64` entries to a 16-byte line and a 128-byte block, against `ScalableMap`'s five pointers in
/// 64 bytes), so a lookup compares its key with `Eq` against the entries whose tag matches, and
/// the map runs a stored key's `Hash` again where it must place an entry (when a table grows or
/// shrinks, and for an iteration that meets a table of another size:
/// [`Consistency::rehashes_keys`](crate::Consistency::rehashes_keys)). The README has the figures
/// against `ScalableMap` in both regimes.
///
/// A key and its value take at most 112 bytes together (each rounded up to 8-byte words):
/// `u64 -> u64` entries sit seven to a line. Larger types fail to compile.
///
/// ```
/// use safemap::{Action, ConcurrentMap, ScalablePodMap};
///
/// let hits: ScalablePodMap<u64, u64> = ScalablePodMap::new();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..100 {
///                 hits.compute(80, |n| Action::Set(n.copied().unwrap_or(0) + 1));
///                 assert!(hits.get(&80).is_some());
///             }
///         });
///     }
/// });
/// assert_eq!(hits.get(&80), Some(400));
/// ```
pub type ScalablePodMap<K, V, S = DefaultHashBuilder> = SafeMap<Buckets<K, V, Inline<K, V>>, S>;
