//! Collects the Rust examples of `README.md` and of `imhelper`'s doc comments
//! into `$OUT_DIR/examples.rs`: one module per example plus the `EXAMPLES`
//! table that `src/main.rs` dispatches on.

#[path = "src/extract.rs"]
mod extract;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut examples = Vec::new();

    let readme = workspace.join("README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    examples.extend(extract::markdown_examples("README.md", &read(&readme)));

    let sources = workspace.join("imhelper/src");
    println!("cargo:rerun-if-changed={}", sources.display());
    for file in rust_files(&sources) {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(workspace).unwrap().display().to_string();
        examples.extend(extract::doc_comment_examples(&relative, &read(&file)));
    }

    let mut out = String::new();
    let mut table = String::from("/// Every example.\nstatic EXAMPLES: &[Entry] = &[\n");
    for (index, example) in examples.iter().enumerate() {
        let name = format!("ex_{index}");
        out.push_str(&extract::as_module(&name, example));
        writeln!(
            table,
            "    Entry {{ name: \"{name}\", origin: \"{}\", run: || run({name}::main) }},",
            example.origin
        )
        .unwrap();
    }
    table.push_str("];\n");
    out.push_str(&table);
    let target = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("examples.rs");
    fs::write(target, out).expect("write examples.rs");
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `.rs` files under `dir`, sorted, so example names are stable.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
