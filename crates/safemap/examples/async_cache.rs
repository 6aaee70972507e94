//! Caching slow lookups with single-flight async init, on tokio: many tasks ask for a few
//! profiles at once, each profile is fetched once, and nobody else waits.
//!
//! ```text
//! cargo run -p safemap --example async_cache
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use safemap::{ConcurrentMap, ShardedMap};

/// A lookup that takes 50 ms, as a database or an HTTP call would.
async fn fetch_profile(id: u32, fetches: &AtomicUsize) -> String {
    fetches.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    format!("profile {id}")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let cache: Arc<ShardedMap<u32, String>> = Arc::new(ShardedMap::new());
        let fetches = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..1000u32)
            .map(|request| {
                let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
                tokio::spawn(async move {
                    let id = request % 10;
                    let profile = cache
                        .get_or_insert_with_async(id, || fetch_profile(id, &fetches))
                        .await;
                    assert_eq!(profile, format!("profile {id}"));
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a request task");
        }
        println!(
            "1000 requests for 10 profiles: {} fetches, {:?} in all, {} profiles cached",
            fetches.load(Ordering::SeqCst),
            start.elapsed(),
            cache.len()
        );
    });
}
