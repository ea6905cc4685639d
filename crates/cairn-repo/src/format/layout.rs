//! Where every object lives: the one place that builds repository keys
//! and parses them back (docs/FORMAT.md section 3).
//!
//! ```text
//! config                     packs/<hh>/<pack id>     index/<segment id>
//! snapshots/<snapshot id>    locks/<run>-<seq>        plans/<plan id>[.wait]
//! ```

use cairn_chunk::Id;

/// The key of the repository config.
pub const CONFIG: &str = "config";

/// The kinds of object named by an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A pack file.
    Pack,
    /// An index segment.
    Index,
    /// A snapshot.
    Snapshot,
    /// A prune plan (not its `.wait`).
    Plan,
    /// A key slot of an encrypted repository.
    Key,
}

impl FileType {
    /// The prefix every key of this type starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            FileType::Pack => "packs/",
            FileType::Index => "index/",
            FileType::Snapshot => "snapshots/",
            FileType::Plan => "plans/",
            FileType::Key => "keys/",
        }
    }

    /// What users call it, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            FileType::Pack => "pack",
            FileType::Index => "index segment",
            FileType::Snapshot => "snapshot",
            FileType::Plan => "prune plan",
            FileType::Key => "key slot",
        }
    }
}

/// The key of object `id` of type `ft`. Packs fan out over 256 directories
/// by their first two hex digits.
pub fn key(ft: FileType, id: &Id) -> String {
    match ft {
        FileType::Pack => {
            let h = id.to_hex();
            format!("packs/{}/{h}", &h[..2])
        }
        _ => format!("{}{id}", ft.prefix()),
    }
}

/// The id a key of type `ft` names; `None` for anything else under the
/// prefix (a `.wait`, a stray file).
pub fn parse(ft: FileType, key: &str) -> Option<Id> {
    let rest = key.strip_prefix(ft.prefix())?;
    let name = match ft {
        FileType::Pack => {
            let (fan, name) = rest.split_once('/')?;
            if !name.starts_with(fan) || fan.len() != 2 {
                return None;
            }
            name
        }
        _ => rest,
    };
    name.parse().ok()
}

/// The prefix of lock objects.
pub const LOCKS: &str = "locks/";

/// The key of refresh `seq` of a backup run's lock.
pub fn lock(run: &str, seq: u64) -> String {
    format!("{LOCKS}{run}-{seq:08}")
}

/// The run a lock key names (`locks/<run>-<seq>`).
pub fn lock_run(key: &str) -> Option<&str> {
    let name = key.strip_prefix(LOCKS)?;
    Some(name.rsplit_once('-')?.0)
}

/// The key of the list of backups plan `id` waits for.
pub fn plan_wait(id: &Id) -> String {
    format!("{}{id}.wait", FileType::Plan.prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_strays_are_ignored() {
        let id = Id::of(b"x");
        for ft in [
            FileType::Pack,
            FileType::Index,
            FileType::Snapshot,
            FileType::Plan,
        ] {
            assert_eq!(parse(ft, &key(ft, &id)), Some(id), "{ft:?}");
        }
        let h = id.to_hex();
        assert_eq!(key(FileType::Pack, &id), format!("packs/{}/{h}", &h[..2]));
        assert_eq!(parse(FileType::Plan, &plan_wait(&id)), None);
        assert_eq!(parse(FileType::Pack, &format!("packs/zz/{h}")), None);
        assert_eq!(parse(FileType::Index, "index/.tmp-1-2"), None);
        assert_eq!(lock("abcd", 3), "locks/abcd-00000003");
        assert_eq!(lock_run(&lock("abcd", 3)), Some("abcd"));
    }
}
