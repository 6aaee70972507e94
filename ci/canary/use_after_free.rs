//! A deliberate use after free. `ci/sanitizers.sh` builds it under ASAN and requires a report,
//! which shows the ASAN setup can fail before its silence on the real suite is trusted.

fn main() {
    let freed = Box::into_raw(Box::new(7u64));
    // SAFETY: `freed` came from Box::into_raw just above and is reclaimed once.
    drop(unsafe { Box::from_raw(freed) });
    // SAFETY: none. This read is deliberately unsound: the allocation was freed above.
    let value = unsafe { std::ptr::read_volatile(freed) };
    std::process::exit(if value == 7 { 0 } else { 3 });
}
