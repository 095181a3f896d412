//! fleet: deploy fleets of AI agents to Kubernetes and NATS JetStream.
//!
//! The pipeline, one module per stage:
//! `load` (files -> [`model::Fleet`]) -> `render` (desired objects and
//! JetStream configuration) -> `live` (what the servers hold, read through
//! `client`) -> `plan` (the changes) -> `apply` (made through `client`) ->
//! `report`. `deploy` is the sequence `plan` and `apply` share; `commands`
//! wires flags to it and the stages, per verb. Each module uses only those
//! before it in `src/layers.rs`, which a test checks.

pub mod access;
pub mod apply;
pub mod cli;
pub mod client;
pub mod commands;
pub mod credentials;
pub mod definition;
pub mod deploy;
pub mod env_vars;
pub mod import;
pub mod interrupt;
pub mod live;
pub mod load;
pub mod lock;
pub mod managed_fields;
pub mod model;
pub mod ownership;
pub mod plan;
pub mod process;
pub mod provenance;
pub mod quantity;
pub mod redact;
pub mod render;
pub mod report;
pub mod subject;
pub mod workflow_command;

#[cfg(test)]
mod layers;
