//! The direction of the pipeline, checked: each top-level module may use
//! only the modules before it in [`ORDER`], so no stage reaches forward
//! (live into plan, load into render) and no two modules need each other.
//! A new module takes its place in the list; a `use` that breaks the order
//! fails `cargo test` with the file that has it.

use std::path::{Path, PathBuf};

/// Every top-level module, each after everything it uses.
const ORDER: &[&str] = &[
    // Leaves: no fleet module below them but each other.
    "env_vars",
    "redact",
    "quantity",
    "subject",
    "process",
    "workflow_command",
    "managed_fields",
    "interrupt",
    "ownership",
    "credentials",
    // The pure pipeline: files -> model -> desired state.
    "model",
    "load",
    "render",
    "definition",
    "provenance",
    // The servers: one client module, then what reads through it.
    "client",
    "live",
    "lock",
    // Deciding, then doing, then telling.
    "plan",
    "access",
    "apply",
    "report",
    "import",
    "deploy",
    // The command line, outermost.
    "cli",
    "commands",
];

/// The source files of `module` (a file, or a directory of them).
fn files_of(src: &Path, module: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{module}.rs"));
    let mut files = Vec::new();
    if file.exists() {
        files.push(file);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The fleet modules a file's code names (`crate::x`, `use crate::{x, ..}`),
/// leaving out comments and its tests.
fn modules_named(text: &str) -> Vec<&'static str> {
    let code = code_outside_tests(text);
    let mut named = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let words = match rest.strip_prefix('{') {
            Some(group) => group_heads(group),
            None => vec![first_word(rest)],
        };
        named.extend(
            words
                .into_iter()
                .filter_map(|word| ORDER.iter().find(|m| **m == word).copied()),
        );
    }
    named
}

/// `text` less comment lines and each item under `#[cfg(test)]` (a
/// `mod testing;` line, or a `mod tests { .. }` block to its closing brace):
/// tests may use anything, and code after them is still checked.
fn code_outside_tests(text: &str) -> String {
    let mut code = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        if line.trim() != "#[cfg(test)]" {
            code.push(line);
            continue;
        }
        // Skip the item: attributes, then lines until it ends with `;` or
        // its braces close.
        let mut depth = 0i32;
        for line in lines.by_ref() {
            let opened = line.contains('{');
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            let attribute = line.trim_start().starts_with("#[");
            if !attribute
                && depth <= 0
                && (opened || line.contains('}') || line.trim_end().ends_with(';'))
            {
                break;
            }
        }
    }
    code.join("\n")
}

/// The identifier `text` starts with.
fn first_word(text: &str) -> &str {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
}

/// The first segment of each path in a use group (`a::{b, c}, d}` gives
/// `a` and `d`), up to the brace that closes it.
fn group_heads(group: &str) -> Vec<&str> {
    let mut heads = vec![first_word(group.trim_start())];
    let mut depth = 0;
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(first_word(group[at + 1..].trim_start())),
            _ => {}
        }
    }
    heads
}

#[test]
fn every_module_uses_only_those_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (at, module) in ORDER.iter().enumerate() {
        let files = files_of(&src, module);
        assert!(!files.is_empty(), "src/{module}: no such module");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for named in modules_named(&text) {
                let named_at = ORDER.iter().position(|m| *m == named).unwrap();
                if named_at > at {
                    wrong.push(format!(
                        "{} uses crate::{named}, which comes after {module} (src/layers.rs ORDER)",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_module_has_its_place() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        let declared = line
            .trim()
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(module) = declared.filter(|m| *m != "layers") {
            assert!(
                ORDER.contains(&module),
                "src/layers.rs ORDER lacks `{module}`"
            );
        }
    }
}

#[test]
fn a_forward_use_is_found() {
    let text = "//! crate::plan in a comment\nuse crate::{model, plan::Plan};\nfn f() { crate::apply::x(); }\n#[cfg(test)]\nuse crate::deploy;";
    assert_eq!(modules_named(text), ["model", "plan", "apply"]);
    let nested = "use crate::{\n    live::{self, LiveState},\n    report,\n};";
    assert_eq!(modules_named(nested), ["live", "report"]);
    let after_tests = "#[cfg(test)]\nmod testing;\nuse crate::live;\n#[cfg(test)]\n#[allow(dead_code)]\nfn f() {\n    crate::plan::x();\n}\nuse crate::apply;\n#[cfg(test)]\nmod tests {\n    use crate::deploy;\n    fn g() {}\n}\nfn h() { crate::report::y(); }";
    assert_eq!(modules_named(after_tests), ["live", "apply", "report"]);
}
