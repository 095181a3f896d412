//! fleet's reading of a Kubernetes quantity against the API server's own.
//! Random quantities in every notation (suffixes, exponents, fractions,
//! signs) go to the server as a ResourceQuota's limits in a dry-run create,
//! which answers with each stored in its canonical form. What fleet takes
//! as a request or limit, the server must store exactly as written (it
//! rounds a ResourceList up to a thousandth and clamps binary suffixes at
//! i64::MAX: fleet refuses those); and fleet must call two quantities
//! equal exactly when the server stores them alike.
//! `FLEET_QUANTITY_SEED` replays a run.

use std::collections::BTreeMap;

use fleet::quantity::{Amount, NotKept, resource_list_value};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::support::{Random, TestEnv};

/// The ResourceQuota limits that take fractions (the others are counts).
const KEYS: [&str; 10] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "requests.storage",
    "ephemeral-storage",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
];

const SUFFIXES: [&str; 26] = [
    "", "", "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    "e0", "e3", "e-3", "E6", "e-9", "e12", "E-2", "e1",
];

/// A quantity as someone might write one: few distinct digits, so that the
/// same value spelt two ways comes up, and now and then a sign, a bare
/// point or a stray letter.
fn random_quantity(random: &mut Random) -> String {
    let digits = |random: &mut Random, most: u64| -> String {
        (0..random.below(most + 1))
            .map(|_| *random.pick(&['0', '1', '2', '5']))
            .collect()
    };
    let sign = *random.pick(&["", "", "", "", "+"]);
    let whole = digits(random, 4);
    let fraction = match random.below(3) {
        0 => String::new(),
        _ => format!(".{}", digits(random, 3)),
    };
    let suffix = *random.pick(&SUFFIXES);
    let stray = if random.below(25) == 0 { "x" } else { "" };
    format!("{sign}{whole}{fraction}{suffix}{stray}")
}

/// The server's answer to a quota of `values`: each stored value by key, or
/// the refusal.
async fn stored(
    quotas: &Api<ResourceQuota>,
    values: &[(&str, &str)],
) -> Result<BTreeMap<String, String>, String> {
    let hard: serde_json::Map<String, Value> = values
        .iter()
        .map(|(key, value)| (key.to_string(), json!(value)))
        .collect();
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "generateName": "q-" },
        "spec": { "hard": hard },
    }))
    .unwrap();
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match quotas.create(&params, &quota).await {
        Ok(created) => Ok(created
            .spec
            .and_then(|spec| spec.hard)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, quantity)| (key, quantity.0))
            .collect()),
        // 400: not a quantity at all; 422: a quantity the field refuses.
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 422) => Err(status.message),
        Err(err) => panic!("dry-run create of a ResourceQuota: {err}"),
    }
}

/// Whether the server takes `request` as a pod's cpu request under the
/// limit `limit` (a dry run: nothing is made).
async fn within_limit(pods: &Api<Pod>, request: &str, limit: &str) -> bool {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "generateName": "quantity-" },
        "spec": { "containers": [{ "name": "c", "image": "example.com/c:1",
            "resources": { "requests": { "cpu": request }, "limits": { "cpu": limit } } }] },
    }))
    .unwrap();
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match pods.create(&params, &pod).await {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 422 => false,
        Err(err) => panic!("dry-run create of a pod: {err}"),
    }
}

#[tokio::test]
async fn fleet_reads_every_quantity_as_the_api_server_stores_it() {
    let env = TestEnv::new("quantity").await;
    let quotas: Api<ResourceQuota> = env.api();
    let (mut random, seed) = Random::from_env("FLEET_QUANTITY_SEED");
    eprintln!("FLEET_QUANTITY_SEED={seed}");

    // (written, what the server stored, or None when it refused it)
    let mut read: Vec<(String, Option<String>)> = Vec::new();
    for _ in 0..40 {
        let written: Vec<String> = KEYS.iter().map(|_| random_quantity(&mut random)).collect();
        let values: Vec<(&str, &str)> = KEYS
            .iter()
            .copied()
            .zip(written.iter().map(String::as_str))
            .collect();
        match stored(&quotas, &values).await {
            Ok(stored) => {
                for (key, text) in values {
                    read.push((text.to_string(), Some(stored[key].clone())));
                }
            }
            // One at a time, to tell which the server refused.
            Err(_) => {
                for (key, text) in values {
                    let alone = stored(&quotas, &[(key, text)]).await.ok();
                    read.push((text.to_string(), alone.map(|stored| stored[key].clone())));
                }
            }
        }
    }

    // What fleet accepts, the server stores exactly as written; what fleet
    // refuses, the server refuses or stores otherwise (rounded, clamped, or
    // a text without a digit read as 0). fleet also refuses values above
    // i64::MAX the server would keep: no node or quota comes near them.
    let mut wrong = Vec::new();
    for (written, stored) in &read {
        let fleet = resource_list_value(written);
        let as_written = |stored: &str| Amount::parse(stored).ok() == Amount::parse(written).ok();
        match (stored, fleet) {
            (None, Err(_)) => {}
            (None, Ok(_)) => wrong.push(format!(
                "{written:?}: the server refuses it, fleet takes it"
            )),
            (Some(stored), Ok(amount)) if Amount::parse(stored) != Ok(amount) => wrong.push(
                format!("{written:?}: fleet takes it as {amount:?}, the server stores {stored:?}"),
            ),
            (Some(_), Ok(_)) => {}
            (Some(_), Err(NotKept::TooLarge)) => {}
            (Some(stored), Err(err)) if as_written(stored) => wrong.push(format!(
                "{written:?}: the server stores it as written ({stored:?}), fleet refuses it: {err}"
            )),
            (Some(_), Err(_)) => {}
        }
    }
    assert!(wrong.is_empty(), "seed {seed}:\n{}", wrong.join("\n"));

    // Equal exactly when the server's own comparison says so: a pod's cpu
    // request may not exceed its limit, so `a` and `b` are equal to the
    // server when each may be the other's limit. Every pair fleet finds
    // equal but written otherwise, and as many others, picked at random.
    let accepted: Vec<&str> = read
        .iter()
        .filter(|(written, stored)| stored.is_some() && resource_list_value(written).is_ok())
        .map(|(written, _)| written.as_str())
        .collect();
    let mut pairs = Vec::new();
    for (i, a) in accepted.iter().enumerate() {
        for b in &accepted[i + 1..] {
            if a != b && Amount::parse(a) == Amount::parse(b) {
                pairs.push((*a, *b));
            }
        }
    }
    let alike = pairs.len();
    for _ in 0..alike.max(20) {
        pairs.push((*random.pick(&accepted), *random.pick(&accepted)));
    }
    let pods: Api<Pod> = env.api();
    for (a, b) in pairs {
        let fleet_equal = Amount::parse(a) == Amount::parse(b);
        let server_equal = within_limit(&pods, a, b).await && within_limit(&pods, b, a).await;
        assert_eq!(fleet_equal, server_equal, "seed {seed}: {a:?} and {b:?}");
    }
    let refused = read.len() - accepted.len();
    eprintln!(
        "{} quantities: fleet takes {}, refuses {refused}; {alike} pairs written differently are equal",
        read.len(),
        accepted.len()
    );
    assert!(refused > 0 && alike > 0, "the sample should hold both");
}
