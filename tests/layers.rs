//! The layering stays one-way: every `crate::…` path in the relay's and the actors crate's
//! non-test code must name a module of a lower layer than its own. The layers are stated once,
//! in the tables of `docs/architecture.md` (between `<!-- layers:NAME … -->` and
//! `<!-- /layers:NAME -->`); this test reads them from there, so the document and the code cannot
//! drift apart. A module that is in no layer, or a layer entry with no module, fails too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One crate's source tree and the table that orders its top-level modules.
struct Crate {
    table: &'static str,
    src: &'static str,
}

const CRATES: [Crate; 2] = [
    Crate {
        table: "relay",
        src: "src",
    },
    Crate {
        table: "actors",
        src: "actors/src",
    },
];

#[test]
fn no_module_imports_its_own_layer_or_one_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let mut problems = Vec::new();
    for krate in CRATES {
        let layers = match layer_table(&doc, krate.table) {
            Ok(layers) => layers,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let files = source_files(&root.join(krate.src));
        problems.extend(check(krate.src, &layers, &files));
    }
    assert!(
        problems.is_empty(),
        "the layering of docs/architecture.md is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_modules_inside_each_module_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for krate in CRATES {
        let files = source_files(&root.join(krate.src));
        problems.extend(sibling_cycles(krate.src, &files));
    }
    assert!(
        problems.is_empty(),
        "modules inside a module import each other in a cycle:\n  {}",
        problems.join("\n  ")
    );
}

/// Top-level module → its layer, from the table named `name`.
fn layer_table(doc: &str, name: &str) -> Result<BTreeMap<String, u32>, String> {
    let begin = format!("<!-- layers:{name}");
    let end = format!("<!-- /layers:{name} -->");
    let start = doc
        .find(&begin)
        .ok_or_else(|| format!("no `{begin} … -->` table in docs/architecture.md"))?;
    let stop = doc[start..]
        .find(&end)
        .ok_or_else(|| format!("the `{name}` layer table has no `{end}`"))?;
    let mut layers = BTreeMap::new();
    for row in doc[start..start + stop].lines() {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // A row is `| N name | `a`, `b` | … |`: cells[0] is the text before the first bar.
        let Some(number) = cells.get(1).and_then(|c| leading_number(c)) else {
            continue;
        };
        for module in cells.get(2).map_or(Vec::new(), |c| backticked(c)) {
            if let Some(other) = layers.insert(module.clone(), number) {
                return Err(format!(
                    "`{module}` is in layers {other} and {number} of the `{name}` table"
                ));
            }
        }
    }
    if layers.is_empty() {
        return Err(format!("the `{name}` layer table has no rows"));
    }
    Ok(layers)
}

fn leading_number(cell: &str) -> Option<u32> {
    let digits: String = cell.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every `.rs` file under `src`, with its text.
fn source_files(src: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("readable source folder") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("readable source file");
                files.push((path.strip_prefix(src).unwrap().to_path_buf(), text));
            }
        }
    }
    files.sort();
    files
}

/// The problems of one crate: modules missing from the table or the table naming a module that
/// does not exist, and every arrow that does not point to a lower layer.
fn check(src: &str, layers: &BTreeMap<String, u32>, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut modules = std::collections::BTreeSet::new();
    for (path, _) in files {
        if let Some(module) = top_module(path) {
            modules.insert(module);
        }
    }
    for module in &modules {
        if !layers.contains_key(module) {
            problems.push(format!("{src}: module `{module}` is in no layer"));
        }
    }
    for module in layers.keys() {
        if !modules.contains(module) {
            problems.push(format!(
                "{src}: the table names `{module}`, which is not a module"
            ));
        }
    }
    for (path, text) in files {
        let Some(module) = top_module(path) else {
            continue;
        };
        if is_test_file(path) {
            continue;
        }
        let Some(&own) = layers.get(&module) else {
            continue;
        };
        for (line, target) in crate_paths(&without_tests(text)) {
            if target == module {
                continue;
            }
            match layers.get(&target) {
                Some(&theirs) if theirs < own => {}
                Some(&theirs) => problems.push(format!(
                    "{src}/{}:{line}: `{module}` (layer {own}) imports `{target}` (layer {theirs})",
                    path.display()
                )),
                // A path into something that is not a module (a macro, a re-export at the
                // root): the root re-exports nothing, so name it.
                None => problems.push(format!(
                    "{src}/{}:{line}: `crate::{target}` is not a module of any layer",
                    path.display()
                )),
            }
        }
    }
    problems
}

/// Cycles among the child modules of each top-level module (`a.rs` imports `super::b`, and `b`
/// imports `a`): the layering inside a module is not stated, but it must still run one way.
fn sibling_cycles(src: &str, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut edges: BTreeMap<(String, String), std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut children: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (path, _) in files {
        if let (Some(parent), Some(child)) = (top_module(path), child_module(path)) {
            children.entry(parent).or_default().insert(child);
        }
    }
    for (path, text) in files {
        let (Some(parent), Some(child)) = (top_module(path), child_module(path)) else {
            continue;
        };
        if is_test_file(path) {
            continue;
        }
        let siblings = &children[&parent];
        let code = without_tests(text);
        let own = format!("crate::{parent}::");
        let depth = path.components().count() - 2;
        let up = format!("{}super::", "super::".repeat(depth));
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for marker in [own.as_str(), up.as_str()] {
                for (at, _) in line.match_indices(marker) {
                    // `super::super::x` seen from a deeper file is not this file's `super::x`.
                    if marker == up && line[..at].ends_with("super::") {
                        continue;
                    }
                    let name = ident(&line[at + marker.len()..]);
                    if name != child && siblings.contains(&name) {
                        edges
                            .entry((parent.clone(), child.clone()))
                            .or_default()
                            .insert(name);
                    }
                }
            }
        }
    }
    let mut problems = Vec::new();
    for ((parent, child), targets) in &edges {
        for target in targets {
            if reaches(&edges, parent, target, child) {
                problems.push(format!(
                    "{src}/{parent}: `{child}` imports `{target}`, which leads back to `{child}`"
                ));
            }
        }
    }
    problems
}

/// True when, inside `parent`, `from` leads to `to` through imports.
fn reaches(
    edges: &BTreeMap<(String, String), std::collections::BTreeSet<String>>,
    parent: &str,
    from: &str,
    to: &str,
) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        if !seen.insert(node.clone()) {
            continue;
        }
        if let Some(next) = edges.get(&(parent.to_owned(), node)) {
            stack.extend(next.iter().cloned());
        }
    }
    false
}

/// The child module (of the top-level one) a file belongs to: `store/keys.rs` → `keys`,
/// `http/failover/attempts.rs` → `failover`; `None` for a top-level module's own `mod.rs`.
fn child_module(path: &Path) -> Option<String> {
    let mut parts = path.components().skip(1);
    let second = parts.next()?.as_os_str().to_str()?;
    match second {
        "mod.rs" => None,
        file if file.ends_with(".rs") => Some(file.trim_end_matches(".rs").to_owned()),
        dir => Some(dir.to_owned()),
    }
}

/// The top-level module a file belongs to; `None` for the crate roots.
fn top_module(path: &Path) -> Option<String> {
    let first = path.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        file if file.ends_with(".rs") => Some(file.trim_end_matches(".rs").to_owned()),
        dir => Some(dir.to_owned()),
    }
}

/// Test code may reach anything: a file named `tests.rs` or under a `tests` folder.
fn is_test_file(path: &Path) -> bool {
    path.components()
        .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs")
}

/// The text without the items marked `#[cfg(test)]` (a test module, or one test-only item).
fn without_tests(text: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        kept.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        let end = item_end(item);
        // Keep the line count, so reported line numbers stay right.
        kept.extend(item[..end].chars().filter(|&c| c == '\n'));
        rest = &item[end..];
    }
    kept.push_str(rest);
    kept
}

/// Where the item at the start of `text` ends: at its `;` if one comes before any `{`, else at
/// the brace that closes its first `{`.
fn item_end(text: &str) -> usize {
    let semicolon = text.find(';');
    let brace = text.find('{');
    match (semicolon, brace) {
        (Some(s), Some(b)) if s < b => s + 1,
        (Some(s), None) => s + 1,
        (_, Some(b)) => {
            let mut depth = 0usize;
            for (i, c) in text[b..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return b + i + 1;
                        }
                    }
                    _ => {}
                }
            }
            text.len()
        }
        (None, None) => text.len(),
    }
}

/// Each top-level module named by a `crate::` path in code (comment lines skipped), with its
/// line; `crate::{a::X, b}` names each of `a` and `b`.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            // `relay_actors::…` or `$crate::…` are not this crate's paths.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let close = group.find('}').unwrap_or(group.len());
                for part in group[..close].split(',') {
                    let name = ident(part.trim());
                    if !name.is_empty() {
                        found.push((index + 1, name));
                    }
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    found.push((index + 1, name));
                }
            }
        }
    }
    found
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod checker {
    //! The checker itself: each kind of break is found.
    use super::*;

    const TABLE: &str = "<!-- layers:t — test -->\n\
        | Layer | Modules | What |\n|---|---|---|\n\
        | 2 top | `planes` | handlers |\n\
        | 1 middle | `state`, `credentials` | shared |\n\
        | 0 bottom | `domain` | types |\n\
        <!-- /layers:t -->";

    fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect()
    }

    fn problems(list: &[(&str, &str)]) -> Vec<String> {
        let layers = layer_table(TABLE, "t").unwrap();
        check("src", &layers, &files(list))
    }

    const FINE: [(&str, &str); 4] = [
        (
            "planes/mod.rs",
            "use crate::state::AppState;\nuse crate::{domain::X, credentials};",
        ),
        ("state.rs", "use crate::domain::Usage;"),
        ("credentials/ring.rs", "use crate::domain::KeyHash;"),
        ("domain/mod.rs", "pub struct Usage;"),
    ];

    #[test]
    fn the_table_is_read_with_its_numbers() {
        let layers = layer_table(TABLE, "t").unwrap();
        assert_eq!(layers["planes"], 2);
        assert_eq!(layers["credentials"], 1);
        assert_eq!(layers["domain"], 0);
        assert!(layer_table(TABLE, "other").is_err());
    }

    #[test]
    fn downward_arrows_pass() {
        assert_eq!(problems(&FINE), Vec::<String>::new());
    }

    #[test]
    fn an_arrow_up_or_within_a_layer_is_named_with_its_line() {
        let mut list = FINE.to_vec();
        list.push((
            "domain/usage.rs",
            "// crate::planes in a comment is fine\nuse crate::planes::X;",
        ));
        list.push(("credentials/sync.rs", "fn f() { crate::state::g() }"));
        let found = problems(&list);
        assert_eq!(found.len(), 2, "{found:?}");
        let names = |needle: &str| found.iter().any(|p| p.contains(needle));
        assert!(names(
            "src/credentials/sync.rs:1: `credentials` (layer 1) imports `state` (layer 1)"
        ));
        assert!(names(
            "src/domain/usage.rs:2: `domain` (layer 0) imports `planes` (layer 2)"
        ));
    }

    #[test]
    fn a_grouped_import_is_read_name_by_name() {
        let mut list = FINE.to_vec();
        list.push(("state.rs", "use crate::{domain::X, planes::Y};"));
        let found = problems(&list);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("imports `planes`"));
    }

    #[test]
    fn test_code_may_reach_anything() {
        let mut list = FINE.to_vec();
        list.push((
            "domain/policy.rs",
            "pub fn a() {}\n#[cfg(test)]\nmod tests {\n    use crate::planes::X;\n    fn f() { if true { } }\n}\n#[cfg(test)]\nuse crate::state::Y;\npub fn b() {}",
        ));
        list.push(("domain/tests.rs", "use crate::planes::X;"));
        list.push(("state/tests/more.rs", "use crate::planes::X;"));
        assert_eq!(problems(&list), Vec::<String>::new());
        list.push((
            "domain/late.rs",
            "#[cfg(test)]\nmod t { }\nuse crate::planes::X;",
        ));
        let found = problems(&list);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("src/domain/late.rs:3:"));
    }

    #[test]
    fn a_module_outside_the_table_and_a_row_without_a_module_are_named() {
        let mut list = FINE.to_vec();
        list.retain(|(p, _)| !p.starts_with("credentials"));
        list.push(("extra.rs", ""));
        let found = problems(&list);
        assert!(
            found
                .iter()
                .any(|p| p.contains("module `extra` is in no layer")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("names `credentials`, which is not a module")),
            "{found:?}"
        );
    }

    #[test]
    fn paths_of_other_crates_are_not_this_ones() {
        let mut list = FINE.to_vec();
        list.push((
            "domain/x.rs",
            "use relay_actors::planes;\nmacro_rules! m { () => { $crate::planes } }",
        ));
        assert_eq!(problems(&list), Vec::<String>::new());
    }

    #[test]
    fn a_cycle_between_modules_inside_a_module_is_named() {
        let list = files(&[
            ("cli/mod.rs", "mod limits; mod update; mod key;"),
            ("cli/limits.rs", "use super::update::Cleared;"),
            (
                "cli/update.rs",
                "use super::limits::Args;\nuse super::key::Key;",
            ),
            ("cli/key.rs", "use crate::cli::limits::Args;"),
            (
                "cli/deep/inner.rs",
                "use super::super::update::X;\nuse super::sibling::Y;",
            ),
        ]);
        let found = sibling_cycles("src", &list);
        let names = |needle: &str| found.iter().any(|p| p.contains(needle));
        assert!(names("`limits` imports `update`"), "{found:?}");
        assert!(names("`update` imports `limits`"), "{found:?}");
        // `key` → `limits` → `update` → `key`... only when update imports key: it does.
        assert!(names("`key` imports `limits`"), "{found:?}");
        let acyclic = files(&[
            ("cli/limits.rs", "pub struct Args;"),
            ("cli/update.rs", "use super::limits::Args;"),
            (
                "cli/key.rs",
                "use crate::cli::limits::Args;\n// super::update in a comment",
            ),
        ]);
        assert_eq!(sibling_cycles("src", &acyclic), Vec::<String>::new());
    }
}
