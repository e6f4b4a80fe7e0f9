//! The hexagon's rule of the house (DESIGN §1): `src/domain` and `src/ports`
//! never name an infrastructure crate.

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
