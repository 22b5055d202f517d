//! Signed watchlist sync (protocol revision 1.2).
//!
//! Anyone who can publish on an agent's sync topic (a broker without ACLs, a stolen agent login, a retained
//! message left by an attacker) could otherwise replace the agent's lists. So the hub signs every sync with
//! an Ed25519 key that never leaves it, and an agent applies only what verifies against a hub public key in
//! its own configuration.
//!
//! The signature covers the destination as well as the message, so a sync captured on one agent's topic
//! cannot be replayed to another agent (sites hold different entries); replaying it to the same agent is
//! stopped by the version rules (a full set must not be older, a delta must start at the held version).
//!
//! Wire format: `{"signed_sync": 1, "key_id": "<16 hex>", "site": "...", "agent": "...",
//! "payload": "<the sync message's JSON text>", "sig": "<base64 Ed25519 signature>"}`. The payload travels as
//! a string so the verified bytes are exactly the bytes that are parsed.

use base64::Engine as _;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Version of the signed envelope itself.
pub const SIGNED_SYNC_VERSION: u32 = 1;

/// Bytes the signature covers: a domain tag (so a signature made for anything else never verifies here),
/// the destination, and the payload.
fn signed_bytes(site: &str, agent: &str, payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + site.len() + agent.len() + 40);
    out.extend_from_slice(b"checkpoint watchlist sync v1\n");
    out.extend_from_slice(site.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(agent.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload.as_bytes());
    out
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignatureError {
    #[error("the sync message is not signed (an agent applies only syncs signed by its hub)")]
    Unsigned,
    #[error("malformed signed sync: {0}")]
    Malformed(String),
    #[error("signed by key {0}, which is not one of this agent's hub keys")]
    UnknownKey(String),
    #[error("signed for {site}/{agent}, not for this agent")]
    WrongDestination { site: String, agent: String },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("hub key: {0}")]
    BadKey(String),
}

/// The signed envelope as it travels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSync {
    pub signed_sync: u32,
    pub key_id: String,
    pub site: String,
    pub agent: String,
    pub payload: String,
    pub sig: String,
}

/// A hub public key as configured on an agent: base64 of the 32 key bytes.
#[derive(Clone, Debug)]
pub struct HubKey {
    key: ed25519_dalek::VerifyingKey,
    id: String,
}

impl HubKey {
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| SignatureError::BadKey(format!("not base64: {e}")))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SignatureError::BadKey("an Ed25519 public key is 32 bytes".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map_err(|e| SignatureError::BadKey(e.to_string()))?;
        Ok(Self {
            id: key_id(&arr),
            key,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Short fingerprint of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(public: &[u8; 32]) -> String {
    hex::encode(&sha2::Sha256::digest(public)[..8])
}

/// The hub's signing key. Created from 32 secret bytes (the hub keeps them in an owner-only file).
pub struct SyncSigner {
    key: ed25519_dalek::SigningKey,
    id: String,
}

impl SyncSigner {
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(secret);
        let id = key_id(key.verifying_key().as_bytes());
        Self { key, id }
    }

    /// Base64 of the public key: what an agent's `[watchlist] hub_public_keys` lists.
    pub fn public_key(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The signed envelope of `payload` (a sync message's JSON) for `site`/`agent`, as bytes to publish.
    pub fn sign(&self, site: &str, agent: &str, payload: String) -> Vec<u8> {
        let sig = self.key.sign(&signed_bytes(site, agent, &payload));
        let env = SignedSync {
            signed_sync: SIGNED_SYNC_VERSION,
            key_id: self.id.clone(),
            site: site.into(),
            agent: agent.into(),
            payload,
            sig: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        };
        serde_json::to_vec(&env).unwrap_or_default()
    }
}

/// Checks a signed sync addressed to `site`/`agent` against the hub keys the agent trusts and returns the
/// payload (the sync message's JSON) for [`crate::watchlist::parse_sync`]. The caller bounds the size of
/// `bytes` first.
pub fn verify(
    bytes: &[u8],
    keys: &[HubKey],
    site: &str,
    agent: &str,
) -> Result<String, SignatureError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if value.get("signed_sync").is_none() {
        return Err(SignatureError::Unsigned);
    }
    let env: SignedSync =
        serde_json::from_value(value).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if env.signed_sync != SIGNED_SYNC_VERSION {
        return Err(SignatureError::Malformed(format!(
            "signed_sync version {} is not known",
            env.signed_sync
        )));
    }
    let key = keys
        .iter()
        .find(|k| k.id == env.key_id)
        .ok_or_else(|| SignatureError::UnknownKey(env.key_id.clone()))?;
    if env.site != site || env.agent != agent {
        return Err(SignatureError::WrongDestination {
            site: env.site,
            agent: env.agent,
        });
    }
    let sig_bytes: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(env.sig.as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::BadSignature)?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig_bytes);
    // verify_strict also refuses the malleable and small-order forms that plain verify lets through.
    key.key
        .verify_strict(&signed_bytes(site, agent, &env.payload), &sig)
        .map_err(|_| SignatureError::BadSignature)?;
    Ok(env.payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> SyncSigner {
        SyncSigner::from_secret(&[seed; 32])
    }

    #[test]
    fn a_signed_sync_verifies_only_for_its_destination_and_key() {
        let s = signer(1);
        let key = HubKey::parse(&s.public_key()).unwrap();
        assert_eq!(key.id(), s.key_id());
        let payload = r#"{"type":"full","version":5,"entries":[],"thresholds":{"wanted":0.43,"missing":0.37}}"#;
        let bytes = s.sign("pier", "a1", payload.to_string());
        assert_eq!(
            verify(&bytes, std::slice::from_ref(&key), "pier", "a1").unwrap(),
            payload
        );
        // Replayed to another agent.
        assert!(matches!(
            verify(&bytes, std::slice::from_ref(&key), "pier", "a2"),
            Err(SignatureError::WrongDestination { .. })
        ));
        // Another hub's key.
        let other = HubKey::parse(&signer(2).public_key()).unwrap();
        assert!(matches!(
            verify(&bytes, &[other], "pier", "a1"),
            Err(SignatureError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampering_and_unsigned_messages_are_refused() {
        let s = signer(3);
        let key = HubKey::parse(&s.public_key()).unwrap();
        let keys = std::slice::from_ref(&key);
        let bytes = s.sign("pier", "a1", r#"{"type":"full","version":5}"#.into());
        let mut env: SignedSync = serde_json::from_slice(&bytes).unwrap();
        env.payload = env.payload.replace('5', "9");
        let forged = serde_json::to_vec(&env).unwrap();
        assert_eq!(
            verify(&forged, keys, "pier", "a1"),
            Err(SignatureError::BadSignature)
        );
        // The destination fields are covered too: rewriting them to this agent does not help.
        let mut env: SignedSync =
            serde_json::from_slice(&s.sign("dock", "a1", "{}".into())).unwrap();
        env.site = "pier".into();
        assert_eq!(
            verify(&serde_json::to_vec(&env).unwrap(), keys, "pier", "a1"),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify(
                br#"{"type":"full","version":1,"entries":[]}"#,
                keys,
                "pier",
                "a1"
            ),
            Err(SignatureError::Unsigned)
        );
        assert!(matches!(
            verify(b"\xff\x00", keys, "pier", "a1"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(br#"{"signed_sync":1,"sig":7}"#, keys, "pier", "a1"),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(HubKey::parse("not base64!").is_err());
        assert!(HubKey::parse("AAAA").is_err());
    }
}
