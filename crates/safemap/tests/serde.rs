//! The `serde` feature, for every strategy: maps and snapshots round-trip through JSON and
//! postcard (a compact binary format), a map serializes one instant of itself, and bad input is
//! an error that builds no map. Text values, and plain numbers on the strategies that hold only
//! plain old data.

mod common;

use common::for_every_strategy;

/// The values a suite stores: the `i`th sample.
trait Sample {
    fn of(i: u32) -> Self;
}

impl Sample for String {
    fn of(i: u32) -> Self {
        format!("v{i}")
    }
}

impl Sample for u64 {
    fn of(i: u32) -> Self {
        u64::from(i) * 7 + 1
    }
}

/// The suite's tests, for maps of `u32` keys and `$value` values.
macro_rules! serde_tests {
    ($value:ty) => {
        use std::collections::BTreeMap;

        use safemap::ConcurrentMap;

        use crate::Sample;

        fn sample() -> Map<u32, $value> {
            (0..200).map(|i| (i, <$value as Sample>::of(i))).collect()
        }

        fn entries(map: &Map<u32, $value>) -> BTreeMap<u32, $value> {
            map.iter().collect()
        }

        #[test]
        fn a_map_round_trips_through_json_and_postcard() {
            let map = sample();
            let json = serde_json::to_string(&map).unwrap();
            let from_json: Map<u32, $value> = serde_json::from_str(&json).unwrap();
            assert_eq!(entries(&from_json), entries(&map));
            let bytes = postcard::to_stdvec(&map).unwrap();
            let from_bytes: Map<u32, $value> = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(entries(&from_bytes), entries(&map));
            // A map reads back as any map: std's, for one.
            let std_map: std::collections::HashMap<u32, $value> =
                serde_json::from_str(&json).unwrap();
            assert_eq!(std_map.len(), 200);
            assert_eq!(std_map[&7], <$value as Sample>::of(7));
        }

        #[test]
        fn a_snapshot_serializes_as_the_map_did_when_it_was_taken() {
            let map = sample();
            let view = map.snapshot();
            map.insert(1000, <$value as Sample>::of(1000));
            map.remove(&0);
            let from_view: BTreeMap<u32, $value> =
                serde_json::from_str(&serde_json::to_string(&view).unwrap()).unwrap();
            assert_eq!(from_view, entries(&sample()));
            let now: BTreeMap<u32, $value> =
                serde_json::from_str(&serde_json::to_string(&map).unwrap()).unwrap();
            assert_eq!(now, entries(&map));
        }

        #[test]
        fn bad_input_is_an_error_and_builds_no_map() {
            let wrong_type = serde_json::from_str::<Map<u32, u32>>(r#"{"1": "one"}"#).unwrap_err();
            assert!(
                wrong_type.to_string().contains("invalid type"),
                "{wrong_type}"
            );
            let not_a_map = serde_json::from_str::<Map<u32, u32>>("[1, 2]").unwrap_err();
            assert!(
                not_a_map.to_string().contains("a map of entries"),
                "{not_a_map}"
            );
            let bytes = postcard::to_stdvec(&sample()).unwrap();
            let truncated = postcard::from_bytes::<Map<u32, $value>>(&bytes[..bytes.len() / 2]);
            assert!(truncated.is_err());
            // A length prefix that claims far more entries than follow reserves little and fails.
            let claims_many =
                postcard::from_bytes::<Map<u32, u32>>(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]);
            assert!(claims_many.is_err());
        }

        #[test]
        fn a_repeated_key_keeps_its_last_value() {
            let map: Map<u32, u32> =
                serde_json::from_str(r#"{"1": 10, "2": 20, "1": 11}"#).unwrap();
            assert_eq!(
                (map.len(), map.get(&1), map.get(&2)),
                (2, Some(11), Some(20))
            );
        }
    };
}

for_every_strategy! {
    serde_tests!(String);
}

mod plain_values {
    crate::common::for_every_pod_strategy! {
        serde_tests!(u64);
    }
}
