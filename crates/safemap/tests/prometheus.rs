//! With the `metrics` feature, an observed map's series reach a Prometheus scrape: the exporter
//! serves them on 127.0.0.1 and a plain HTTP GET finds them with the counts the workload made.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use safemap::{ConcurrentMap, MetricsObserver, Observed, ShardedMap, SnapshotMap};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs `/metrics`, retrying while the exporter's listener starts.
fn scrape(address: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = TcpStream::connect(address) {
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut body = String::new();
            stream.read_to_string(&mut body).unwrap();
            if body.starts_with("HTTP/1.1 200") {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the exporter never answered on {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the series whose line starts with `name{` and contains every label in `labels`.
fn value(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_scrape_finds_the_maps_series_with_their_counts() {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    PrometheusBuilder::new()
        .with_http_listener(address)
        .install()
        .expect("the exporter starts");
    let map = Observed::new(
        SnapshotMap::<u32, u32>::new(),
        MetricsObserver::new("scraped"),
    );
    for k in 0..50 {
        map.insert(k, k);
    }
    for k in 0..80 {
        map.get(&k);
    }
    map.retain(|k, _| *k != 49);
    let sharded = Observed::new(
        ShardedMap::<u32, u32>::with_shards(8),
        MetricsObserver::new("sharded"),
    );
    for k in 0..5000 {
        sharded.insert(k, k);
    }
    sharded.report_balance();
    let body = scrape(address);
    let series = |op: &str, outcome: &str| {
        let labels = [
            "map=\"scraped\"",
            &format!("operation=\"{op}\"") as &str,
            &format!("outcome=\"{outcome}\""),
        ];
        value(&body, "safemap_operations_total", &labels)
    };
    assert_eq!(series("insert", "inserted"), Some(50.0), "{body}");
    assert_eq!(series("get", "hit"), Some(50.0), "{body}");
    assert_eq!(series("get", "miss"), Some(30.0), "{body}");
    // A SnapshotMap's inserts change leaves in place; its `retain` published one version.
    let publishes = ["map=\"scraped\"", "kind=\"publish\""];
    assert_eq!(
        value(&body, "safemap_maintenance_total", &publishes),
        Some(1.0),
        "{body}"
    );
    // 5,000 entries over 8 shards: every shard's table has grown from its first allocation.
    let resizes = ["map=\"sharded\"", "kind=\"resize\""];
    let resized = value(&body, "safemap_maintenance_total", &resizes);
    assert!(resized.is_some_and(|n| n >= 8.0), "{body}");
    let sharded_map = ["map=\"sharded\""];
    assert_eq!(
        value(&body, "safemap_entries", &sharded_map),
        Some(5000.0),
        "{body}"
    );
    let imbalance = value(&body, "safemap_shard_imbalance", &sharded_map);
    assert!(imbalance.is_some_and(|i| (1.0..1.5).contains(&i)), "{body}");
}
