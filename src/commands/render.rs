//! `fleet render`: print the desired objects; needs no cluster.

use super::{ExitStatus, not_implemented};
use crate::cli::RenderArgs;

pub fn run(_args: &RenderArgs) -> anyhow::Result<ExitStatus> {
    not_implemented("render")
}
