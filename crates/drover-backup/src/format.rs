//! What a backup is on disk: an index naming every object, and the objects themselves,
//! content-addressed and compressed (and encrypted, for Secrets). See docs/backup.md.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::{digest, hkdf, hmac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;

/// Bumped when a reader of the old format could not read the new one. 2: each sealed
/// Secret is bound to its backup and entry (`Binding`); a format-1 backup still restores.
pub const FORMAT: u32 = 2;

/// The largest index read (about a million objects): a bigger one is refused unread.
pub const MAX_INDEX_BYTES: u64 = 512 << 20;
/// The largest stored object read. Kubernetes refuses objects over about 1.5 MiB (etcd's
/// request limit), so anything near this is not an object drover wrote.
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;
/// The most an object's gzip may inflate to: a gzip bomb stops here, before it is held.
pub const MAX_DECODED_BYTES: u64 = 64 << 20;

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

/// The object back from its stored bytes, refused if it inflates past `MAX_DECODED_BYTES`.
pub fn decode(bytes: &[u8]) -> Result<Value, Error> {
    decode_within(bytes, MAX_DECODED_BYTES)
}

/// The object back from its stored bytes, refused once it inflates past `limit` bytes:
/// the inflater is read through a bound, so no more than `limit + 1` bytes are ever held.
pub fn decode_within(bytes: &[u8], limit: u64) -> Result<Value, Error> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit.saturating_add(1))
        .read_to_end(&mut json)
        .map_err(|e| Error::Corrupt(format!("not gzip: {e}")))?;
    if json.len() as u64 > limit {
        return Err(Error::Corrupt(format!(
            "it inflates to more than {limit} bytes (the limit): not an object drover wrote"
        )));
    }
    serde_json::from_slice(&json).map_err(|e| Error::Corrupt(format!("not JSON: {e}")))
}

/// What a sealed Secret is bound to, as the cipher's associated data: the backup and the
/// entry it was taken as. A sealed blob moved to another entry, or into another backup
/// (an older value of the same Secret), then fails to open, though its hash still matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding(Vec<u8>);

impl Binding {
    /// Entry `entry` of backup `backup`, as format 2 binds it.
    pub fn entry(backup: &str, entry: &Entry) -> Binding {
        let mut aad = b"drover-backup v2".to_vec();
        let namespace = entry.namespace.as_deref();
        // Each part length-prefixed, so no two identities give the same bytes.
        for part in
            [Some(backup), Some(entry.group.as_str()), Some(entry.kind.as_str()), namespace, Some(entry.name.as_str())]
        {
            match part {
                Some(part) => {
                    aad.push(1);
                    aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
                    aad.extend_from_slice(part.as_bytes());
                }
                None => aad.push(0),
            }
        }
        Binding(aad)
    }

    /// How an entry of `index` is bound: a format-1 backup bound every Secret to the same
    /// constant, so its Secrets open wherever they are moved (retake such a backup).
    pub fn of(index: &Index, entry: &Entry) -> Binding {
        if index.format < 2 { Binding(b"drover-backup v1".to_vec()) } else { Binding::entry(&index.id, entry) }
    }
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

    /// Encrypts `plain`, bound to `binding`. The nonce is a keyed hash of the binding and
    /// the plaintext, so the same Secret in the same place encrypts to the same bytes, and
    /// a nonce is shared only by identical plaintexts under identical associated data
    /// (never one nonce under two associated data, which would give Poly1305's one-time
    /// key away).
    pub fn seal(&self, plain: &[u8], binding: &Binding) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&self.nonce_key);
        context.update(&(binding.0.len() as u64).to_be_bytes());
        context.update(&binding.0);
        context.update(plain);
        let tag = context.sign();
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&tag.as_ref()[..12]);
        let mut out = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&binding.0), &mut out)
            .expect("sealing in memory");
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&out);
        stored
    }

    /// Decrypts what `seal` made under the same binding; any other binding fails.
    pub fn open(&self, stored: &[u8], binding: &Binding) -> Result<Vec<u8>, Error> {
        if stored.len() < 12 {
            return Err(Error::Corrupt("encrypted object too short".into()));
        }
        let nonce = Nonce::try_assume_unique_for_key(&stored[..12]).expect("12 bytes");
        let mut buf = stored[12..].to_vec();
        let plain = self.aead.open_in_place(nonce, Aad::from(&binding.0), &mut buf).map_err(|_| {
            Error::Corrupt("a sealed Secret that does not open with this key as this entry of this backup".into())
        })?;
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

    fn secret(namespace: &str, name: &str) -> Entry {
        Entry {
            group: String::new(),
            version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
            namespace: Some(namespace.into()),
            name: name.into(),
            hash: String::new(),
            size: 0,
            encrypted: true,
        }
    }

    #[test]
    fn sealing_is_deterministic_and_needs_the_key() {
        let key = SecretKey::from_material(&[7u8; 32]).unwrap();
        let other = SecretKey::from_material(&[8u8; 32]).unwrap();
        let at = Binding::entry("20261205-201507-123-east", &secret("shop", "db"));
        let sealed = key.seal(b"password", &at);
        assert_eq!(sealed, key.seal(b"password", &at));
        assert_ne!(sealed, key.seal(b"passwore", &at));
        assert_eq!(key.open(&sealed, &at).unwrap(), b"password");
        assert!(other.open(&sealed, &at).is_err());
        assert_ne!(key.id(), other.id());
        assert!(!format!("{key:?}").contains("0707"));
        assert!(SecretKey::from_material(b"short").is_err());
    }

    #[test]
    fn a_sealed_secret_opens_only_where_it_was_sealed() {
        let key = SecretKey::from_material(&[7u8; 32]).unwrap();
        let backup = "20261205-201507-123-east";
        let sealed = key.seal(b"password", &Binding::entry(backup, &secret("shop", "db")));
        for (backup, namespace, name) in
            [(backup, "shop", "api"), (backup, "shop2", "db"), ("20261204-201507-123-east", "shop", "db")]
        {
            let elsewhere = Binding::entry(backup, &secret(namespace, name));
            let err = key.open(&sealed, &elsewhere).unwrap_err().to_string();
            assert!(err.contains("does not open with this key as this entry"), "{err}");
        }
        // The same plaintext elsewhere gets its own nonce (the first 12 bytes).
        let moved = key.seal(b"password", &Binding::entry(backup, &secret("shop", "api")));
        assert_ne!(sealed[..12], moved[..12]);
    }

    #[test]
    fn a_format_1_backup_opens_with_its_constant_binding() {
        // Sealed as format 1 sealed every Secret: the nonce a keyed hash of the plaintext
        // alone, the associated data the constant.
        let key = SecretKey::from_material(&[7u8; 32]).unwrap();
        let v1 = Binding(b"drover-backup v1".to_vec());
        let tag = hmac::sign(&key.nonce_key, b"password");
        let mut out = b"password".to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::try_assume_unique_for_key(&tag.as_ref()[..12]).unwrap(),
                Aad::from(b"drover-backup v1"),
                &mut out,
            )
            .unwrap();
        let stored = [&tag.as_ref()[..12], &out[..]].concat();
        let index = Index {
            format: 1,
            id: "20261205-201507-123-east".into(),
            created: String::new(),
            plan: "shop".into(),
            region: "east".into(),
            namespaces: vec![],
            selector: None,
            key_id: None,
            skipped_groups: vec![],
            objects: vec![],
        };
        assert_eq!(Binding::of(&index, &secret("shop", "db")), v1);
        assert_eq!(key.open(&stored, &Binding::of(&index, &secret("shop", "db"))).unwrap(), b"password");
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_limit() {
        let big = serde_json::to_vec(&json!({"data": "x".repeat(10_000)})).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&big).unwrap();
        let bytes = gz.finish().unwrap();
        assert!(decode_within(&bytes, big.len() as u64).is_ok(), "exactly at the limit is fine");
        let err = decode_within(&bytes, big.len() as u64 - 1).unwrap_err().to_string();
        assert!(err.contains("inflates to more than"), "{err}");
    }
}
