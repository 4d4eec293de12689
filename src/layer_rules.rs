//! The layer rules of `lib.rs`, checked on the source text: a door, a job or the pipeline
//! that names the database, or a module outside `storage` that names object_store, fails
//! `cargo test`.

use std::path::{Path, PathBuf};

/// (folder under `src/`, what no code line there may contain, why)
const RULES: &[(&str, &[&str], &str)] = &[
    ("http", &["diesel", "crate::db"], "doors go through service, the only caller of db"),
    ("jobs", &["diesel", "crate::db"], "workers claim and record through service"),
    ("amqp", &["diesel", "crate::db"], "doors go through service, the only caller of db"),
    ("pipeline", &["diesel", "crate::db", "crate::service"], "the pipeline wing knows no database"),
    (
        "domain",
        &["diesel", "actix", "tokio", "object_store", "crate::db", "crate::service", "crate::http"],
        "domain is pure",
    ),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Code lines that contain one of `words` (comments are skipped).
fn violations(root: &Path, folder: &str, words: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(&root.join(folder)) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(word) = words.iter().find(|w| code.contains(*w)) {
                found.push(format!("{}:{}: names {word}: {}", file.display(), n + 1, code.trim()));
            }
        }
    }
    found
}

#[test]
fn doors_jobs_and_the_pipeline_do_not_name_the_database() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    for (folder, words, why) in RULES {
        for v in violations(&root, folder, words) {
            all.push(format!("{v}  ({why})"));
        }
    }
    for file in rust_files(&root) {
        let in_storage = file.starts_with(root.join("storage")) || file.ends_with("layer_rules.rs");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !in_storage && !code.starts_with("//") && code.contains("object_store::") {
                all.push(format!("{}:{}: only storage names object_store types", file.display(), n + 1));
            }
        }
    }
    assert!(all.is_empty(), "layer rules broken:\n{}", all.join("\n"));
}

#[test]
fn the_checker_sees_a_violation() {
    let dir = std::env::temp_dir().join(format!("devicehub-layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("http")).unwrap_or_default();
    std::fs::write(dir.join("http/bad.rs"), "// diesel in a comment is fine\nuse crate::db::AnyConnection;\n")
        .unwrap_or_default();
    let found = violations(&dir, "http", &["diesel", "crate::db"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
}
