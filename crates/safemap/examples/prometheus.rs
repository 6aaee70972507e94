//! Serves two maps' metrics on http://127.0.0.1:9187/metrics for Prometheus while a workload
//! runs against them.
//!
//! `cargo run --release -p safemap --features metrics --example prometheus -- [seconds] [port]`
//! (default 30 seconds on port 9187), then `curl -s 127.0.0.1:9187/metrics | grep safemap_`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use safemap::{Action, ConcurrentMap, MetricsObserver, Observed, ReadMostlyMap, ShardedMap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(30), |s| s.parse())?;
    let port: u16 = args.next().map_or(Ok(9187), |s| s.parse())?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    PrometheusBuilder::new()
        .with_http_listener(address)
        .install()?;
    println!("serving http://{address}/metrics for {seconds} s");

    let counters = Observed::new(
        ShardedMap::<u64, u64>::new(),
        MetricsObserver::new("counters"),
    );
    let registry = Observed::new(
        ReadMostlyMap::<u64, String>::new(),
        MetricsObserver::new("registry"),
    );
    let until = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (counters, registry) = (&counters, &registry);
            s.spawn(move || {
                let mut i = t;
                while Instant::now() < until {
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let key = i % 10_000;
                    counters.compute(key % 100, |n| Action::Set(n.copied().unwrap_or(0) + 1));
                    if registry.get(&key).is_none() {
                        registry.get_or_insert_with(key, || format!("device-{key}"));
                    }
                    if key % 97 == 0 {
                        registry.remove(&key);
                    }
                }
            });
        }
    });
    println!(
        "done: {} counters, {} devices",
        counters.len(),
        registry.len()
    );
    Ok(())
}
