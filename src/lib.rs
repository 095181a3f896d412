//! fleet: deploy fleets of AI agents to Kubernetes and NATS JetStream.
//!
//! The pipeline, one module per stage:
//! `load` (files -> [`model::Fleet`]) -> `render` (desired objects and
//! JetStream configuration). `commands` wires the stages together per verb.

pub mod access;
pub mod apply;
pub mod cli;
pub mod commands;
pub mod explain;
pub mod live;
pub mod load;
pub mod lock;
pub mod model;
pub mod ownership;
pub mod plan;
pub mod provenance;
pub mod redact;
pub mod render;
pub mod report;
pub mod retry;
