//! Every file in tests/broken/ is a fleet definition with one problem. Its
//! `# expect:` lines say exactly what `fleet validate` must report, as
//! `path:line:col: severity: message`. A line `# === environments/NAME.toml ===`
//! starts the environment file loaded over the part above it. Files are read
//! as bytes: some cases are deliberately not UTF-8.

use std::path::Path;

use fleet::definition::load_bytes;
use fleet::load::DirectoryFiles;
use fleet::load::diagnostic::Severity;

#[test]
fn each_broken_definition_reports_its_problem() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let bytes = std::fs::read(case).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_string)
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            case.display()
        );

        let marker = b"# === environments/";
        let (fleet_text, overlay) = match find(&bytes, marker) {
            Some(at) => {
                let rest = &bytes[at + marker.len()..];
                let end = find(rest, b" ===\n").expect("a closing ` ===` on the environment line");
                let name = std::str::from_utf8(&rest[..end]).expect("a UTF-8 environment name");
                (
                    &bytes[..at],
                    Some((
                        name.trim_end_matches(".toml").to_string(),
                        &rest[end + b" ===\n".len()..],
                    )),
                )
            }
            None => (&bytes[..], None),
        };
        let overlay_path = overlay
            .as_ref()
            .map(|(name, _)| format!("environments/{name}.toml"));
        let files = DirectoryFiles {
            base_dir: dir.clone(),
        };
        let loaded = load_bytes(
            Path::new("fleet.toml"),
            fleet_text,
            overlay
                .as_ref()
                .map(|(_, body)| (Path::new(overlay_path.as_deref().unwrap()), *body)),
            overlay.as_ref().map(|(name, _)| name.as_str()),
            &files,
        );
        let actual: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| {
                let origin = d.origin.as_ref().expect("every diagnostic has a location");
                let (line, col) = loaded.sources.line_col(origin);
                let path = loaded.sources.file(origin.file).path.display().to_string();
                let severity = match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                format!("{path}:{line}:{col}: {severity}: {}", d.message)
            })
            .collect();
        if actual != expected {
            failures.push(format!(
                "{}:\n  expected: {expected:#?}\n  actual:   {actual:#?}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
