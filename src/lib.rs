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
pub(crate) mod apply;
pub mod cli;
pub mod client;
pub mod commands;
pub mod credentials;
pub mod definition;
pub(crate) mod deploy;
pub(crate) mod env_vars;
pub(crate) mod import;
pub(crate) mod interrupt;
pub mod live;
pub mod load;
pub(crate) mod lock;
pub(crate) mod managed_fields;
pub mod model;
pub mod ownership;
pub mod plan;
pub(crate) mod process;
pub mod provenance;
pub mod quantity;
pub(crate) mod redact;
pub mod render;
pub mod report;
pub(crate) mod subject;
pub(crate) mod workflow_command;

#[cfg(test)]
mod layers;
