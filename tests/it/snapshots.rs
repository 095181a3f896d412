//! Snapshots of what users read: the rendered example fleet and `validate`'s
//! report on a broken definition. Review a changed snapshot like code
//! (`cargo insta review`).

use std::path::Path;

use fleet::definition::load;
use fleet::load::diagnostic;
use fleet::render::render;
use fleet::report;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rendered_yaml(env: Option<&str>) -> String {
    let loaded = load(&repo().join("fleet.toml"), env).unwrap();
    assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
    let mut out = Vec::new();
    report::rendered_yaml(&render(&loaded.fleet.unwrap()), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn example_fleet_renders() {
    insta::assert_snapshot!("render_example_fleet", rendered_yaml(None));
}

#[test]
fn example_fleet_renders_for_production() {
    insta::assert_snapshot!(
        "render_example_fleet_production",
        rendered_yaml(Some("production"))
    );
}

#[test]
fn validate_reports_every_problem() {
    let loaded = load(&repo().join("tests/fixtures/invalid-fleet.toml"), None).unwrap();
    let text = diagnostic::render(&loaded.diagnostics, &loaded.sources, false);
    // Paths differ between machines; the report after them must not.
    let text = text.replace(&repo().display().to_string(), "<repo>");
    insta::assert_snapshot!("validate_invalid_fleet", text);
}
