//! The crate's layering: the modules of `src/` import each other without cycles, and nothing in
//! `src/raw/` imports a strategy file, the front or the crate root. Read from the source, so a
//! change that adds an upward import fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module (`map`, `raw::core`, `raw::left_right::ops`, ...) and the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The module a source file under `src/` defines.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module paths `code` (one file's text, of module `module`) names through `crate::` or
/// `super::`, outside comments, resolved to the longest known module each names.
fn imports(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let parent = |m: &str| {
        m.rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_string())
    };
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
            for (at, _) in line.match_indices(prefix) {
                if line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let mut path: String = line[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut base = base.clone();
                while let Some(rest) = path.strip_prefix("super::") {
                    (base, path) = (parent(&base), rest.to_string());
                }
                let mut full: Vec<&str> = base.split("::").filter(|p| !p.is_empty()).collect();
                full.extend(path.split("::").filter(|p| !p.is_empty()));
                let target = (0..=full.len())
                    .rev()
                    .map(|n| full[..n].join("::"))
                    .find(|candidate| known.contains(candidate))
                    .unwrap_or_default();
                if target != module {
                    found.insert(target);
                }
            }
        }
    }
    found
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<(String, String)> = (files.iter())
        .map(|f| {
            (
                module_of(f.strip_prefix(&src).unwrap()),
                std::fs::read_to_string(f).unwrap(),
            )
        })
        .collect();
    let known: BTreeSet<String> = modules.iter().map(|(m, _)| m.clone()).collect();
    (modules.iter())
        .map(|(module, code)| (module.clone(), imports(module, code, &known)))
        .collect()
}

/// A cycle of imports, if there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The imports from `raw` up into the strategies, the front or the crate root.
fn upward(graph: &Graph) -> Vec<(String, String)> {
    let above = ["", "front", "locked", "sharded", "snapshot", "read_mostly"];
    (graph.iter())
        .filter(|(module, _)| module.starts_with("raw"))
        .flat_map(|(module, targets)| targets.iter().map(move |t| (module.clone(), t.clone())))
        .filter(|(_, target)| above.contains(&target.as_str()))
        .collect()
}

#[test]
fn the_modules_import_each_other_without_cycles() {
    let graph = graph();
    assert!(
        graph.contains_key("raw::core") && graph["front"].contains("raw::core"),
        "{graph:?}"
    );
    assert_eq!(cycle(&graph), None);
}

#[test]
fn nothing_in_raw_imports_the_strategies_the_front_or_the_root() {
    assert_eq!(upward(&graph()), vec![]);
}

/// The checks fail on the layouts they forbid.
#[test]
fn the_checks_reject_a_cycle_and_an_upward_import() {
    let known: BTreeSet<String> = ["", "map", "tally", "sync", "raw", "raw::table", "sharded"]
        .map(String::from)
        .into();
    let mut graph = Graph::new();
    graph.insert(
        "sync".into(),
        imports("sync", "use crate::tally::lock_waited;", &known),
    );
    graph.insert(
        "tally".into(),
        imports("tally", "use crate::sync::thread_local;", &known),
    );
    assert_eq!(cycle(&graph).map(|c| c.len()), Some(3), "{graph:?}");
    let table = "use super::super::DefaultHashBuilder;\nuse crate::sharded::X;\n// crate::map::Y";
    graph.insert("raw::table".into(), imports("raw::table", table, &known));
    let mut up = upward(&graph);
    up.sort();
    assert_eq!(up.len(), 2, "{up:?}");
    assert!(
        !graph["raw::table"].contains("map"),
        "a comment counted as an import"
    );
}
