//! `fleet schema`: the JSON Schema of the definition files, for editors.

use std::io::Write;

use super::ExitStatus;
use crate::load::schema::schema;
use crate::report::io_error;

pub(super) fn run() -> anyhow::Result<ExitStatus> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &schema()).map_err(io_error)?;
    writeln!(stdout)?;
    Ok(ExitStatus::Success)
}
