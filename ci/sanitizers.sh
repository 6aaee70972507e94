#!/usr/bin/env bash
# Runs the test suites under ThreadSanitizer and AddressSanitizer (with LeakSanitizer) on the
# nightly toolchain. First each sanitizer must catch its canary (ci/canary/), so that a clean run
# means something.
#
# Flags: std ships prebuilt without sanitizer instrumentation and there is no rust-src here for
# -Zbuild-std, so -Cunsafe-allow-abi-mismatch=sanitizer lets instrumented crates link against it.
# TSAN then cannot see synchronization inside std, hence ci/tsan-suppressions.txt (each entry
# says why) and --test-threads=1 (libtest's own cross-test machinery is uninstrumented std; each
# test still spawns its own threads). Tests use parking_lot locks, which are instrumented. The
# tests that run on tokio (modules `on_tokio*`) are skipped under TSAN: tokio's queues sit behind std's
# Mutex, which TSAN cannot see either; ASAN runs them. The checker is built without its default
# features (its binary and RedisMap's histories): RedisMap is safe code over sockets, its
# histories spend their time in round trips, which the sanitizers slow tenfold, and without its
# client and CLI crates the checker's own graph is 34 crates, not 118; safemap-redis's tests are
# not run here.
# The checker's search tests (named `search_`) are skipped under both: sequential computation over
# histories, in safe code (they added 25 s to the checker's TSAN run, with nothing to watch), and
# its test that every seeded bug is caught: the bugs are safe wrappers over LockedMap, whose
# concurrent use `every_strategy_passes` and safemap's suites watch, and CI's checker step runs
# the test's claim natively (it was most of the checker's 71 s under TSAN).
#
# Each sanitizer builds once: safemap's suites and the checker's in one cargo call, so that
# safemap is compiled with one set of features for both (two calls compiled it twice). Line
# tables are all the debug information a report needs (as `.ci/run` sets for every step).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain="${SANITIZER_TOOLCHAIN:-nightly}"
target=x86_64-unknown-linux-gnu
# The suites, as explicit targets: `--tests` would apply to both packages and bring in the
# checker's CLI tests, which spawn processes and check no concurrency. Suites that need a feature
# are left out, as `--tests` would leave them out (they are not built here).
featured=$(awk '/^\[/ { test = ($0 == "[[test]]"); name = "" } /^name = / { name = $3 }
  /^required-features/ && test { gsub(/"/, "", name); print name }' crates/safemap/Cargo.toml)
suites() {  # cargo's package and target arguments, without the safemap suites named
  local args="-p safemap -p safemap-check --no-default-features --lib --test checker"
  for file in crates/safemap/tests/*.rs; do
    name=$(basename "$file" .rs)
    case " $* $(echo $featured) " in
      *" $name "*) ;;
      *) args+=" --test $name" ;;
    esac
  done
  echo "$args"
}
# TSAN looks for races, and two of safemap's suites run on one thread: the model's differential
# runs and the capacity accounting. Their only other thread is the release thread, whose handoffs
# `release.rs` and the stress suites run under TSAN; so TSAN leaves those two out (44 s and 33 s of
# its four minutes of tests here), and ASAN, which checks memory, runs every suite.
tsan_suites=$(suites model capacity)
asan_suites=$(suites)
skips=(--skip search_ --skip every_seeded_bug)
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
out=target/sanitizer-canary
mkdir -p "$out"

expect_report() {  # name, sanitizer, pattern
  local name=$1 sanitizer=$2 pattern=$3
  rustc +"$toolchain" --edition 2024 -g -Zsanitizer="$sanitizer" --target "$target" \
    -Cunsafe-allow-abi-mismatch=sanitizer -o "$out/$name" "ci/canary/$name.rs" 2>/dev/null
  if "$out/$name" >"$out/$name.log" 2>&1 || ! grep -q "$pattern" "$out/$name.log"; then
    echo "sanitizers: the $sanitizer canary $name was not reported; the setup is broken" >&2
    cat "$out/$name.log" >&2
    exit 1
  fi
  echo "canary $name: reported by $sanitizer, as it must be"
}

echo "==> [${SECONDS}s] ThreadSanitizer"
# Like the two suites above, the unit tests of the trie's nodes and of the routing arithmetic run
# on one thread, with nothing to watch; ASAN runs them.
expect_report data_race thread "ThreadSanitizer: data race"
# shellcheck disable=SC2086 # the suites are several cargo arguments
RUSTFLAGS="-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer" \
TSAN_OPTIONS="suppressions=$PWD/ci/tsan-suppressions.txt halt_on_error=1" \
  cargo +"$toolchain" test $tsan_suites --target "$target" --target-dir target/tsan \
  -- --test-threads=1 --skip on_tokio --skip raw::live_trie::node::tests --skip raw::routing::tests "${skips[@]}"

echo "==> [${SECONDS}s] AddressSanitizer (with leak detection)"
expect_report use_after_free address "heap-use-after-free"
# shellcheck disable=SC2086 # as above
RUSTFLAGS="-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer" \
ASAN_OPTIONS="detect_leaks=1" \
  cargo +"$toolchain" test $asan_suites --target "$target" --target-dir target/asan \
  -- "${skips[@]}"
