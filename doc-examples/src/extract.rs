//! Finds the Rust examples in Markdown and in doc comments, and turns each
//! into a module of the `doc-examples` binary the way rustdoc turns a
//! doctest into a program (pure string work, shared by `build.rs` and the
//! unit tests).
//!
//! What counts as a Rust block follows rustdoc: in a doc comment a fence with
//! no language or with `rust`/`no_run`/`should_panic`-style attributes; in
//! Markdown only fences that name `rust`. Blocks marked `ignore`,
//! `compile_fail` or `text` are skipped. Hidden lines (`# …`) are kept, with
//! the marker removed. Code with its own `fn main` is left as it is; any other
//! code becomes the body of a `main`, and code ending in `Ok(…)`-style `(())`
//! becomes the body of a function returning `Result`, as rustdoc does.

/// One example: where it was written and its code, hidden lines included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// `path:line` of the opening fence.
    pub origin: String,
    /// The code, hidden-line markers removed.
    pub code: String,
}

/// The literal every example uses for Redis (what `scripts/run.sh` starts);
/// the runner points it at the harness's Redis through `crate::redis_url()`.
pub const RUN_SH_REDIS_URL: &str = "\"redis://127.0.0.1:6379/\"";

/// The Rust blocks of a Markdown file.
pub fn markdown_examples(path: &str, text: &str) -> Vec<Example> {
    fenced(path, text.lines().map(|l| Some(l.to_string())), false)
}

/// The Rust blocks of the doc comments (`///`, `//!`) of a Rust source file.
pub fn doc_comment_examples(path: &str, source: &str) -> Vec<Example> {
    let lines = source.lines().map(|line| {
        let trimmed = line.trim_start();
        let rest = trimmed
            .strip_prefix("///")
            .or_else(|| trimmed.strip_prefix("//!"))?;
        Some(rest.strip_prefix(' ').unwrap_or(rest).to_string())
    });
    fenced(path, lines, true)
}

/// Walks lines (`None` = not part of any doc text, which ends a block) and
/// collects the Rust fences.
fn fenced(path: &str, lines: impl Iterator<Item = Option<String>>, doc: bool) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut open: Option<(String, bool, Vec<String>)> = None;
    for (index, line) in lines.enumerate() {
        let Some(line) = line else {
            open = None;
            continue;
        };
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some((
                    format!("{path}:{}", index + 1),
                    is_rust(info, doc),
                    Vec::new(),
                ));
            }
            (Some(_), Some(_)) => {
                let (origin, rust, body) = open.take().expect("a block is open");
                if rust {
                    examples.push(Example {
                        origin,
                        code: body.join("\n"),
                    });
                }
            }
            (Some((_, _, body)), None) => body.push(unhide(&line)),
            (None, None) => {}
        }
    }
    examples
}

/// Whether a fence's info string marks Rust code that runs.
fn is_rust(info: &str, doc: bool) -> bool {
    let attrs: Vec<&str> = info
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|a| !a.is_empty())
        .collect();
    if attrs
        .iter()
        .any(|a| matches!(*a, "ignore" | "compile_fail" | "text"))
    {
        return false;
    }
    if attrs.contains(&"rust") {
        return true;
    }
    doc && attrs
        .iter()
        .all(|a| matches!(*a, "no_run" | "should_panic") || a.starts_with("edition"))
}

/// A doctest line with rustdoc's hidden-line marker removed.
fn unhide(line: &str) -> String {
    let trimmed = line.trim_start();
    if trimmed == "#" {
        String::new()
    } else if let Some(rest) = trimmed.strip_prefix("# ") {
        rest.to_string()
    } else if let Some(rest) = trimmed.strip_prefix("##") {
        format!("#{rest}")
    } else {
        line.to_string()
    }
}

/// The example as `mod <name>` exposing `pub fn main()`, with the run.sh
/// Redis URL replaced by `crate::redis_url()`.
pub fn as_module(name: &str, example: &Example) -> String {
    let code = example.code.replace(RUN_SH_REDIS_URL, "crate::redis_url()");
    let body = if code.contains("fn main(") {
        code.replacen("fn main(", "pub fn main(", 1)
    } else if code.trim_end().ends_with("(())") {
        format!(
            "pub fn main() {{\n    fn inner() -> Result<(), impl core::fmt::Debug> {{\n{code}\n    }}\n    inner().unwrap()\n}}"
        )
    } else {
        format!("pub fn main() {{\n{code}\n}}")
    };
    format!(
        "/// {origin}\n#[allow(unused, clippy::all)]\nmod {name} {{\n{body}\n}}\n",
        origin = example.origin
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_takes_only_rust_fences() {
        let text = "intro\n```sh\nls\n```\n```rust,no_run\nfn main() {}\n```\n```text\nx\n```\n```\nplain\n```\n";
        let found = markdown_examples("README.md", text);
        assert_eq!(
            found,
            vec![Example {
                origin: "README.md:5".into(),
                code: "fn main() {}".into()
            }]
        );
    }

    #[test]
    fn doc_comments_take_bare_fences_and_unhide_lines() {
        let source = "/// Doc.\n///\n/// ```no_run\n/// # fn main() {\n/// let x = 1;\n/// # }\n/// ```\n/// ```text\n/// no\n/// ```\nfn f() {}\n//! ```ignore\n//! skipped\n//! ```\n";
        let found = doc_comment_examples("lib.rs", source);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].origin, "lib.rs:3");
        assert_eq!(found[0].code, "fn main() {\nlet x = 1;\n}");
    }

    #[test]
    fn a_block_ends_where_the_doc_comment_ends() {
        let source = "/// ```\n/// let a = 1;\nfn f() {}\n/// ```\n";
        assert!(doc_comment_examples("x.rs", source).is_empty());
    }

    #[test]
    fn modules_wrap_code_as_rustdoc_does() {
        let example = |code: &str| Example {
            origin: "x".into(),
            code: code.into(),
        };
        let with_main = as_module(
            "ex_0",
            &example("fn main() { let u = \"redis://127.0.0.1:6379/\"; }"),
        );
        assert!(with_main.contains("pub fn main() { let u = crate::redis_url(); }"));
        let fallible = as_module("ex_1", &example("let x = 1;\nOk::<(), String>(())"));
        assert!(fallible.contains("fn inner() -> Result<(), impl core::fmt::Debug>"));
        let plain = as_module("ex_2", &example("let x = 1;"));
        assert!(plain.contains("pub fn main() {\nlet x = 1;\n}"));
    }
}
