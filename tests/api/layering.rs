//! The module graph of `src/` has no cycle, and the layers import only downwards.
//!
//! Every `use` tree and every `crate::…`/`super::…` path in the code (comments and string
//! literals removed) is an edge from the file's module to the module it names. A cycle, or an
//! edge a rule below forbids, fails the test with the files involved. Run it alone with
//! `cargo test --no-default-features --features ssr --test api -- layering::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The composition roots: they put the app together and may import anything; nothing imports them.
const ROOTS: &[&str] = &["crate::startup", "crate::cli"];

/// Infrastructure: database, storage, processes, listeners. Below the services.
const INFRASTRUCTURE: &[&str] = &[
    "crate::server::db",
    "crate::server::storage",
    "crate::server::embedded_s3",
    "crate::server::mask_cache",
    "crate::server::inference",
    "crate::server::oip",
    "crate::server::login_limit",
    "crate::server::listener",
    "crate::server::scratch",
    "crate::server::session_store",
    "crate::server::single_flight",
    "crate::server::state",
    "crate::server::text",
    "crate::server::clock",
    "crate::server::rows",
    "crate::server::config",
    "crate::server::error",
    "crate::server::charts",
    "crate::server::identity",
    "crate::server::telemetry",
    "crate::server::oidc",
];

/// The browser-only code, which the editor's shared logic never names.
const EDITOR_BROWSER: &[&str] = &["crate::editor::browser", "crate::browser"];

/// Modules (and everything under them) that may not import the ones listed after them.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // Shared pure code compiles into both builds and knows neither side.
    ("crate::api", &["crate::server", "crate::browser", "crate::pages", "crate::app", "crate::editor"]),
    ("crate::edits", &["crate::server", "crate::browser", "crate::pages", "crate::app"]),
    ("crate::geometry", &["crate::server", "crate::browser", "crate::pages", "crate::app", "crate::editor"]),
    ("crate::display", &["crate::server", "crate::browser", "crate::pages", "crate::app", "crate::editor"]),
    ("crate::nifti_io", &["crate::server", "crate::browser", "crate::pages", "crate::app"]),
    ("crate::slabs", &["crate::server", "crate::browser", "crate::pages", "crate::app", "crate::editor"]),
    ("crate::mask_ops", &["crate::server", "crate::browser", "crate::pages", "crate::app", "crate::editor"]),
    ("crate::metrics", &["crate::server", "crate::browser", "crate::pages", "crate::app"]),
    ("crate::consensus", &["crate::server", "crate::browser", "crate::pages", "crate::app", "crate::editor"]),
    // The editor knows neither the server nor the pages that show it; its browser side
    // (`editor::browser`) talks to the controls only through `editor::ui`.
    ("crate::editor", &["crate::server", "crate::pages", "crate::app"]),
    ("crate::editor::browser", &["crate::editor::panel"]),
    // The editor's logic compiles natively: only its browser side uses the browser.
    ("crate::editor::ui", EDITOR_BROWSER),
    ("crate::editor::tools", EDITOR_BROWSER),
    ("crate::editor::render", EDITOR_BROWSER),
    ("crate::editor::preview", EDITOR_BROWSER),
    ("crate::editor::saved_base", EDITOR_BROWSER),
    ("crate::editor::disagreement", EDITOR_BROWSER),
    ("crate::editor::shortcuts", EDITOR_BROWSER),
    ("crate::browser", &["crate::server", "crate::pages", "crate::app", "crate::editor"]),
    // The server never names the front end: `crate::startup` mounts the pages.
    ("crate::server", &["crate::app", "crate::pages", "crate::editor", "crate::browser"]),
    // Services own the rules; the HTTP edge, sessions and the CLI sit on top of them.
    ("crate::server::services", &["crate::server::http", "crate::server::auth", "crate::server::demo"]),
];

fn main_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `crate::a::b` for `src/a/b.rs` and `src/a/b/mod.rs`; `crate` for `src/lib.rs`.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).ok()?.with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    match parts.last().map(String::as_str) {
        Some("main") if parts.len() == 1 => return None, // the binary, a separate crate
        Some("lib") if parts.len() == 1 => parts.clear(),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    Some(std::iter::once("crate".to_string()).chain(parts).collect::<Vec<_>>().join("::"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code with inline `mod name { … }` blocks (unit tests) removed: their `super` is the
/// file's own module, and a test may use anything.
fn without_inline_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("mod ") {
        let head = &rest[at + 4..];
        let name_end = head.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(head.len());
        let after_name = head[name_end..].trim_start();
        let starts_word = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if !(starts_word && name_end > 0 && after_name.starts_with('{')) {
            out.push_str(&rest[..at + 4]);
            rest = head;
            continue;
        }
        out.push_str(&rest[..at]);
        let block = &head[head.len() - after_name.len()..];
        let mut depth = 0;
        let mut end = block.len();
        for (index, c) in block.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &block[end..];
    }
    out.push_str(rest);
    out
}

/// The code with comments, string and character literals blanked out.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || (next == Some('#') && !prev_is_ident(&chars, i)))
            && !prev_is_ident(&chars, i)
        {
            // Raw string: r"…" or r#…"…"#…
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('a', '\n', '\u{…}'); a lifetime has no closing quote.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The paths a use tree names: `a::{b, c::{d, self}}` → `a::b`, `a::c::d`, `a::c`.
fn expand_use_tree(tree: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into("", tree, &mut out);
    out
}

fn expand_into(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let join = |a: &str, b: &str| if a.is_empty() { b.to_string() } else { format!("{a}::{b}") };
    let tree = tree.trim();
    match tree.find('{') {
        None => {
            // `path as alias` names `path`; `path::*` names the module.
            let path = tree.split_whitespace().next().unwrap_or_default().trim_end_matches("::*");
            match path {
                "self" | "*" | "" => out.push(prefix.to_string()),
                path => out.push(join(prefix, path)),
            }
        }
        Some(open) => {
            let base = join(prefix, tree[..open].trim().trim_end_matches("::"));
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut start = 0;
            for (index, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_into(&base, &inner[start..index], out);
                        start = index + 1;
                    }
                    _ => {}
                }
            }
            if !inner[start..].trim().is_empty() {
                expand_into(&base, &inner[start..], out);
            }
        }
    }
}

/// Every path the code names that starts at `crate`, `super` or `self`, or at a child module.
fn named_paths(code: &str, children: &BTreeSet<String>) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    // Use trees (they may be relative to the module, and span lines).
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let tail = &rest[at + 4..];
        rest = tail;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = tail.find(';') else { break };
        for path in expand_use_tree(&tail[..end]) {
            let first = path.split("::").next().unwrap_or_default();
            if matches!(first, "crate" | "super" | "self") || children.contains(first) {
                paths.insert(path);
            }
        }
    }
    // Paths written inline in the code.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"].iter().flat_map(|needle| code.match_indices(needle).map(|(i, _)| i)) {
        if start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_' || bytes[start - 1] == b':')
        {
            continue;
        }
        let end = code[start..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(code.len(), |n| start + n);
        paths.insert(code[start..end].trim_end_matches(':').to_string());
    }
    paths
}

/// The module a path refers to: the longest known module prefix of its absolute form.
fn resolve(path: &str, current: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split("::").peekable();
    match parts.peek().copied() {
        Some("crate") => {
            segments.push("crate");
            parts.next();
        }
        Some("self") => {
            segments.extend(current.split("::"));
            parts.next();
        }
        Some("super") => {
            segments.extend(current.split("::"));
            while parts.peek() == Some(&"super") {
                parts.next();
                segments.pop();
            }
        }
        _ => segments.extend(current.split("::")), // a child module
    }
    segments.extend(parts);
    (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find(|candidate| modules.contains(candidate))
}

struct Graph {
    files: BTreeMap<String, PathBuf>,
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn module_graph() -> Graph {
    let root = main_dir();
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    let files: BTreeMap<String, PathBuf> = paths.into_iter().filter_map(|p| Some((module_of(&root, &p)?, p))).collect();
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, file) in &files {
        let code = without_inline_modules(&code_only(&std::fs::read_to_string(file).unwrap()));
        let prefix = format!("{module}::");
        let children: BTreeSet<String> = modules
            .iter()
            .filter_map(|m| m.strip_prefix(&prefix).filter(|rest| !rest.contains("::")).map(str::to_string))
            .collect();
        let targets: BTreeSet<String> = named_paths(&code, &children)
            .iter()
            .filter_map(|path| resolve(path, module, &modules))
            .filter(|target| target != module)
            .collect();
        edges.insert(module.clone(), targets);
    }
    Graph { files, edges }
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in &s.graph.edges[node] {
            let next = next.as_str();
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(member) = s.stack.pop() {
                s.on_stack.remove(member);
                component.push(member.to_string());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

fn within(module: &str, layer: &str) -> bool {
    module == layer || module.starts_with(&format!("{layer}::"))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(graph.files.len() > 30, "the scan found only {} modules", graph.files.len());
    let found = cycles(&graph);
    let report = loop_report("cycle", &found, |component| {
        component
            .iter()
            .flat_map(|from| {
                graph.edges[from].iter().filter(|to| component.contains(to)).map(move |to| format!("  {from} → {to}"))
            })
            .collect()
    });
    assert!(found.is_empty(), "{report}");
}

/// Each strongly connected component as "`kind` among a, b:" and, below, the imports in it.
fn loop_report(kind: &str, found: &[Vec<String>], links: impl Fn(&[String]) -> Vec<String>) -> String {
    let reports: Vec<String> = found
        .iter()
        .map(|component| format!("{kind} among {}:\n{}", component.join(", "), links(component).join("\n")))
        .collect();
    reports.join("\n")
}

#[test]
fn layers_import_only_downwards() {
    let graph = module_graph();
    let mut violations = Vec::new();
    for (from, targets) in &graph.edges {
        for (layer, forbidden) in FORBIDDEN {
            if !within(from, layer) {
                continue;
            }
            for to in targets.iter().filter(|to| forbidden.iter().any(|f| within(to, f))) {
                violations.push(format!("{} imports {to}", graph.files[from].display()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn infrastructure_and_roots_keep_their_place() {
    let graph = module_graph();
    let mut violations = Vec::new();
    for (from, targets) in &graph.edges {
        for to in targets {
            let infrastructure_upwards = INFRASTRUCTURE.iter().any(|layer| within(from, layer))
                && ["crate::server::services", "crate::server::http", "crate::server::auth"]
                    .iter()
                    .any(|upper| within(to, upper));
            let into_a_root = ROOTS.iter().any(|root| within(to, root)) && !ROOTS.iter().any(|root| within(from, root));
            if infrastructure_upwards || into_a_root {
                violations.push(format!("{} imports {to}", graph.files[from].display()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The top-level folders (`crate::server`, `crate::pages`, …) import one another without a
/// loop: each can be read, built and replaced knowing only the ones below it.
#[test]
fn the_top_level_folders_have_no_loop() {
    let graph = module_graph();
    let top = |module: &str| module.split("::").take(2).collect::<Vec<_>>().join("::");
    let mut folders = Graph { files: BTreeMap::new(), edges: BTreeMap::new() };
    for (from, targets) in &graph.edges {
        if from == "crate" {
            continue; // lib.rs declares every folder
        }
        let edges = folders.edges.entry(top(from)).or_default();
        edges.extend(targets.iter().filter(|to| *to != "crate").map(|to| top(to)).filter(|to| *to != top(from)));
        folders.files.entry(top(from)).or_insert_with(|| graph.files[from].clone());
    }
    for targets in folders.edges.clone().values() {
        for to in targets {
            folders.edges.entry(to.clone()).or_default();
        }
    }
    let found = cycles(&folders);
    let report = loop_report("loop", &found, |component| {
        graph
            .edges
            .iter()
            .filter(|(module, _)| component.contains(&top(module)))
            .flat_map(|(module, targets)| targets.iter().map(move |to| (module, to)))
            .filter(|(module, to)| component.contains(&top(to)) && top(to) != top(module))
            .map(|(module, to)| format!("  {module} → {to}"))
            .collect()
    });
    assert!(found.is_empty(), "{report}");
}

#[test]
fn the_scanner_sees_use_trees_inline_paths_and_relative_modules() {
    assert_eq!(
        expand_use_tree("super::{audit::{self, AuditEvent}, jobs as queue}"),
        ["super::audit", "super::audit::AuditEvent", "super::jobs"]
    );
    let code = code_only("use crate::a::b; // crate::c::d\nlet s = \"crate::e\"; x = super::f::g(); let c = '\"';");
    let paths = named_paths(&code, &BTreeSet::new());
    assert_eq!(paths, ["crate::a::b", "super::f::g"].map(String::from).into());
    let code = without_inline_modules(
        "use crate::a;\n#[cfg(test)]\nmod tests { use super::*; fn f() { if x { } } }\nmod child;",
    );
    assert_eq!(named_paths(&code, &BTreeSet::new()), ["crate::a".to_string()].into());
    let modules: BTreeSet<String> = ["crate", "crate::x", "crate::x::y", "crate::x::z"].map(String::from).into();
    assert_eq!(resolve("super::z::Thing", "crate::x::y", &modules).as_deref(), Some("crate::x::z"));
    assert_eq!(resolve("y::Thing", "crate::x", &modules).as_deref(), Some("crate::x::y"));
    let graph = Graph {
        files: BTreeMap::new(),
        edges: [("a", &["b"][..]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]
            .into_iter()
            .map(|(from, to)| (from.to_string(), to.iter().map(|t| t.to_string()).collect()))
            .collect(),
    };
    assert_eq!(cycles(&graph), [["a", "b", "c"]]);
}
