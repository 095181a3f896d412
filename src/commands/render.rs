//! `fleet render`: print the desired objects; needs no cluster.

use super::{ExitStatus, load_definition};
use crate::cli::{RenderArgs, RenderFormat};
use crate::{render, report};

pub(super) fn run(args: &RenderArgs) -> anyhow::Result<ExitStatus> {
    let Some(fleet) = load_definition(&args.definition)? else {
        return Ok(ExitStatus::Failure);
    };
    let rendered = render::render(&fleet);
    let mut stdout = std::io::stdout().lock();
    match args.format {
        RenderFormat::Yaml => report::rendered_yaml(&rendered, &mut stdout)?,
        RenderFormat::Json => report::rendered_json(&rendered, &mut stdout)?,
    }
    Ok(ExitStatus::Success)
}
