//! What a backup store hands back: an index (`backups/<id>/index.json`) and objects
//! (gzip of JSON, or sealed Secrets), read with drover-backup's own functions.
#![no_main]

use std::sync::OnceLock;

use drover_backup::backup::backup_time_ms;
use drover_backup::format::{self, Index, SecretKey};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::from_material(b"fuzzing key material, 32+ bytes long").expect("a valid key"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = serde_json::from_slice::<Index>(data) {
        let _ = backup_time_ms(&index.id);
        for entry in &index.objects {
            let _ = entry.label();
        }
        let ids: Vec<String> = index.objects.iter().map(|e| e.name.clone()).chain([index.id.clone()]).collect();
        let _ = drover_backup::retention::to_delete(&ids, drover_backup::Keep { last: 1, daily: 2 });
    }
    // A plain object: what decodes re-encodes to the same value.
    if let Ok(object) = format::decode(data) {
        let canonical = format::canonical(object);
        assert_eq!(format::decode(&format::encode(&canonical)).expect("drover's own encoding decodes"), canonical);
    }
    // A sealed Secret: only the key's own sealing opens.
    let _ = key().open(data);
    assert_eq!(key().open(&key().seal(data)).expect("sealed with the key"), data);
});
