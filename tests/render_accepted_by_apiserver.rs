//! Every object rendered from the example fleet, in every environment, is
//! accepted by the real kube-apiserver (server-side dry-run create).

mod support;

use std::path::Path;

use fleet::load::{DirectoryFiles, load_str};
use fleet::render::render;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use support::TestEnv;

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_apiserver() {
    let env = TestEnv::new("render-accepted").await;
    support::install_service_monitor_crd(env.control_plane);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet_text = std::fs::read_to_string(root.join("fleet.toml")).unwrap();

    let mut checked = 0;
    for environment in ["local", "staging", "production"] {
        let overlay_path = root.join(format!("environments/{environment}.toml"));
        // Render into the test's namespace, so the dry run has one to check against.
        let overlay: String = std::fs::read_to_string(&overlay_path)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("namespace ="))
            .map(|line| match line {
                "[environment]" => format!("[environment]\nnamespace = \"{}\"\n", env.namespace),
                other => format!("{other}\n"),
            })
            .collect();
        let files = DirectoryFiles {
            base_dir: root.into(),
        };
        let loaded = load_str(
            &root.join("fleet.toml"),
            &fleet_text,
            Some((&overlay_path, &overlay)),
            Some(environment),
            &files,
        );
        assert_eq!(
            loaded.errors(),
            0,
            "{environment}: {:?}",
            loaded.diagnostics
        );
        let rendered = render(&loaded.fleet.unwrap());

        for object in rendered.kubernetes {
            if object.id.kind == "Namespace" {
                continue; // it exists: the test created it
            }
            let (group, version) = match object.id.api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", object.id.api_version.as_str()),
            };
            let resource =
                ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &object.id.kind));
            let api: Api<DynamicObject> =
                Api::namespaced_with(env.kube.clone(), &env.namespace, &resource);
            let dynamic: DynamicObject = serde_json::from_value(object.body.clone()).unwrap();
            api.create(
                &PostParams {
                    dry_run: true,
                    ..PostParams::default()
                },
                &dynamic,
            )
            .await
            .unwrap_or_else(|err| panic!("{environment}: {} refused: {err}", object.id));
            // Server-side apply takes it too, with fleet's field manager.
            api.patch(
                &object.id.name,
                &PatchParams::apply("fleet").dry_run(),
                &Patch::Apply(&object.body),
            )
            .await
            .unwrap_or_else(|err| panic!("{environment}: apply of {} refused: {err}", object.id));
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} objects checked");
}
