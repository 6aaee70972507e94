//! A deliberate data race. `ci/sanitizers.sh` builds it under TSAN and requires a report, which
//! shows the TSAN setup can fail before its silence on the real suite is trusted.

static mut COUNTER: u64 = 0;

fn bump() {
    for _ in 0..10_000 {
        // SAFETY: none. This is deliberately unsound: two threads write COUNTER unsynchronized,
        // which is the data race the sanitizer must report.
        unsafe { COUNTER += 1 };
    }
}

fn main() {
    let other = std::thread::spawn(bump);
    bump();
    other.join().unwrap();
}
