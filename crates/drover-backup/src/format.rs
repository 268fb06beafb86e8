//! What a backup is on disk: an index naming every object, and the objects themselves,
//! content-addressed and compressed (and encrypted, for Secrets). See docs/backup.md.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::{digest, hkdf, hmac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;

/// Bumped when a reader of the old format could not read the new one.
pub const FORMAT: u32 = 1;

/// One backup: what was taken, from where, and where each object's content lies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub format: u32,
    pub id: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub plan: String,
    /// The region whose cluster was backed up.
    pub region: String,
    /// Namespaces asked for; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Fingerprint of the key Secrets were encrypted with, so a restore with another key
    /// fails before it applies anything. None when no Secrets were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// API groups discovery could not read (an aggregated API that was down), with why:
    /// their objects are not in this backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_groups: Vec<String>,
    pub objects: Vec<Entry>,
}

/// One Kubernetes object of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The resource's plural name, as the API addresses it.
    pub plural: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// SHA-256 of the stored bytes, lower-case hex: the object's name under `objects/`.
    pub hash: String,
    /// Stored size in bytes.
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

impl Entry {
    /// `kind namespace/name`, as reports name it.
    pub fn label(&self) -> String {
        self.label_in(&BTreeMap::new())
    }

    /// The label once restored with namespace map `map` (source namespace to target).
    pub fn label_in(&self, map: &BTreeMap<String, String>) -> String {
        let (namespace, name) = self.restored_as(map);
        match namespace {
            Some(ns) => format!("{} {ns}/{name}", self.kind),
            None => format!("{} {name}", self.kind),
        }
    }

    /// The namespace and name the object gets in the target under `map`: a namespaced
    /// object moves to its namespace's target, and a Namespace itself is renamed.
    pub fn restored_as<'a>(&'a self, map: &'a BTreeMap<String, String>) -> (Option<&'a str>, &'a str) {
        let renamed = |ns: &'a str| map.get(ns).map_or(ns, String::as_str);
        match &self.namespace {
            Some(ns) => (Some(renamed(ns)), &self.name),
            None if self.group.is_empty() && self.kind == "Namespace" => (None, renamed(&self.name)),
            None => (None, &self.name),
        }
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Metadata the API server owns: restoring it would be refused or would lie.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The object as it should be restored: status and server-owned metadata gone, and
/// fields the server assigns per cluster (a Service's cluster IPs, a claim's bound
/// volume) removed so the target cluster assigns its own.
pub fn strip(mut object: Value, kind: &str) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in SERVER_METADATA {
                meta.remove(*field);
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                // Binding annotations the PV controller sets; they name the source cluster's volumes.
                annotations.retain(|k, _| !k.starts_with("pv.kubernetes.io/"));
                if annotations.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
        if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
            match kind {
                "Service" => {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                "PersistentVolumeClaim" => {
                    spec.remove("volumeName");
                }
                _ => {}
            }
        }
    }
    canonical(object)
}

/// Keys sorted at every level, so equal objects serialize to equal bytes whatever
/// order the API server sent them in (and whichever serde_json map is compiled in).
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, canonical(v))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// The stored bytes of a plain object: gzip of its canonical JSON. The same level on the
/// same input gives the same bytes, so an unchanged object has the same address.
pub fn encode(object: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(object).expect("a JSON value serializes");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&json).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// The object back from its stored bytes.
pub fn decode(bytes: &[u8]) -> Result<Value, Error> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut json).map_err(|e| Error::Corrupt(format!("not gzip: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| Error::Corrupt(format!("not JSON: {e}")))
}

/// The key Secrets are encrypted with, derived from what the user's reference holds.
/// It never prints.
pub struct SecretKey {
    aead: LessSafeKey,
    nonce_key: hmac::Key,
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(prk: &hkdf::Prk, label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    prk.expand(&[label], Len(32)).expect("32 bytes is a valid HKDF length").fill(&mut out).expect("length matches");
    out
}

impl SecretKey {
    /// At least 32 bytes of key material (e.g. `head -c 32 /dev/urandom | base64`).
    pub fn from_material(material: &[u8]) -> Result<SecretKey, Error> {
        if material.len() < 32 {
            return Err(Error::Key(format!("the key must hold at least 32 bytes, it holds {}", material.len())));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"drover-backup v1").extract(material);
        let aead = LessSafeKey::new(
            UnboundKey::new(&aead::CHACHA20_POLY1305, &derive(&prk, b"encrypt")).expect("32-byte key"),
        );
        let nonce_key = hmac::Key::new(hmac::HMAC_SHA256, &derive(&prk, b"nonce"));
        let id = data_encoding::HEXLOWER.encode(&derive(&prk, b"key id")[..8]);
        Ok(SecretKey { aead, nonce_key, id })
    }

    /// A fingerprint that names the key without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plain`. The nonce is a keyed hash of the plaintext, so the same Secret
    /// encrypts to the same bytes (and is stored once), and only identical plaintexts
    /// ever share a nonce, which reveals nothing but their equality.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(&self.nonce_key, plain);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&tag.as_ref()[..12]);
        let mut out = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(b"drover-backup v1"), &mut out)
            .expect("sealing in memory");
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&out);
        stored
    }

    pub fn open(&self, stored: &[u8]) -> Result<Vec<u8>, Error> {
        if stored.len() < 12 {
            return Err(Error::Corrupt("encrypted object too short".into()));
        }
        let nonce = Nonce::try_assume_unique_for_key(&stored[..12]).expect("12 bytes");
        let mut buf = stored[12..].to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(b"drover-backup v1"), &mut buf)
            .map_err(|_| Error::Key("a Secret does not decrypt with this key".into()))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strip_removes_server_fields_and_keeps_the_rest() {
        let object = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "a", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "t", "managedFields": [], "generation": 2, "labels": {"app": "web"}},
            "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80}]},
            "status": {"loadBalancer": {}}
        });
        let stripped = strip(object, "Service");
        assert_eq!(
            stripped,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "a", "labels": {"app": "web"}},
                "spec": {"ports": [{"port": 80}]}})
        );
    }

    #[test]
    fn encoding_is_deterministic_and_round_trips() {
        let a = canonical(json!({"b": 1, "a": {"d": [1, 2], "c": "x"}}));
        let b = canonical(json!({"a": {"c": "x", "d": [1, 2]}, "b": 1}));
        assert_eq!(encode(&a), encode(&b));
        assert_eq!(decode(&encode(&a)).unwrap(), a);
    }

    #[test]
    fn sealing_is_deterministic_and_needs_the_key() {
        let key = SecretKey::from_material(&[7u8; 32]).unwrap();
        let other = SecretKey::from_material(&[8u8; 32]).unwrap();
        let sealed = key.seal(b"password");
        assert_eq!(sealed, key.seal(b"password"));
        assert_ne!(sealed, key.seal(b"passwore"));
        assert_eq!(key.open(&sealed).unwrap(), b"password");
        assert!(other.open(&sealed).is_err());
        assert_ne!(key.id(), other.id());
        assert!(!format!("{key:?}").contains("0707"));
        assert!(SecretKey::from_material(b"short").is_err());
    }
}
