//! The layers of README's "Layers" table, kept true: every `crate::…` path in
//! the code (comments aside) of a module names a module of a lower layer,
//! or its own. `node` and `store` in particular never use each other.

use std::fs;
use std::path::{Path, PathBuf};

/// `(module, layer)`: a module may use only modules of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("ws", 0),
    ("http", 0),
    ("names", 0),
    ("metrics", 0),
    ("throttle", 0),
    ("config", 1),
    ("bus", 2),
    ("node", 3),
    ("store", 3),
    ("admin", 3),
    ("upgrade", 4),
    ("server", 5),
];

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .unwrap_or_else(|| panic!("module `{module}` is missing from LAYERS (and README's table)"))
        .1
}

/// The `.rs` files of module `name` (`src/name.rs` or `src/name/**`).
fn files(src: &Path, name: &str) -> Vec<PathBuf> {
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        return vec![single];
    }
    let mut found = Vec::new();
    let mut dirs = vec![src.join(name)];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The modules named by `crate::module` outside comments.
fn used_modules(source: &str) -> Vec<String> {
    let mut used = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() {
                used.push(module);
            }
        }
    }
    used
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut breaches = Vec::new();
    for &(module, own) in LAYERS {
        for file in files(&src, module) {
            let source = fs::read_to_string(&file).unwrap();
            for used in used_modules(&source) {
                if used != module && layer(&used) >= own {
                    breaches.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "layer breaches:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn every_module_of_lib_rs_has_a_layer() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(module) = line
            .strip_prefix("pub mod ")
            .and_then(|m| m.strip_suffix(';'))
        {
            layer(module);
        }
    }
}
