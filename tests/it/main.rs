//! The integration tests: one binary (one link, one copy of `support`),
//! one module per subject. They run against the local control plane
//! (`scripts/controlplane up`): a real kube-apiserver with etcd, kwok
//! nodes, KEDA, and nats-servers on loopback.
//!
//! Run one subject with `cargo test --test it plan_apply::`. Tests that
//! disturb what the others share (the fault tests stop the servers; one
//! removes the ServiceMonitor CRD) are `#[ignore]`d here and run alone,
//! one at a time, by scripts/test.

mod support;

mod autoscaling;
mod blocked;
mod controlplane_smoke;
mod definition_coverage_jetstream;
mod deploy_lock;
mod drift;
mod every_pod_key;
mod faults;
mod github_actions;
mod import;
mod interrupt;
mod jetstream;
mod jetstream_update_rules;
mod least_privilege;
mod load_fuzz;
mod nats_permissions;
mod no_change_proof;
mod output_for_programs;
mod patch;
mod plan_apply;
mod pod_security;
mod provenance;
mod quantity;
mod render_accepted_by_apiserver;
mod render_seed;
mod rollout;
mod secrets;
mod service_monitor;
mod snapshots;
mod status;
mod validate_corpus;
mod workflows;
