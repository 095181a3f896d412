//! `fleet show`: a plan saved by `fleet plan --out`, printed in any format,
//! as `terraform show` does. Reads only the file: no cluster, no NATS.

use super::ExitStatus;
use crate::cli::ShowArgs;
use crate::deploy;

pub(super) fn run(args: &ShowArgs) -> anyhow::Result<ExitStatus> {
    let plan = deploy::read_saved_plan(&args.plan_file)?;
    let place = args.plan_file.display().to_string();
    super::plan::print(&plan, args.format, args.max_bytes, Some(&place))?;
    Ok(ExitStatus::Success)
}
