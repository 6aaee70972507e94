//! Differential tests: random operation sequences against `std::collections::HashMap`, for every
//! strategy. Every result and the final contents must match the model exactly. The body is
//! `common/model_steps.rs`, written against `TryConcurrentMap` so that `safemap-redis` runs it
//! too.

mod common;

use common::for_every_strategy_on_plain_data;
use common::model_steps::{matches_the_model, op};
use proptest::prelude::*;

for_every_strategy_on_plain_data! {
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_std_hashmap(ops in proptest::collection::vec(op(), 1..200)) {
            let map: Map<u8, u16> = Map::new();
            matches_the_model(&map, &ops);
        }
    }
}
