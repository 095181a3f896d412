//! redact: what fleet must never print, on any channel (plan text, JSON,
//! Markdown, saved plans, step summaries, errors, `Debug`): Secret values,
//! the last-applied annotation that copies them, passwords in URLs, and
//! credentials fleet was given.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What is printed instead of a secret value.
pub(crate) const MASK: &str = "(sensitive value)";

/// Client-side `kubectl apply` copies the whole object, Secret values
/// included, into this annotation.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Kubernetes object, or a JetStream config, with every Secret value
/// masked: `data`, `stringData` and the last-applied annotation. Anything
/// that is not a Secret is returned as it is.
pub(crate) fn object(body: &Value) -> Value {
    let mut body = body.clone();
    if body["kind"] != "Secret" {
        return body;
    }
    for field in ["data", "stringData"] {
        if let Some(values) = body.get_mut(field).and_then(Value::as_object_mut) {
            for value in values.values_mut() {
                *value = Value::from(MASK);
            }
        }
    }
    if let Some(annotations) = body
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        && let Some(value) = annotations.get_mut(LAST_APPLIED_ANNOTATION)
    {
        *value = Value::from(MASK);
    }
    body
}

/// A URL without its userinfo: `nats://user:secret@host:4222` ->
/// `nats://***@host:4222`. Several comma-separated URLs (a NATS seed list)
/// are each redacted.
pub(crate) fn url(url: &str) -> String {
    url.split(',')
        .map(|one| match one.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                match rest[..authority_end].rfind('@') {
                    Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                    None => one.to_string(),
                }
            }
            None => match one.rfind('@') {
                Some(at) => format!("***@{}", &one[at + 1..]),
                None => one.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The secret parts of the userinfo of each URL (a password, or a token
/// given as the user), percent-encoded as written: what must be masked.
pub(crate) fn url_secrets(urls: &str) -> Vec<String> {
    urls.split(',')
        .filter_map(|url| {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let (userinfo, _) = rest.split('/').next()?.rsplit_once('@')?;
            Some(match userinfo.split_once(':') {
                Some((_, password)) => password.to_string(),
                None => userinfo.to_string(),
            })
        })
        .filter(|secret| !secret.is_empty())
        .collect()
}

/// A credential: usable by the code that needs it, never shown by `Debug`
/// or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Sensitive {
        Sensitive(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl std::str::FromStr for Sensitive {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Sensitive(value.to_string()))
    }
}

/// The body of a change, as apply sends it. Serialised (JSON plans, saved
/// plans) and debug-printed with Secret values masked; the real values stay
/// in memory for apply. A saved plan is only compared with a fresh plan,
/// masked the same way, and apply sends the fresh one.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Body(Value);

impl Body {
    pub fn new(value: Value) -> Body {
        Body(value)
    }

    /// The body as apply sends it, Secret values included. Everything that
    /// prints goes through `Serialize` or `Debug`, which mask them.
    pub fn sent(&self) -> &Value {
        &self.0
    }
}

impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        object(&self.0).serialize(serializer)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", object(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_values_and_their_last_applied_copy_are_masked() {
        let secret = json!({
            "kind": "Secret",
            "metadata": { "annotations": { LAST_APPLIED_ANNOTATION: "{\"data\":{\"k\":\"c2VjcmV0\"}}", "other": "kept" } },
            "data": { "k": "c2VjcmV0" }, "stringData": { "p": "hunter2" }
        });
        let text = object(&secret).to_string();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(text.contains("kept"), "{text}");
        let config_map = json!({ "kind": "ConfigMap", "data": { "k": "v" } });
        assert_eq!(object(&config_map), config_map);
    }

    #[test]
    fn a_body_never_shows_secret_values() {
        let body = Body::new(json!({ "kind": "Secret", "data": { "k": "c2VjcmV0" } }));
        assert!(!format!("{body:?}").contains("c2VjcmV0"));
        assert!(!serde_json::to_string(&body).unwrap().contains("c2VjcmV0"));
        assert_eq!(
            body.sent()["data"]["k"],
            "c2VjcmV0",
            "apply still has the value"
        );
    }

    #[test]
    fn urls_lose_their_userinfo() {
        assert_eq!(url("nats://fleet:s3cret@nats:4222"), "nats://***@nats:4222");
        assert_eq!(url("nats://tok3n@nats:4222"), "nats://***@nats:4222");
        assert_eq!(url("nats://nats:4222"), "nats://nats:4222");
        assert_eq!(
            url("nats://a:b@n1:4222,nats://n2:4222"),
            "nats://***@n1:4222,nats://n2:4222"
        );
        assert_eq!(url("user:pw@host:4222"), "***@host:4222");
        assert_eq!(url("https://h/p@x"), "https://h/p@x");
    }

    #[test]
    fn the_secrets_of_a_url_are_its_password_or_token() {
        assert_eq!(url_secrets("nats://fleet:s3cret@n:4222"), ["s3cret"]);
        assert_eq!(url_secrets("nats://t0ken@n:4222,nats://n2"), ["t0ken"]);
        assert!(url_secrets("nats://n:4222").is_empty());
    }

    #[test]
    fn sensitive_values_do_not_debug_print() {
        let token = Sensitive::new("t0ken");
        assert_eq!(format!("{token:?}"), MASK);
        assert_eq!(token.expose(), "t0ken");
    }
}
