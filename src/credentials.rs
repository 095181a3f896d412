//! NATS user credentials, minted the way NATS's decentralised JWT
//! authentication expects them: a user NKey, and a user JWT naming its
//! permissions, signed by an account signing key. Pure but for the key
//! pair's randomness: the time is given.
//!
//! A JWT is `base64url(header) "." base64url(claims) "." base64url(sig)`,
//! signed with ed25519 over the first two parts; the claims carry a `jti`
//! (the SHA-512/256 of the claims without it, in base32), as nats-io/jwt
//! writes them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::redact::Sensitive;

/// On an agent's credentials Secret: what its user may do (JSON of
/// [`Permissions`], what a plan compares), its public key (what a
/// revocation names) and when it expires (Unix seconds).
pub const PERMISSIONS_ANNOTATION: &str = "fleet.agent.ceo/nats-permissions";
pub const USER_ANNOTATION: &str = "fleet.agent.ceo/nats-user";
pub const EXPIRES_ANNOTATION: &str = "fleet.agent.ceo/nats-expires";

/// On the ApplySet parent: the credentials Secrets fleet made, so that a
/// removed agent's are found (and deleted) without listing Secrets.
pub const RECORDED_ANNOTATION: &str = "fleet.agent.ceo/nats-credentials";

/// What a user may publish and subscribe to: allow lists, everything else
/// denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// May reply to the requests it receives (on their reply subjects,
    /// which it could not name in advance).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub respond: bool,
}

/// A minted user: its public key (which revocations name) and the creds
/// file an agent connects with (JWT and seed: secret).
pub struct Minted {
    pub public_key: String,
    pub creds: Sensitive,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("public_key", &self.public_key)
            .field("creds", &self.creds)
            .finish()
    }
}

/// A key given to fleet: an NKey seed, checked to be of the kind needed.
pub fn account_key(seed: &str) -> anyhow::Result<KeyPair> {
    let key = KeyPair::from_seed(seed.trim()).map_err(|_| {
        anyhow::anyhow!("the NATS account signing key is not an NKey seed (it starts with SA)")
    })?;
    if !key.public_key().starts_with('A') {
        anyhow::bail!(
            "the NATS account signing key is a seed of another kind (its public key is {}…): give an account seed (SA…)",
            &key.public_key()[..1]
        );
    }
    Ok(key)
}

/// The operator's (signing) key, which re-signs the account JWT to revoke
/// users: an NKey seed of an operator.
pub fn operator_key(seed: &str) -> anyhow::Result<KeyPair> {
    let key = KeyPair::from_seed(seed.trim()).map_err(|_| {
        anyhow::anyhow!("the NATS operator signing key is not an NKey seed (it starts with SO)")
    })?;
    if !key.public_key().starts_with('O') {
        anyhow::bail!(
            "the NATS operator signing key is a seed of another kind: give an operator seed (SO…)"
        );
    }
    Ok(key)
}

/// `account_jwt` with each of `users` revoked as of `at` (every JWT of that
/// user key issued until then is refused), re-signed by `operator`.
pub fn revoked(
    account_jwt: &str,
    users: &[String],
    at: u64,
    operator: &KeyPair,
) -> anyhow::Result<String> {
    let mut claims = claims(account_jwt)
        .filter(|c| c["nats"]["type"] == "account")
        .ok_or_else(|| anyhow::anyhow!("the server's answer is not an account JWT"))?;
    if let Some(map) = claims.as_object_mut() {
        for key in ["iat", "iss", "jti"] {
            map.remove(key);
        }
    }
    let revocations = &mut claims["nats"]["revocations"];
    if !revocations.is_object() {
        *revocations = json!({});
    }
    for user in users {
        revocations[user.as_str()] = json!(at);
    }
    Ok(encode(operator, claims, at))
}

/// Signs `claims` (a JSON object without `jti`, `iat` or `iss`) as
/// `issuer`, issued at `now` (Unix seconds).
pub fn encode(issuer: &KeyPair, mut claims: Value, now: u64) -> String {
    claims["iat"] = json!(now);
    claims["iss"] = json!(issuer.public_key());
    claims["jti"] = json!("");
    let hash = sha2::Sha512_256::digest(claims.to_string().as_bytes());
    claims["jti"] = json!(data_encoding::BASE32_NOPAD.encode(&hash));
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{body}");
    let signature = issuer
        .sign(signed.as_bytes())
        .expect("a seed's key pair signs");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Mints a user of `account` (its public key) named `name`, signed by the
/// account's signing key, valid from `now` until `expires` (Unix seconds).
pub fn mint_user(
    signing_key: &KeyPair,
    account: &str,
    name: &str,
    permissions: &Permissions,
    now: u64,
    expires: u64,
) -> Minted {
    let user = KeyPair::new_user();
    let mut nats = json!({
        "pub": { "allow": permissions.publish },
        "sub": { "allow": permissions.subscribe },
        "subs": -1,
        "data": -1,
        "payload": -1,
        "type": "user",
        "version": 2,
    });
    if permissions.respond {
        // One reply per request, within the request's own lifetime.
        nats["resp"] = json!({ "max": 1, "ttl": 0 });
    }
    if signing_key.public_key() != account {
        nats["issuer_account"] = json!(account);
    }
    let claims = json!({
        "name": name,
        "sub": user.public_key(),
        "exp": expires,
        "nats": nats,
    });
    let jwt = encode(signing_key, claims, now);
    let seed = user.seed().expect("a new user key pair has a seed");
    Minted {
        public_key: user.public_key(),
        creds: Sensitive::new(creds_file(&jwt, &seed)),
    }
}

/// The creds file format `nats` and every client read.
pub fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\nNKEYs are sensitive and should be treated as secrets.\n\n-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n*************************************************************\n"
    )
}

/// The claims of a JWT, read without checking its signature (for tests
/// and for reading back what fleet minted).
pub fn claims(jwt: &str) -> Option<Value> {
    let body = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// Whether `jwt` is signed by the key its `iss` names.
pub fn verify(jwt: &str) -> bool {
    let Some((signed, signature)) = jwt.rsplit_once('.') else {
        return false;
    };
    let Some(issuer) = claims(jwt).and_then(|c| c["iss"].as_str().map(str::to_string)) else {
        return false;
    };
    let (Ok(key), Ok(signature)) = (
        KeyPair::from_public_key(&issuer),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return false;
    };
    key.verify(signed.as_bytes(), &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_of(creds: &str) -> &str {
        creds
            .lines()
            .nth(1)
            .expect("the JWT is the creds file's second line")
    }

    #[test]
    fn a_minted_user_is_signed_by_the_signing_key_for_the_account_with_exactly_its_permissions() {
        let account = KeyPair::new_account();
        let signing = KeyPair::new_account();
        let permissions = Permissions {
            publish: vec!["$JS.API.CONSUMER.MSG.NEXT.tasks.devops-agent".into()],
            subscribe: vec!["_INBOX_devops.>".into()],
            respond: false,
        };
        let minted = mint_user(
            &signing,
            &account.public_key(),
            "agent-devops",
            &permissions,
            1_000,
            2_000,
        );
        let jwt = jwt_of(minted.creds.expose());
        assert!(verify(jwt));
        let claims = claims(jwt).unwrap();
        assert_eq!(claims["iss"], signing.public_key());
        assert_eq!(claims["sub"], minted.public_key.as_str());
        assert_eq!(claims["nats"]["issuer_account"], account.public_key());
        assert_eq!(claims["nats"]["pub"]["allow"], json!(permissions.publish));
        assert_eq!(claims["nats"]["sub"]["allow"], json!(permissions.subscribe));
        assert_eq!(
            (claims["iat"].as_u64(), claims["exp"].as_u64()),
            (Some(1_000), Some(2_000))
        );
        assert!(claims["nats"].get("resp").is_none());
        assert!(minted.public_key.starts_with('U'));
        // The seed is in the creds file, never in Debug.
        assert!(
            minted
                .creds
                .expose()
                .contains("-----BEGIN USER NKEY SEED-----\nSU")
        );
        let seed = (minted.creds.expose().lines())
            .find(|line| line.starts_with("SU"))
            .unwrap();
        assert!(!format!("{minted:?}").contains(seed));
    }

    #[test]
    fn a_tampered_jwt_does_not_verify() {
        let signing = KeyPair::new_account();
        let minted = mint_user(
            &signing,
            &signing.public_key(),
            "a",
            &Permissions::default(),
            1,
            2,
        );
        let jwt = jwt_of(minted.creds.expose()).to_string();
        let mut claims = claims(&jwt).unwrap();
        claims["nats"]["pub"]["allow"] = json!([">"]);
        let forged = format!(
            "{}.{}.{}",
            jwt.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            jwt.rsplit('.').next().unwrap()
        );
        assert!(!verify(&forged));
        assert!(verify(&jwt));
    }

    #[test]
    fn an_account_key_must_be_an_account_seed() {
        assert!(account_key(&KeyPair::new_account().seed().unwrap()).is_ok());
        let user = account_key(&KeyPair::new_user().seed().unwrap()).unwrap_err();
        assert!(user.to_string().contains("another kind"), "{user}");
        let junk = account_key("not a seed").unwrap_err();
        assert!(
            !junk.to_string().contains("not a seed"),
            "the input is never echoed"
        );
    }

    #[test]
    fn a_revocation_keeps_the_account_and_adds_the_users_re_signed_by_the_operator() {
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let original = encode(
            &operator,
            json!({ "name": "agents", "sub": account.public_key(),
                    "nats": { "type": "account", "version": 2, "signing_keys": ["AS"], "revocations": { "UOLD": 5 } } }),
            10,
        );
        let updated = revoked(&original, &["UNEW".to_string()], 20, &operator).unwrap();
        assert!(verify(&updated));
        let claims = claims(&updated).unwrap();
        assert_eq!(claims["sub"], account.public_key());
        assert_eq!(claims["nats"]["signing_keys"], json!(["AS"]));
        assert_eq!(
            claims["nats"]["revocations"],
            json!({ "UOLD": 5, "UNEW": 20 })
        );
        assert_eq!(claims["iat"], 20);
        let not_account = encode(&operator, json!({ "nats": { "type": "user" } }), 1);
        assert!(revoked(&not_account, &[], 1, &operator).is_err());
        assert!(operator_key(&account.seed().unwrap()).is_err());
    }
}
