//! Which backups to keep: `keep: {last: N, daily: N}`.

use std::collections::BTreeSet;

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

/// The ids to delete so that only what `keep` asks for remains. `ids` are backup ids in
/// any order; since ids sort by time, the newest is the greatest. Keeping nothing at all
/// (both zero) keeps everything: a plan without retention deletes nothing.
pub fn to_delete(ids: &[String], keep: Keep) -> Vec<String> {
    if keep.last == 0 && keep.daily == 0 {
        return Vec::new();
    }
    let mut newest_first: Vec<&String> = ids.iter().collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    let mut kept: BTreeSet<&String> = newest_first.iter().take(keep.last).copied().collect();
    let mut days = BTreeSet::new();
    for id in &newest_first {
        if days.len() == keep.daily {
            break;
        }
        if days.insert(day(id)) {
            kept.insert(id);
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
    fn no_retention_deletes_nothing() {
        let all = ids(&["20260101-000000-000-east"]);
        assert!(to_delete(&all, Keep::default()).is_empty());
        assert!(to_delete(&[], Keep { last: 1, daily: 1 }).is_empty());
    }
}
