//! Which backups to keep: `keep: {last: N, daily: N}`, for each source region on its own.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keep {
    /// The N newest backups.
    #[serde(default)]
    pub last: usize,
    /// The newest backup of each of the N most recent days (UTC) that have one.
    #[serde(default)]
    pub daily: usize,
}

/// The day (`YYYYMMDD`, UTC) of a backup id; ids start with their time (see `backup::backup_id`).
fn day(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The region a backup id names (what follows its time, see `backup::backup_id`): the
/// cluster it was taken from. An id drover did not make is a source of its own.
fn source_region(id: &str) -> &str {
    match crate::backup::backup_time(id) {
        Some(_) => id.get(20..).unwrap_or_default(),
        None => id,
    }
}

/// The ids to delete so that only what `keep` asks for remains, the rules applied to each
/// source region's backups on their own: after a failover, the new primary's scheduled
/// backups must not push out the newest backups of the cluster that was lost. `ids` are
/// backup ids in any order; since ids sort by time, the newest is the greatest. Keeping
/// nothing at all (both zero) keeps everything: a plan without retention deletes nothing.
pub fn to_delete(ids: &[String], keep: Keep) -> Vec<String> {
    if keep.last == 0 && keep.daily == 0 {
        return Vec::new();
    }
    let mut by_region: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for id in ids {
        by_region.entry(source_region(id)).or_default().push(id);
    }
    let mut kept: BTreeSet<&String> = BTreeSet::new();
    for mut newest_first in by_region.into_values() {
        newest_first.sort_by(|a, b| b.cmp(a));
        kept.extend(newest_first.iter().take(keep.last).copied());
        let mut days = BTreeSet::new();
        for id in &newest_first {
            if days.len() == keep.daily {
                break;
            }
            if days.insert(day(id)) {
                kept.insert(id);
            }
        }
    }
    let mut delete: Vec<String> = ids.iter().filter(|id| !kept.contains(id)).cloned().collect();
    delete.sort();
    delete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keeps_the_last_n() {
        let all = ids(&["20260101-000000-000-east", "20260101-010000-000-east", "20260101-020000-000-east"]);
        assert_eq!(to_delete(&all, Keep { last: 2, daily: 0 }), ids(&["20260101-000000-000-east"]));
        assert_eq!(to_delete(&all, Keep { last: 5, daily: 0 }), Vec::<String>::new());
    }

    #[test]
    fn keeps_the_newest_of_each_recent_day() {
        let all = ids(&[
            "20260101-080000-000-east",
            "20260101-200000-000-east",
            "20260102-080000-000-east",
            "20260103-080000-000-east",
            "20260103-090000-000-east",
        ]);
        // last 1 keeps 0103-09; daily 2 keeps 0103-09 and 0102-08.
        assert_eq!(
            to_delete(&all, Keep { last: 1, daily: 2 }),
            ids(&["20260101-080000-000-east", "20260101-200000-000-east", "20260103-080000-000-east"])
        );
        // daily 3 also keeps the newest of 0101.
        assert_eq!(
            to_delete(&all, Keep { last: 0, daily: 3 }),
            ids(&["20260101-080000-000-east", "20260103-080000-000-east"])
        );
    }

    #[test]
    fn each_source_region_keeps_its_own_newest() {
        // East was primary and backed up daily until it was lost on the 3rd; west, promoted,
        // has since taken five scheduled backups.
        let mut all = ids(&["20260101-000000-000-east", "20260102-000000-000-east", "20260103-000000-000-east"]);
        all.extend((1..=5).map(|h| format!("20260103-{h:02}0000-000-west")));
        let delete = to_delete(&all, Keep { last: 2, daily: 0 });
        assert_eq!(
            delete,
            ids(&[
                "20260101-000000-000-east",
                "20260103-010000-000-west",
                "20260103-020000-000-west",
                "20260103-030000-000-west"
            ])
        );
        // A region named with a dash is one region, not a prefix of another's.
        let dashed = ids(&["20260101-000000-000-us-east", "20260102-000000-000-us-east", "20260102-000000-000-east"]);
        assert_eq!(to_delete(&dashed, Keep { last: 1, daily: 0 }), ids(&["20260101-000000-000-us-east"]));
    }

    #[test]
    fn no_retention_deletes_nothing() {
        let all = ids(&["20260101-000000-000-east"]);
        assert!(to_delete(&all, Keep::default()).is_empty());
        assert!(to_delete(&[], Keep { last: 1, daily: 1 }).is_empty());
    }
}
