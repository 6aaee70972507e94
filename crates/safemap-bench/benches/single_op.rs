//! Single-operation costs of each strategy against an unsynchronized hashbrown map, on one thread
//! with 65,536 entries: `cargo bench -p safemap-bench --bench single_op`. Throughput comparisons
//! between maps under concurrency are the `safemap-bench` binary's; these isolate the per-call
//! overhead a strategy adds. Every strategy of `safemap::strategies!` is measured.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use safemap::{Action, ConcurrentMap, DefaultHashBuilder};

const ENTRIES: u64 = 1 << 16;

/// Keys spread over the table; the odd multiplier makes them distinct.
fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Present keys, one after another, wrapping around.
fn cycling_keys() -> impl FnMut() -> u64 {
    let mut i = 0u64;
    move || {
        i = (i + 1) & (ENTRIES - 1);
        key(i)
    }
}

fn filled<M: ConcurrentMap<u64, u64> + Default>() -> M {
    let map = M::default();
    for i in 0..ENTRIES {
        map.insert(key(i), i);
    }
    map
}

/// The operations measured for one strategy.
fn strategy<M: ConcurrentMap<u64, u64> + Default>(c: &mut Criterion, name: &str) {
    let map: M = filled();
    let mut group = c.benchmark_group("single_op");
    let mut next = cycling_keys();
    group.bench_function(BenchmarkId::new("get_hit", name), |b| {
        b.iter(|| black_box(map.get(&next())))
    });
    group.bench_function(BenchmarkId::new("get_miss", name), |b| {
        b.iter(|| black_box(map.get(&(next() ^ 1))))
    });
    group.bench_function(BenchmarkId::new("insert_overwrite", name), |b| {
        b.iter(|| black_box(map.insert(next(), 7)))
    });
    group.bench_function(BenchmarkId::new("compute_increment", name), |b| {
        b.iter(|| black_box(map.compute(next(), |v| Action::Set(v.map_or(0, |v| v + 1)))))
    });
    group.bench_function(BenchmarkId::new("get_or_insert_hit", name), |b| {
        b.iter(|| black_box(map.get_or_insert_with(next(), || 0)))
    });
    group.finish();
}

/// The floor: the same operations on hashbrown with no synchronization.
fn floor(c: &mut Criterion) {
    let mut map: hashbrown::HashMap<u64, u64, DefaultHashBuilder> =
        hashbrown::HashMap::with_hasher(DefaultHashBuilder::default());
    for i in 0..ENTRIES {
        map.insert(key(i), i);
    }
    let mut group = c.benchmark_group("single_op");
    let mut next = cycling_keys();
    group.bench_function(BenchmarkId::new("get_hit", "hashbrown"), |b| {
        b.iter(|| black_box(map.get(&next()).copied()))
    });
    group.bench_function(BenchmarkId::new("get_miss", "hashbrown"), |b| {
        b.iter(|| black_box(map.get(&(next() ^ 1)).copied()))
    });
    group.bench_function(BenchmarkId::new("insert_overwrite", "hashbrown"), |b| {
        b.iter(|| black_box(map.insert(next(), 7)))
    });
    group.bench_function(BenchmarkId::new("compute_increment", "hashbrown"), |b| {
        b.iter(|| *map.entry(next()).or_insert(0) += 1)
    });
    group.bench_function(BenchmarkId::new("get_or_insert_hit", "hashbrown"), |b| {
        b.iter(|| black_box(*map.entry(next()).or_insert(0)))
    });
    group.finish();
}

/// Measures each entry of `safemap::strategies!`.
macro_rules! every_strategy {
    ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?] $c:expr) => {
        $(strategy::<safemap::$map<u64, u64>>($c, stringify!($map));)*
    };
}

fn all(c: &mut Criterion) {
    safemap::strategies!(every_strategy!(c));
    floor(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
