//! access: the Kubernetes rights fleet's own identity (a CI job's) needs for
//! one fleet, derived from what fleet renders and what each verb does with
//! it. Pure: the rendered objects in, RBAC rules and the Role, ClusterRole
//! and bindings that grant them out; `fleet rbac` prints them.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::live::kube::{Found, MANAGED_KINDS};
use crate::render::DesiredObject;

/// What the identity is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `fleet plan` without dry runs: reads only, and the plan compares
    /// client-side, at lower fidelity.
    ReadOnly,
    /// `fleet plan` with server-side dry runs.
    Plan,
    /// `fleet apply`, rollouts included.
    Apply,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ReadOnly => "read-only",
            Purpose::Plan => "plan",
            Purpose::Apply => "apply",
        }
    }
}

/// The rights, by where they are granted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rights {
    /// In the fleet's namespace (a Role).
    pub namespaced: Vec<PolicyRule>,
    /// Cluster-scoped objects: only the fleet's Namespace, when fleet
    /// manages it (a ClusterRole).
    pub cluster: Vec<PolicyRule>,
    /// The agents' own rules, which apply must hold to grant them.
    pub granted: Vec<PolicyRule>,
}

/// Verbs in the order kubectl and the docs list them.
const VERB_ORDER: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// One right before rules are merged: a resource, maybe by name, and a verb.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Right {
    group: &'static str,
    resource: &'static str,
    names: Vec<String>,
    verb: &'static str,
}

/// The rights `purpose` needs for a fleet rendered as `desired` into
/// `namespace`.
pub fn rights(desired: &[DesiredObject], namespace: &str, purpose: Purpose) -> Rights {
    let mut namespaced: Vec<Right> = Vec::new();
    let mut cluster: Vec<Right> = Vec::new();
    for kind in MANAGED_KINDS {
        let rendered: Vec<String> = desired
            .iter()
            .filter(|o| o.id.api_version == kind.api_version && o.id.kind == kind.kind)
            .map(|o| o.id.name.clone())
            .collect();
        let right = |names: &[String], verb| Right {
            group: kind.group(),
            resource: kind.plural,
            names: names.to_vec(),
            verb,
        };
        match kind.found {
            Found::Listed => {
                // Listed by label to find what the definition dropped; each
                // rendered object not found so is read by name.
                let mut verbs = vec!["list"];
                let writes = match purpose {
                    Purpose::ReadOnly => &[][..],
                    // A dry run is authorised as the write itself.
                    Purpose::Plan => &["patch"][..],
                    // Server-side apply creates with a patch, which is
                    // authorised as create.
                    Purpose::Apply => &["patch", "create"][..],
                };
                if !rendered.is_empty() {
                    verbs.push("get");
                    verbs.extend(writes);
                }
                if purpose == Purpose::Apply {
                    // Leftovers of any listed kind, and replacements.
                    verbs.push("delete");
                    if kind.kind == "Deployment" && !rendered.is_empty() {
                        verbs.push("watch");
                    }
                }
                namespaced.extend(verbs.into_iter().map(|v| right(&[], v)));
            }
            Found::ByName if rendered.is_empty() => {
                // The fleet's namespace, which fleet does not manage, is
                // still read to tell a missing one. A Role may grant `get`
                // on its own namespace: the API server authorises a request
                // for namespace N as one in namespace N.
                if kind.kind == "Namespace" {
                    namespaced.push(right(&[namespace.to_string()], "get"));
                }
            }
            Found::ByName => {
                let verbs: &[&str] = match purpose {
                    Purpose::ReadOnly => &["get"],
                    Purpose::Plan => &["get", "patch"],
                    // Named creates are possible here: an apply patch
                    // names the object it creates.
                    Purpose::Apply => &["get", "patch", "create"],
                };
                let target = if kind.cluster_scoped {
                    &mut cluster
                } else {
                    &mut namespaced
                };
                target.extend(verbs.iter().map(|v| right(&rendered, v)));
            }
        }
    }
    let deploys = desired.iter().any(|o| o.id.kind == "Deployment");
    if purpose == Purpose::Apply && deploys {
        // Waiting for rollouts: one watch each on Deployments (above),
        // their ReplicaSets and pods (src/apply/rollout.rs).
        for resource in ["replicasets", "pods"] {
            let group = if resource == "pods" { "" } else { "apps" };
            for verb in ["list", "watch"] {
                namespaced.push(Right {
                    group,
                    resource,
                    names: Vec::new(),
                    verb,
                });
            }
        }
    }
    // The deploy lock, a Lease named like the ApplySet parent (see
    // src/lock.rs): plan reads who holds it; apply (and `fleet unlock`)
    // takes, renews and empties it. A create cannot be limited by name.
    if let Some(parent) = desired.iter().find(|o| o.is_applyset_parent()) {
        let lease = |names: &[String], verb| Right {
            group: "coordination.k8s.io",
            resource: "leases",
            names: names.to_vec(),
            verb,
        };
        let by_name = std::slice::from_ref(&parent.id.name);
        namespaced.push(lease(by_name, "get"));
        if purpose == Purpose::Apply {
            namespaced.push(lease(by_name, "update"));
            namespaced.push(lease(&[], "create"));
        }
    }
    let mut granted = Vec::new();
    if purpose == Purpose::Apply {
        for role in desired.iter().filter(|o| o.id.kind == "Role") {
            for rule in role.body["rules"].as_array().into_iter().flatten() {
                if let Ok(rule) = serde_json::from_value::<PolicyRule>(rule.clone())
                    && !granted.contains(&rule)
                {
                    granted.push(rule);
                }
            }
        }
    }
    Rights {
        namespaced: merge(namespaced),
        cluster: merge(cluster),
        granted,
    }
}

/// Rules as people write them: one per group, resource names and set of
/// verbs, with every resource that shares them, in the order of the kinds.
fn merge(rights: Vec<Right>) -> Vec<PolicyRule> {
    // Verbs per (group, resource, names), keeping first-seen order.
    let mut resources: Vec<(&str, &str, Vec<String>, BTreeSet<usize>)> = Vec::new();
    for right in rights {
        let verb = VERB_ORDER
            .iter()
            .position(|v| *v == right.verb)
            .expect("a known verb");
        match resources
            .iter_mut()
            .find(|(g, r, n, _)| *g == right.group && *r == right.resource && *n == right.names)
        {
            Some((_, _, _, verbs)) => {
                verbs.insert(verb);
            }
            None => resources.push((
                right.group,
                right.resource,
                right.names,
                BTreeSet::from([verb]),
            )),
        }
    }
    let mut rules: Vec<PolicyRule> = Vec::new();
    for (group, resource, names, verbs) in resources {
        let verbs: Vec<String> = verbs.iter().map(|v| VERB_ORDER[*v].to_string()).collect();
        let names = (!names.is_empty()).then_some(names);
        let same = rules.iter_mut().find(|rule| {
            rule.api_groups.as_deref() == Some(&[group.to_string()][..])
                && rule.verbs == verbs
                && rule.resource_names == names
        });
        match same {
            Some(rule) => rule
                .resources
                .get_or_insert_with(Vec::new)
                .push(resource.to_string()),
            None => rules.push(PolicyRule {
                api_groups: Some(vec![group.to_string()]),
                resources: Some(vec![resource.to_string()]),
                resource_names: names,
                verbs,
                non_resource_urls: None,
            }),
        }
    }
    rules
}

/// Who the rights are granted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    User(String),
    Group(String),
    ServiceAccount { namespace: String, name: String },
}

impl Grantee {
    fn subject(&self) -> Subject {
        let rbac = Some("rbac.authorization.k8s.io".to_string());
        match self {
            Grantee::User(name) => Subject {
                kind: "User".into(),
                name: name.clone(),
                api_group: rbac,
                namespace: None,
            },
            Grantee::Group(name) => Subject {
                kind: "Group".into(),
                name: name.clone(),
                api_group: rbac,
                namespace: None,
            },
            Grantee::ServiceAccount { namespace, name } => Subject {
                kind: "ServiceAccount".into(),
                name: name.clone(),
                api_group: None,
                namespace: Some(namespace.clone()),
            },
        }
    }
}

/// One YAML document of `fleet rbac`, with the comment that explains it.
#[derive(Debug, Clone)]
pub struct Document {
    pub comment: String,
    pub body: Value,
}

/// The Role, RoleBinding and, where needed, ClusterRole and
/// ClusterRoleBinding that grant `rights` to `grantee`.
pub fn documents(
    rights: &Rights,
    fleet: &str,
    namespace: &str,
    purpose: Purpose,
    grantee: &Grantee,
) -> Vec<Document> {
    let name = format!("fleet-{fleet}-{}", purpose.as_str());
    let meta = |name: &str, namespace: Option<&str>| ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..ObjectMeta::default()
    };
    let role_ref = |kind: &str, name: &str| RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
    };
    let mut rules = rights.namespaced.clone();
    rules.extend(rights.granted.iter().cloned());
    let mut documents = vec![
        Document {
            comment: role_comment(rights, fleet, namespace, purpose),
            body: typed(&Role {
                metadata: meta(&name, Some(namespace)),
                rules: Some(rules),
            }),
        },
        Document {
            comment: format!("Grants the Role above to {}.", describe(grantee)),
            body: typed(&RoleBinding {
                metadata: meta(&name, Some(namespace)),
                role_ref: role_ref("Role", &name),
                subjects: Some(vec![grantee.subject()]),
            }),
        },
    ];
    if !rights.cluster.is_empty() {
        // ClusterRole names are cluster-wide: the namespace keeps two
        // environments of one fleet apart.
        let cluster_name = format!("fleet-{fleet}-{namespace}-{}", purpose.as_str());
        documents.push(Document {
            comment: cluster_comment(namespace, purpose),
            body: typed(&ClusterRole {
                metadata: meta(&cluster_name, None),
                rules: Some(rights.cluster.clone()),
                aggregation_rule: None,
            }),
        });
        documents.push(Document {
            comment: format!("Grants the ClusterRole above to {}.", describe(grantee)),
            body: typed(&ClusterRoleBinding {
                metadata: meta(&cluster_name, None),
                role_ref: role_ref("ClusterRole", &cluster_name),
                subjects: Some(vec![grantee.subject()]),
            }),
        });
    }
    documents
}

fn typed<K: k8s_openapi::Resource + serde::Serialize>(object: &K) -> Value {
    let mut body = serde_json::to_value(object).expect("k8s-openapi objects serialise");
    body["apiVersion"] = Value::from(K::API_VERSION);
    body["kind"] = Value::from(K::KIND);
    body
}

fn describe(grantee: &Grantee) -> String {
    match grantee {
        Grantee::User(name) => format!("user `{name}`"),
        Grantee::Group(name) => format!("group `{name}`"),
        Grantee::ServiceAccount { namespace, name } => {
            format!("service account `{name}` of namespace `{namespace}`")
        }
    }
}

fn role_comment(rights: &Rights, fleet: &str, namespace: &str, purpose: Purpose) -> String {
    let verb = match purpose {
        Purpose::ReadOnly => "`fleet plan` (read-only, so compared client-side)",
        Purpose::Plan => "`fleet plan`",
        Purpose::Apply => "`fleet plan` and `fleet apply`",
    };
    let mut lines = vec![
        format!("What {verb} of fleet `{fleet}` needs in namespace `{namespace}`,"),
        "derived from the objects it renders (`fleet rbac` prints this again when they change):"
            .into(),
        "- list: each kind fleet manages is listed by fleet's ownership label, so objects the"
            .into(),
        "  definition dropped are found; get: each rendered object not found so is read by name."
            .into(),
        "- The ApplySet parent Secret and the namespace are only read by name: a LIST of secrets"
            .into(),
        "  would return every secret's value.".into(),
    ];
    match purpose {
        Purpose::ReadOnly => lines.extend([
            "- No write verb: plan cannot dry-run, compares the fields fleet sets with the live".to_string(),
            "  objects and says in a note that the plan is of lower fidelity (no server defaults,".into(),
            "  conflicts, immutable fields or validation).".into(),
        ]),
        Purpose::Plan => lines.extend([
            "- patch: each object is dry-run with server-side apply. Kubernetes authorises a dry".to_string(),
            "  run as the write itself, so this identity could also change the objects; an identity".into(),
            "  that must not write takes `fleet rbac --for read-only` (a lower-fidelity plan).".into(),
            "- A dry run of an object that does not exist yet needs create, and of a Role whose".into(),
            "  rules change, the rules themselves; without them, plan shows those objects compared".into(),
            "  client-side and says so in a note.".into(),
        ]),
        Purpose::Apply => lines.extend([
            "- patch, create: server-side apply (a patch that creates what does not exist yet).".to_string(),
            "- delete: objects fleet owns that the definition dropped, and replacements.".into(),
            "- watch on deployments, list and watch on replicasets and pods: waiting for".into(),
            "  rollouts (`--no-wait` needs none of them).".into(),
        ]),
    }
    if !rights.granted.is_empty() {
        lines.extend([
            "- Last, the agents' own rules: Kubernetes lets an identity grant in a Role only the"
                .to_string(),
            "  rights it holds itself (RBAC escalation prevention), so fleet must hold every right"
                .into(),
            "  the agents' Roles give. (The alternative, `escalate` and `bind` on roles, would let"
                .into(),
            "  it grant anything in the namespace.)".into(),
        ]);
    }
    lines.push(
        "Discovery needs no rule: every authenticated user may read it. Nor do CRDs: fleet only"
            .into(),
    );
    lines.push("asks discovery whether ServiceMonitor is served.".into());
    lines.join("\n")
}

fn cluster_comment(namespace: &str, purpose: Purpose) -> String {
    let mut lines = vec![
        format!(
            "fleet manages the namespace `{namespace}` ([fleet] manage_namespace = true): it reads{}",
            match purpose {
                Purpose::ReadOnly => " it by name.",
                Purpose::Plan => " it by name and dry-runs it.",
                Purpose::Apply => ", creates and labels it, by name.",
            }
        ),
        "The Role above can only be bound once the namespace exists. For an identity confined"
            .into(),
        "to the namespace, set `manage_namespace = false` under [fleet] and have an".into(),
        "administrator create it: fleet then needs no ClusterRole.".into(),
    ];
    if purpose == Purpose::ReadOnly {
        lines.truncate(1);
    }
    lines.join("\n")
}

/// The NATS permissions of the user that runs fleet for `purpose` (the
/// deploy job's, not the agents'): the JetStream API calls fleet makes, for
/// this fleet's streams and consumers only, and its reply inbox. Reading
/// lists every stream (to find subjects another stream holds) and the
/// account's limits; writing creates, updates and deletes only the
/// fleet's own.
pub fn nats_rights(
    fleet: &crate::model::Fleet,
    purpose: Purpose,
) -> crate::credentials::Permissions {
    let api = |call: String| format!("$JS.API.{call}");
    let mut publish = vec![api("INFO".into()), api("STREAM.LIST".into())];
    let streams: Vec<&str> = fleet.streams.iter().map(|s| s.name.as_str()).collect();
    for stream in &streams {
        publish.push(api(format!("CONSUMER.LIST.{stream}")));
        publish.push(api(format!("CONSUMER.INFO.{stream}.*")));
    }
    if purpose == Purpose::Apply {
        for stream in &streams {
            for call in ["STREAM.CREATE", "STREAM.UPDATE", "STREAM.DELETE"] {
                publish.push(api(format!("{call}.{stream}")));
            }
            // Consumers the definition no longer names are deleted too.
            publish.push(api(format!("CONSUMER.DELETE.{stream}.*")));
        }
        for consumer in fleet.agents.iter().flat_map(|a| a.all_consumers()) {
            publish.push(api(format!(
                "CONSUMER.CREATE.{}.{}",
                consumer.stream, consumer.name
            )));
        }
    }
    publish.sort();
    publish.dedup();
    crate::credentials::Permissions {
        publish,
        subscribe: vec!["_INBOX.>".into()],
        respond: false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::load::{MapFiles, load_str};

    const FLEET: &str = r#"
[fleet]
name = "demo"
namespace = "agents"
[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"
[agents.devops]
rbac = [
  { api_groups = ["apps"], resources = ["deployments"], verbs = ["get", "patch"] },
  { api_groups = [""], resources = ["pods/log"], verbs = ["get"] },
]
"#;

    fn render(fleet_toml: &str) -> Vec<DesiredObject> {
        let loaded = load_str(
            Path::new("fleet.toml"),
            fleet_toml,
            None,
            None,
            &MapFiles(BTreeMap::new()),
        );
        assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
        crate::render::kube::objects(&loaded.fleet.unwrap())
    }

    /// `group/resource[names]: verbs` per rule, for short assertions.
    fn lines(rules: &[PolicyRule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| {
                format!(
                    "{}/{}{}: {}",
                    r.api_groups.as_ref().unwrap().join(","),
                    r.resources.as_ref().unwrap().join(","),
                    r.resource_names
                        .as_ref()
                        .map(|n| format!("[{}]", n.join(",")))
                        .unwrap_or_default(),
                    r.verbs.join(",")
                )
            })
            .collect()
    }

    #[test]
    fn read_only_reads_and_never_lists_secrets() {
        let rights = rights(&render(FLEET), "agents", Purpose::ReadOnly);
        assert_eq!(
            lines(&rights.namespaced),
            [
                "/secrets[fleet-demo]: get",
                "/serviceaccounts,services: get,list",
                "rbac.authorization.k8s.io/roles,rolebindings: get,list",
                // devops has no config files: nothing to read by name.
                "/configmaps: list",
                "apps/deployments: get,list",
                "autoscaling/horizontalpodautoscalers: list",
                "keda.sh/scaledobjects: list",
                "policy/poddisruptionbudgets: list",
                "networking.k8s.io/networkpolicies: list",
                "monitoring.coreos.com/servicemonitors: get,list",
                // Who holds the deploy lock, for the plan's header.
                "coordination.k8s.io/leases[fleet-demo]: get",
            ]
        );
        assert_eq!(lines(&rights.cluster), ["/namespaces[agents]: get"]);
        assert!(rights.granted.is_empty());
    }

    /// `fleet status` reads with the read-only rights: a LIST of
    /// Deployments and of ScaledObjects, a LIST of every HPA of the
    /// namespace (KEDA's carry no fleet label; RBAC cannot limit a LIST by
    /// label, so `list` covers them), and the ApplySet parent by name.
    #[test]
    fn read_only_covers_fleet_status() {
        let keda = "[fleet]\nname = \"demo\"\nnamespace = \"agents\"\n\n[environment]\nnats_monitoring = \"nats:8222\"\n\n[defaults]\nimage = \"img:1\"\nnats_url = \"nats://nats:4222\"\n\n[streams.tasks]\nsubjects = [\"tasks.>\"]\n\n[agents.worker]\nconsumer = { stream = \"tasks\" }\nautoscaling = { engine = \"keda\", min = 0, max = 3, pending_per_replica = 2 }\n";
        let rendered = render(keda);
        // KEDA makes the HPA: fleet renders none, and still may list them.
        assert!(
            !rendered
                .iter()
                .any(|o| o.id.kind == "HorizontalPodAutoscaler")
        );
        let rules = lines(&rights(&rendered, "agents", Purpose::ReadOnly).namespaced);
        for (resource, verb) in [
            ("apps/deployments", "list"),
            ("autoscaling/horizontalpodautoscalers", "list"),
            ("keda.sh/scaledobjects", "list"),
            ("/secrets[fleet-demo]", "get"),
        ] {
            assert!(
                rules
                    .iter()
                    .any(|rule| rule.starts_with(&format!("{resource}:"))
                        && rule
                            .split(": ")
                            .nth(1)
                            .unwrap()
                            .split(',')
                            .any(|v| v == verb)),
                "no {verb} on {resource} in {rules:?}"
            );
        }
    }

    #[test]
    fn plan_dry_runs_what_it_renders() {
        let rights = rights(&render(FLEET), "agents", Purpose::Plan);
        assert!(
            lines(&rights.namespaced).contains(&"apps/deployments: get,list,patch".to_string()),
            "{:?}",
            lines(&rights.namespaced)
        );
        // Listed, but nothing rendered: nothing to dry-run.
        assert!(lines(&rights.namespaced).contains(&"policy/poddisruptionbudgets: list".into()));
        assert_eq!(lines(&rights.cluster), ["/namespaces[agents]: get,patch"]);
    }

    #[test]
    fn apply_writes_deletes_waits_and_holds_what_it_grants() {
        let rights = rights(&render(FLEET), "agents", Purpose::Apply);
        assert_eq!(
            lines(&rights.namespaced),
            [
                "/secrets[fleet-demo]: get,create,patch",
                "/serviceaccounts,services: get,list,create,patch,delete",
                "rbac.authorization.k8s.io/roles,rolebindings: get,list,create,patch,delete",
                "/configmaps: list,delete",
                "apps/deployments: get,list,watch,create,patch,delete",
                "autoscaling/horizontalpodautoscalers: list,delete",
                "keda.sh/scaledobjects: list,delete",
                "policy/poddisruptionbudgets: list,delete",
                "networking.k8s.io/networkpolicies: list,delete",
                "monitoring.coreos.com/servicemonitors: get,list,create,patch,delete",
                "apps/replicasets: list,watch",
                "/pods: list,watch",
                "coordination.k8s.io/leases[fleet-demo]: get,update",
                "coordination.k8s.io/leases: create",
            ]
        );
        assert_eq!(
            lines(&rights.cluster),
            ["/namespaces[agents]: get,create,patch"]
        );
        assert_eq!(
            lines(&rights.granted),
            ["apps/deployments: get,patch", "/pods/log: get"]
        );
    }

    #[test]
    fn an_unmanaged_namespace_needs_no_cluster_role() {
        let objects = render(&FLEET.replace("[fleet]\n", "[fleet]\nmanage_namespace = false\n"));
        for purpose in [Purpose::ReadOnly, Purpose::Plan, Purpose::Apply] {
            let rights = rights(&objects, "agents", purpose);
            assert!(rights.cluster.is_empty(), "{purpose:?}");
            assert_eq!(
                lines(&rights.namespaced)[0],
                "/namespaces[agents]: get",
                "{purpose:?}"
            );
            let grantee = Grantee::User("ci".into());
            let documents = documents(&rights, "demo", "agents", purpose, &grantee);
            let kinds: Vec<&str> = documents
                .iter()
                .map(|d| d.body["kind"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, ["Role", "RoleBinding"]);
        }
    }

    #[test]
    fn bindings_name_the_grantee_and_the_role() {
        let objects = render(FLEET);
        let rights = rights(&objects, "agents", Purpose::Apply);
        let grantee = Grantee::ServiceAccount {
            namespace: "ci".into(),
            name: "deployer".into(),
        };
        let documents = documents(&rights, "demo", "agents", Purpose::Apply, &grantee);
        let kinds: Vec<&str> = documents
            .iter()
            .map(|d| d.body["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
        );
        let binding = &documents[1].body;
        assert_eq!(binding["roleRef"]["name"], "fleet-demo-apply");
        assert_eq!(
            binding["subjects"][0],
            serde_json::json!({ "kind": "ServiceAccount", "name": "deployer", "namespace": "ci" })
        );
        assert_eq!(
            documents[3].body["roleRef"]["name"],
            "fleet-demo-agents-apply"
        );
        // The agents' rules come last in fleet's Role.
        let rules = documents[0].body["rules"].as_array().unwrap();
        assert_eq!(rules.last().unwrap()["resources"][0], "pods/log");
        // fleet's own Role carries no ownership label: fleet would plan to
        // destroy it otherwise.
        assert!(documents[0].body["metadata"].get("labels").is_none());
    }

    #[test]
    fn the_deploy_jobs_nats_user_may_change_only_the_fleets_streams_and_consumers() {
        let loaded = crate::definition::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fleet.toml"),
            None,
        )
        .unwrap();
        let fleet = loaded.fleet.unwrap();
        let plan = nats_rights(&fleet, Purpose::Plan);
        assert_eq!(
            plan.publish,
            [
                "$JS.API.CONSUMER.INFO.agent-tasks.*",
                "$JS.API.CONSUMER.LIST.agent-tasks",
                "$JS.API.INFO",
                "$JS.API.STREAM.LIST",
            ]
        );
        let apply = nats_rights(&fleet, Purpose::Apply);
        assert!(
            apply
                .publish
                .contains(&"$JS.API.STREAM.UPDATE.agent-tasks".to_string())
        );
        assert!(
            apply
                .publish
                .contains(&"$JS.API.CONSUMER.CREATE.agent-tasks.devops-agent".to_string())
        );
        assert!(
            !apply
                .publish
                .iter()
                .any(|s| s.ends_with('>') || s == "$JS.API.STREAM.DELETE.*")
        );
        assert_eq!(apply.subscribe, ["_INBOX.>"]);
    }
}
