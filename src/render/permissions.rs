//! An agent's NATS permissions, derived from the definition: what it needs
//! to read its own consumers and nothing more, plus the subjects it says it
//! publishes to, sends requests to and serves. Everything else is denied,
//! so a compromised agent cannot read another's tasks, command another
//! role, or administer JetStream. Pure.

use crate::credentials::Permissions;
use crate::model::Agent;

/// The agent's own reply-inbox prefix: replies to its requests (and the
/// JetStream API's answers) come here, where no other agent may listen.
/// Rendered into its pods as `NATS_INBOX_PREFIX`.
pub fn inbox_prefix(role: &str) -> String {
    format!("_INBOX_{role}")
}

pub fn of_agent(agent: &Agent) -> Permissions {
    let mut publish = Vec::new();
    for consumer in agent.all_consumers() {
        let (stream, name) = (&consumer.stream, &consumer.name);
        // Pull the next messages, look the consumer up, acknowledge (and
        // nak, term, in-progress) what it was given.
        publish.push(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"));
        publish.push(format!("$JS.API.CONSUMER.INFO.{stream}.{name}"));
        publish.push(format!("$JS.ACK.{stream}.{name}.>"));
    }
    publish.extend(agent.messaging.publishes.iter().cloned());
    publish.extend(agent.messaging.requests.iter().cloned());
    let mut subscribe = vec![format!("{}.>", inbox_prefix(&agent.role))];
    subscribe.extend(agent.messaging.serves.iter().cloned());
    Permissions {
        publish,
        subscribe,
        respond: !agent.messaging.serves.is_empty(),
    }
}

/// What changes between two sets of permissions, in words a reviewer reads:
/// `may now publish to tasks.reviewer.new`, `may no longer subscribe to x`.
pub fn changes(before: &Permissions, after: &Permissions) -> Vec<String> {
    let mut out = Vec::new();
    for (verb, old, new) in [
        ("publish to", &before.publish, &after.publish),
        ("subscribe to", &before.subscribe, &after.subscribe),
    ] {
        for subject in new.iter().filter(|s| !old.contains(s)) {
            out.push(format!("may now {verb} {subject}"));
        }
        for subject in old.iter().filter(|s| !new.contains(s)) {
            out.push(format!("may no longer {verb} {subject}"));
        }
    }
    match (before.respond, after.respond) {
        (false, true) => out.push("may now reply to requests".into()),
        (true, false) => out.push("may no longer reply to requests".into()),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::{MapFiles, load_str};

    fn agents(toml: &str) -> Vec<Agent> {
        let loaded = load_str(
            Path::new("fleet.toml"),
            toml,
            None,
            None,
            &MapFiles(Default::default()),
        );
        assert_eq!(loaded.errors(), 0, "{:#?}", loaded.diagnostics);
        loaded.fleet.unwrap().agents
    }

    const FLEET: &str = r#"
[fleet]
name = "f"
namespace = "ns"
[defaults]
image = "a:1"
nats_url = "nats://nats:4222"
[streams.tasks]
subjects = ["tasks.>"]
[agents.devops]
consumer = { stream = "tasks" }
publishes = ["tasks.reviewer.new"]
requests = ["agents.reviewer.query"]
[agents.reviewer]
consumer = { stream = "tasks" }
serves = ["agents.reviewer.query"]
"#;

    #[test]
    fn an_agent_may_read_only_its_own_consumer_and_say_only_what_it_declares() {
        let agents = agents(FLEET);
        let devops = of_agent(&agents[0]);
        assert_eq!(
            devops.publish,
            [
                "$JS.API.CONSUMER.MSG.NEXT.tasks.devops-agent",
                "$JS.API.CONSUMER.INFO.tasks.devops-agent",
                "$JS.ACK.tasks.devops-agent.>",
                "tasks.reviewer.new",
                "agents.reviewer.query",
            ]
        );
        assert_eq!(devops.subscribe, ["_INBOX_devops.>"]);
        assert!(!devops.respond);
        let reviewer = of_agent(&agents[1]);
        assert_eq!(
            reviewer.subscribe,
            ["_INBOX_reviewer.>", "agents.reviewer.query"]
        );
        assert!(reviewer.respond);
    }

    #[test]
    fn a_permission_change_reads_as_what_the_agent_may_now_and_no_longer_do() {
        let agents = agents(FLEET);
        let devops = of_agent(&agents[0]);
        let mut narrowed = devops.clone();
        narrowed.publish.retain(|s| s != "tasks.reviewer.new");
        narrowed.publish.push("tasks.devops.done".into());
        narrowed.respond = true;
        assert_eq!(
            changes(&devops, &narrowed),
            [
                "may now publish to tasks.devops.done",
                "may no longer publish to tasks.reviewer.new",
                "may now reply to requests",
            ]
        );
        assert!(changes(&devops, &devops).is_empty());
    }

    #[test]
    fn a_published_subject_no_stream_captures_is_refused_at_its_line() {
        let broken = FLEET.replace(
            "publishes = [\"tasks.reviewer.new\"]",
            "publishes = [\"task.reviewer.new\"]",
        );
        let loaded = load_str(
            Path::new("fleet.toml"),
            &broken,
            None,
            None,
            &MapFiles(Default::default()),
        );
        let messages: Vec<&str> = loaded
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            messages,
            ["no stream of the fleet captures `task.reviewer.new`"]
        );
    }
}
