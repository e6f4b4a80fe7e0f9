//! The hexagon's rules of the house (DESIGN §1): `src/domain` and
//! `src/ports` never name an infrastructure crate, and `src/adapters`
//! never reaches into `src/app` (the application wires adapters, not the
//! reverse; an adapter's settings are its own config type).

use std::{fs, path::Path};

const FORBIDDEN: [&str; 6] = [
    "lapin",
    "fred",
    "diesel",
    "actix",
    "lettre",
    "opentelemetry",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Crate paths used in `text`: every identifier directly followed by `::`,
/// plus the first segment of every `use`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let bytes = code.as_bytes();
        let mut start = None;
        for (i, &b) in bytes.iter().enumerate() {
            let ident = b.is_ascii_alphanumeric() || b == b'_';
            match (ident, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if code[i..].starts_with("::") || code[..s].trim_end().ends_with("use") {
                        found.push(code[s..i].to_owned());
                    }
                    start = None;
                }
                _ => {}
            }
        }
    }
    found
}

#[test]
fn domain_and_ports_name_no_infrastructure_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root.join("domain"), &mut files);
    rust_files(&root.join("ports"), &mut files);
    assert!(files.len() > 10, "the layout changed: found only {files:?}");
    let mut offenders = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable file");
        for path in crate_paths(&text) {
            if FORBIDDEN.iter().any(|f| path.starts_with(f)) {
                offenders.push(format!("{}: {path}", file.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "infrastructure crates named in the core: {offenders:#?}"
    );
}

/// Uses of the application module in `text`'s code (comments aside):
/// `crate::app…`, or an `app::…` item of a nested `use crate::{…}` tree.
fn app_uses(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default().trim())
        .filter(|code| code.contains("crate::app") || code.starts_with("app::"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn adapters_do_not_depend_on_the_application() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root.join("adapters"), &mut files);
    assert!(files.len() > 10, "the layout changed: found only {files:?}");
    let offenders: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(file).expect("readable file");
            app_uses(&text)
                .into_iter()
                .map(move |code| format!("{}: {code}", file.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "adapters name the application: {offenders:#?}"
    );
}

#[test]
fn the_app_scanner_finds_nested_and_full_paths() {
    let text = "use crate::{\n    app::config::Settings,\n};\nuse crate::app::wiring;\n\
                //! wired in `crate::app::wiring`\nlet apps = happy::new();\n";
    assert_eq!(
        app_uses(text),
        ["app::config::Settings,", "use crate::app::wiring;"]
    );
}

#[test]
fn the_scanner_finds_crate_paths() {
    let paths =
        crate_paths("use lapin::Channel;\nlet x = fred::prelude::Client::new(); // diesel::x\n");
    assert!(paths.contains(&"lapin".to_owned()));
    assert!(paths.contains(&"fred".to_owned()));
    assert!(
        !paths.contains(&"diesel".to_owned()),
        "comments are not code"
    );
}

/// Files the issue-16 size rule exempts: generated code.
const GENERATED: [&str; 1] = ["src/adapters/postgres/schema.rs"];

#[test]
fn no_source_file_is_longer_than_400_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|file| {
            let relative = file.strip_prefix(root).expect("under the crate root");
            !GENERATED.iter().any(|g| relative == Path::new(g))
        })
        .filter_map(|file| {
            let lines = fs::read_to_string(file)
                .expect("readable file")
                .lines()
                .count();
            (lines > 400).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these files (400 lines at most): {long:#?}"
    );
}
