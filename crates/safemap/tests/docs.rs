//! The strategy tables of the crate docs and the README name every strategy of
//! `safemap::strategies!` and no other, and state each one's snapshot cost as it declares it.

use safemap::{ConcurrentMap, Consistency, Cost};

/// Each strategy of the list, with its declared consistency.
macro_rules! declared {
    ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
        vec![$((
            stringify!($map),
            <safemap::$map<u32, u32> as ConcurrentMap<u32, u32>>::CONSISTENCY,
        )),*]
    };
}

/// The rows of the first Markdown table whose header starts with `| strategy |`: each row's
/// cells, the strategy's name stripped of backticks and link brackets.
fn strategy_table(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.trim_start_matches("//!").trim())
        .collect();
    let header = (lines.iter())
        .position(|line| line.starts_with("| strategy |"))
        .expect("a strategy table");
    (lines[header + 2..].iter())
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            let mut cells: Vec<String> = row
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_string())
                .collect();
            cells[0] = cells[0].replace(['`', '[', ']'], "");
            cells
        })
        .collect()
}

/// Why `rows` does not match `declared`, if it does not.
fn mismatch(rows: &[Vec<String>], declared: &[(&str, Consistency)]) -> Option<String> {
    for (name, consistency) in declared {
        let Some(row) = rows.iter().find(|row| row[0] == *name) else {
            return Some(format!("no row for {name}"));
        };
        let constant = row.get(4).is_some_and(|cell| cell.contains("O(1)"));
        if constant != (consistency.snapshot_cost == Cost::Constant) {
            return Some(format!(
                "{name}'s snapshot cell {:?} disagrees with {:?}",
                row.get(4),
                consistency.snapshot_cost
            ));
        }
    }
    (rows.iter())
        .find(|row| !declared.iter().any(|(name, _)| row[0] == *name))
        .map(|row| format!("a row for {}, which is not in the strategy list", row[0]))
}

fn check(file: &str) {
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let declared = safemap::strategies!(declared!());
    if let Some(problem) = mismatch(&strategy_table(&text), &declared) {
        panic!("{file}: {problem}");
    }
}

#[test]
fn the_crate_docs_table_matches_the_strategy_list() {
    check("src/lib.rs");
}

#[test]
fn the_readme_table_matches_the_strategy_list() {
    check("../../README.md");
}

/// The check fails on a table that lacks a strategy, names one too many, or states a wrong cost.
#[test]
fn the_table_check_rejects_wrong_tables() {
    let declared = safemap::strategies!(declared!());
    let text =
        std::fs::read_to_string(format!("{}/src/lib.rs", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let rows = strategy_table(&text);
    assert_eq!(mismatch(&rows, &declared), None);
    assert!(
        mismatch(&rows[1..], &declared)
            .unwrap()
            .starts_with("no row")
    );
    let mut extra = rows.clone();
    extra.push(vec!["TrieMap".into(); 6]);
    assert!(
        mismatch(&extra, &declared)
            .unwrap()
            .contains("not in the strategy list")
    );
    let mut wrong = rows.clone();
    wrong[0][4] = "O(1)".into();
    assert!(mismatch(&wrong, &declared).unwrap().contains("disagrees"));
}
