//! The ServiceMonitor needs the Prometheus operator's CRD: without it the plan
//! says so and the rest of the fleet is planned and applied; once the CRD is
//! installed (the Prometheus operator's real CRD, of the version
//! `scripts/controlplane` pins) the next plan creates the ServiceMonitor, and
//! the cluster keeps every field fleet rendered.

use std::time::Duration;

use crate::support::{
    FleetDir, TestEnv, control_plane, eventually, install_service_monitor_crd, pruned_fields,
    remove_service_monitor_crd,
};

#[tokio::test]
#[ignore = "removes the ServiceMonitor CRD that every other test's fleet uses: run alone, as scripts/test does"]
async fn service_monitor_waits_for_its_crd() {
    let env = TestEnv::new("service-monitor").await;
    remove_service_monitor_crd(control_plane());
    let fleet = FleetDir::example(&format!("{}-f", env.namespace));

    let plan = fleet.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("Note: ServiceMonitor (monitoring.coreos.com/v1) is not installed in the cluster: its objects are skipped"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("+ ServiceMonitor"), "{}", plan.stdout);
    let applied = fleet.run(&["apply", "--auto-approve", "--timeout", "90s"]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let again = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    install_service_monitor_crd(control_plane());
    let monitor = format!("  + ServiceMonitor {}/agent-metrics", fleet.namespace);
    // Discovery serves a new group a moment after the CRD is established.
    eventually(
        "the plan to create the ServiceMonitor",
        Duration::from_secs(30),
        || async { fleet.run(&["plan"]).stdout.contains(&monitor).then_some(()) },
    )
    .await;
    let applied = fleet.run(&["apply", "--auto-approve", "--timeout", "90s"]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    assert!(
        applied.stdout.contains(&format!(
            "ServiceMonitor {}/agent-metrics: created",
            fleet.namespace
        )),
        "{}",
        applied.stdout
    );
    let last = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(last.code, 0, "{}{}", last.stdout, last.stderr);

    // The real CRD's schema is structural: a field it does not know would
    // have been pruned without a word. The stored object has all of fleet's.
    let rendered = fleet.run(&["render", "--format", "json"]);
    rendered.assert_ok("fleet render");
    let rendered: serde_json::Value = serde_json::from_str(&rendered.stdout).unwrap();
    let rendered = rendered["kubernetes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "ServiceMonitor")
        .expect("fleet renders a ServiceMonitor")
        .clone();
    let live = control_plane()
        .kubectl()
        .args([
            "get",
            "servicemonitors.monitoring.coreos.com",
            "agent-metrics",
            "-n",
            &fleet.namespace,
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let live: serde_json::Value = serde_json::from_slice(&live.stdout).unwrap();
    let pruned = pruned_fields(&rendered, &live);
    assert!(
        pruned.is_empty(),
        "the API server pruned {pruned:?} from the ServiceMonitor:\nrendered {rendered:#}\nstored {live:#}"
    );
    assert_eq!(
        live["spec"], rendered["spec"],
        "the stored spec is the rendered one"
    );
}
