//! `SAFEMAP_STRESS=1` at build time compiles the crate (library and tests) with
//! `--cfg safemap_stress`: small trie leaves, one reader slot, tables that grow early, lines
//! of one slot (so chains link overflow lines), so the suites reach the rare paths. Set through the environment rather than `RUSTFLAGS`, it rebuilds
//! this crate and what depends on it, and not every dependency in a target directory of its own.
fn main() {
    println!("cargo::rerun-if-env-changed=SAFEMAP_STRESS");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("SAFEMAP_STRESS").is_some_and(|value| !value.is_empty() && value != "0") {
        println!("cargo::rustc-cfg=safemap_stress");
    }
}
