//! `fleet rbac`: the rights an identity needs to plan or apply this fleet,
//! as YAML; needs no cluster.

use super::{ExitStatus, load_definition};
use crate::access::{self, Grantee, Purpose};
use crate::cli::{GranteeArgs, RbacArgs, RbacPurpose};
use crate::{render, report};

pub(super) fn run(args: &RbacArgs) -> anyhow::Result<ExitStatus> {
    let purpose = match args.purpose {
        RbacPurpose::Plan => Purpose::Plan,
        RbacPurpose::Apply => Purpose::Apply,
        RbacPurpose::ReadOnly => Purpose::ReadOnly,
    };
    if args.nats {
        let Some(fleet) = load_definition(&args.definition)? else {
            return Ok(ExitStatus::Failure);
        };
        let rights = access::nats_rights(&fleet, purpose);
        let mut stdout = std::io::stdout().lock();
        report::nats_rights_yaml(&rights, &fleet.name, purpose, &mut stdout)?;
        return Ok(ExitStatus::Success);
    }
    let grantee = grantee(&args.grantee)?;
    let Some(fleet) = load_definition(&args.definition)? else {
        return Ok(ExitStatus::Failure);
    };
    let rendered = render::render(&fleet);
    let rights = access::rights(&rendered.kubernetes, &fleet.namespace, purpose);
    let documents = access::documents(&rights, &fleet.name, &fleet.namespace, purpose, &grantee);
    let mut stdout = std::io::stdout().lock();
    report::documents_yaml(&documents, &mut stdout)?;
    Ok(ExitStatus::Success)
}

fn grantee(args: &GranteeArgs) -> anyhow::Result<Grantee> {
    if args.user.is_none() && args.group.is_none() && args.service_account.is_none() {
        anyhow::bail!(
            "say who the rights are for: --user NAME, --group NAME or --service-account NAMESPACE/NAME (or --nats for the NATS side)"
        );
    }
    if let Some(user) = &args.user {
        return Ok(Grantee::User(user.clone()));
    }
    if let Some(group) = &args.group {
        return Ok(Grantee::Group(group.clone()));
    }
    let account = args.service_account.as_deref().unwrap_or_default();
    match account.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok(Grantee::ServiceAccount {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        _ => {
            anyhow::bail!("--service-account `{account}` is not NAMESPACE/NAME (e.g. ci/deployer)")
        }
    }
}
