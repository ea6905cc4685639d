//! Retention policies: which snapshots `forget` keeps, and why.
//!
//! The rules follow restic's `forget`. Snapshots are grouped by volume, host
//! and paths ([`group`]); within a group they are taken newest first and
//! each rule walks that list on its own:
//!
//! * `last N` keeps the N newest snapshots;
//! * `hourly/daily/weekly/monthly/yearly N` keeps the newest snapshot of each
//!   of the N most recent calendar hours (days, ISO weeks, months, years)
//!   that have a snapshot at all: a snapshot is kept when its period differs
//!   from that of the last snapshot this rule kept;
//! * `tag T` keeps every snapshot carrying tag T.
//!
//! A snapshot is kept if any rule keeps it, and each rule that does is
//! recorded as a [`Reason`]. Periods are calendar periods in UTC, the time
//! zone snapshots are stored in, so the result does not depend on where
//! `forget` runs. Everything here is a pure function of (id, time, tags);
//! deleting is the caller's business.
//! (Over 500 lines because of the hand-worked 20-snapshot table its tests
//! check the rules against; the code itself is half that.)

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use cairn_chunk::Id;
use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::Snapshot;

/// How many snapshots each rule keeps; 0 turns a rule off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest N.
    pub last: u32,
    /// The newest of each of the N most recent hours.
    pub hourly: u32,
    /// The newest of each of the N most recent days.
    pub daily: u32,
    /// The newest of each of the N most recent ISO weeks.
    pub weekly: u32,
    /// The newest of each of the N most recent months.
    pub monthly: u32,
    /// The newest of each of the N most recent years.
    pub yearly: u32,
    /// Every snapshot with one of these tags.
    pub tags: Vec<String>,
}

impl Policy {
    /// Whether no rule would keep anything: applying it would remove every
    /// snapshot, which is never what a user means.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.tags.is_empty()
    }

    /// A short description, as `forget` prints it ("last 2, daily 7").
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
        parts.extend(self.tags.iter().map(|t| format!("tag {t}")));
        parts.join(", ")
    }
}

/// The calendar periods a rule buckets snapshots by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// `2026-11-24 13:00`
    Hour,
    /// `2026-11-24`
    Day,
    /// ISO 8601 week, `2026-W48` (weeks start on Monday; the first week of a
    /// year is the one holding its first Thursday).
    Week,
    /// `2026-11`
    Month,
    /// `2026`
    Year,
}

impl Period {
    /// The period `t` falls in, as shown in reasons.
    pub fn label(self, t: &DateTime<Utc>) -> String {
        match self {
            Period::Hour => format!(
                "{:04}-{:02}-{:02} {:02}:00",
                t.year(),
                t.month(),
                t.day(),
                t.hour()
            ),
            Period::Day => format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
            Period::Week => {
                let w = t.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Period::Month => format!("{:04}-{:02}", t.year(), t.month()),
            Period::Year => format!("{:04}", t.year()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }
}

/// Why a snapshot is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// It is the n-th newest (1 = newest) and `last` reaches it.
    Last(u32),
    /// It is the newest snapshot of this period (label as [`Period::label`]).
    Period(Period, String),
    /// It carries this tag.
    Tag(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last(n) => write!(f, "last {n}"),
            Reason::Period(p, label) => write!(f, "{} {label}", p.name()),
            Reason::Tag(t) => write!(f, "tag {t}"),
        }
    }
}

/// What the policy looks at in a snapshot.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Snapshot id.
    pub id: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// The policy's verdict on one snapshot.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Snapshot id.
    pub id: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Every rule that keeps it; empty means it is removed.
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// Whether some rule keeps the snapshot.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Apply `policy` to one group of snapshots. The verdicts come newest first
/// (ties in time broken by id, highest first, so the order is total).
pub fn apply(policy: &Policy, candidates: &[Candidate]) -> Vec<Verdict> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    let mut verdicts: Vec<Verdict> = sorted
        .iter()
        .map(|c| Verdict {
            id: c.id,
            time: c.time,
            reasons: Vec::new(),
        })
        .collect();

    for (i, v) in verdicts.iter_mut().enumerate().take(policy.last as usize) {
        v.reasons.push(Reason::Last(i as u32 + 1));
    }
    for (period, count) in [
        (Period::Hour, policy.hourly),
        (Period::Day, policy.daily),
        (Period::Week, policy.weekly),
        (Period::Month, policy.monthly),
        (Period::Year, policy.yearly),
    ] {
        let mut left = count;
        let mut last_label: Option<String> = None;
        for v in verdicts.iter_mut() {
            if left == 0 {
                break;
            }
            let label = period.label(&v.time);
            if last_label.as_ref() != Some(&label) {
                v.reasons.push(Reason::Period(period, label.clone()));
                last_label = Some(label);
                left -= 1;
            }
        }
    }
    for (v, c) in verdicts.iter_mut().zip(&sorted) {
        for t in policy.tags.iter().filter(|t| c.tags.contains(t)) {
            v.reasons.push(Reason::Tag(t.clone()));
        }
    }
    verdicts
}

/// What makes snapshots one retention group: like restic's host + paths,
/// plus the volume.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// Volume name.
    pub volume: String,
    /// Host name.
    pub host: String,
    /// Source paths, as recorded.
    pub paths: Vec<PathBuf>,
}

impl GroupKey {
    /// The group `s` belongs to.
    pub fn of(s: &Snapshot) -> GroupKey {
        GroupKey {
            volume: s.volume.clone(),
            host: s.host.clone(),
            paths: s.paths.clone(),
        }
    }
}

/// Split snapshots into groups, ordered by key; each group keeps the input order.
pub fn group<'a, I>(snapshots: I) -> Vec<(GroupKey, Vec<&'a (Id, Snapshot)>)>
where
    I: IntoIterator<Item = &'a (Id, Snapshot)>,
{
    let mut groups: BTreeMap<GroupKey, Vec<&'a (Id, Snapshot)>> = BTreeMap::new();
    for entry in snapshots {
        groups
            .entry(GroupKey::of(&entry.1))
            .or_default()
            .push(entry);
    }
    groups.into_iter().collect()
}

/// The policy's view of a snapshot.
pub fn candidate(id: &Id, s: &Snapshot) -> Candidate {
    Candidate {
        id: *id,
        time: s.timestamp(),
        tags: s.tags.clone(),
    }
}

/// Snapshots named on the command line: readable ones, and damaged ones
/// (which can only be named by id, never by `latest`).
#[derive(Debug, Default)]
pub struct Chosen {
    /// Readable snapshots.
    pub valid: std::collections::BTreeSet<Id>,
    /// Damaged snapshot objects.
    pub damaged: std::collections::BTreeSet<Id>,
}

/// Resolve ids, prefixes and `latest` against the readable snapshots, and
/// ids that match none of them against the damaged ones, so that a damaged
/// snapshot can be removed by naming it.
pub fn resolve_ids(
    all: &[(Id, crate::Snapshot)],
    damaged: &[crate::Damaged],
    specs: &[String],
    filter: &crate::Filter,
) -> crate::Result<Chosen> {
    let mut chosen = Chosen::default();
    for spec in specs {
        match crate::format::snapshot::select(all, spec, filter) {
            Ok((id, _)) => {
                chosen.valid.insert(*id);
            }
            Err(crate::Error::NoSnapshot(_)) if spec != "latest" => {
                let lower = spec.to_ascii_lowercase();
                let hits: Vec<Id> = damaged
                    .iter()
                    .map(|d| d.id)
                    .filter(|id| id.to_hex().starts_with(&lower))
                    .collect();
                match hits.as_slice() {
                    [one] => {
                        chosen.damaged.insert(*one);
                    }
                    [] => return Err(crate::Error::NoSnapshot(spec.clone())),
                    _ => {
                        return Err(crate::Error::Ambiguous {
                            prefix: spec.clone(),
                            candidates: hits.iter().map(Id::short).collect::<Vec<_>>().join(", "),
                        })
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(chosen)
}

/// What forget does to one group: snapshots kept (with the rules that keep
/// them) and removed, newest first, each with its time.
#[derive(Clone, Debug)]
pub struct GroupPlan {
    /// The group.
    pub key: GroupKey,
    /// Kept snapshots and why.
    pub keep: Vec<(Verdict, String)>,
    /// Removed snapshots.
    pub remove: Vec<(Id, String)>,
}

/// Apply `policy` to the snapshots `filter` selects, per group. A group the
/// policy would empty (say a `--keep-tag` that no snapshot carries) stops
/// everything before anything is removed: emptying a group is done by
/// naming its snapshots.
pub fn plan_policy(
    policy: &Policy,
    all: &[(Id, Snapshot)],
    filter: &crate::Filter,
) -> crate::Result<Vec<GroupPlan>> {
    if policy.is_empty() {
        return Err(crate::Error::EmptyPolicy);
    }
    let considered = all.iter().filter(|(_, s)| filter.matches(s));
    let mut plans = Vec::new();
    for (key, members) in group(considered) {
        let candidates: Vec<_> = members.iter().map(|(id, s)| candidate(id, s)).collect();
        let time_of = |id: &Id| -> String {
            members
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s.time.clone())
                .unwrap_or_default()
        };
        let verdicts = apply(policy, &candidates);
        if !verdicts.iter().any(Verdict::keep) {
            return Err(crate::Error::PolicyEmptiesGroup {
                group: key.to_string(),
                count: verdicts.len(),
            });
        }
        let mut plan = GroupPlan {
            key,
            keep: Vec::new(),
            remove: Vec::new(),
        };
        for v in verdicts {
            let time = time_of(&v.id);
            if v.keep() {
                plan.keep.push((v, time));
            } else {
                plan.remove.push((v.id, time));
            }
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// The named snapshots, grouped as a policy would group them; damaged ones
/// form a group of their own.
pub fn plan_ids(all: &[(Id, Snapshot)], chosen: &Chosen) -> Vec<GroupPlan> {
    let mut plans: Vec<GroupPlan> = group(all.iter().filter(|(id, _)| chosen.valid.contains(id)))
        .into_iter()
        .map(|(key, members)| GroupPlan {
            key,
            keep: Vec::new(),
            // `all` is oldest first; show newest first like a policy does.
            remove: members
                .iter()
                .rev()
                .map(|(id, s)| (*id, s.time.clone()))
                .collect(),
        })
        .collect();
    if !chosen.damaged.is_empty() {
        plans.push(GroupPlan {
            key: GroupKey {
                volume: "(damaged snapshots)".into(),
                host: String::new(),
                paths: Vec::new(),
            },
            keep: Vec::new(),
            remove: chosen
                .damaged
                .iter()
                .map(|id| (*id, String::new()))
                .collect(),
        });
    }
    plans
}

/// Remove the snapshots the plans remove; how many.
pub fn forget(repo: &crate::Repository, plans: &[GroupPlan]) -> crate::Result<usize> {
    let mut removed = 0;
    for (id, _) in plans.iter().flat_map(|p| &p.remove) {
        repo.remove_snapshot(id)?;
        removed += 1;
    }
    Ok(removed)
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        write!(
            f,
            "volume {}, host {}, paths {}",
            self.volume,
            self.host,
            paths.join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Twenty snapshots, oldest first, numbered 1..=20 (the id is the number
    /// repeated). Worked out by hand (ISO weeks checked against a calendar):
    ///
    /// | n  | time (UTC)          | weekday | ISO week | tags  |
    /// |----|---------------------|---------|----------|-------|
    /// | 1  | 2023-05-10 12:00    | Wed     | 2023-W19 | keep  |
    /// | 2  | 2023-11-20 08:00    | Mon     | 2023-W47 |       |
    /// | 3  | 2024-06-01 10:00    | Sat     | 2024-W22 |       |
    /// | 4  | 2024-12-30 09:00    | Mon     | 2025-W01 |       |
    /// | 5  | 2024-12-31 22:00    | Tue     | 2025-W01 |       |
    /// | 6  | 2025-01-01 01:00    | Wed     | 2025-W01 |       |
    /// | 7  | 2025-02-14 12:00    | Fri     | 2025-W07 |       |
    /// | 8  | 2025-02-28 23:59    | Fri     | 2025-W09 |       |
    /// | 9  | 2025-03-01 00:01    | Sat     | 2025-W09 |       |
    /// | 10 | 2025-03-02 10:00    | Sun     | 2025-W09 |       |
    /// | 11 | 2025-03-03 09:00    | Mon     | 2025-W10 |       |
    /// | 12 | 2025-03-03 09:30    | Mon     | 2025-W10 | keep  |
    /// | 13 | 2025-03-03 14:00    | Mon     | 2025-W10 |       |
    /// | 14 | 2025-03-04 08:00    | Tue     | 2025-W10 |       |
    /// | 15 | 2025-03-04 08:10    | Tue     | 2025-W10 | other |
    /// | 16 | 2025-03-04 08:20    | Tue     | 2025-W10 |       |
    /// | 17 | 2025-03-04 09:05    | Tue     | 2025-W10 |       |
    /// | 18 | 2025-03-04 11:00    | Tue     | 2025-W10 |       |
    /// | 19 | 2025-03-05 07:00    | Wed     | 2025-W10 |       |
    /// | 20 | 2025-03-05 07:30    | Wed     | 2025-W10 |       |
    fn table() -> Vec<Candidate> {
        let rows: [(u8, &str, &[&str]); 20] = [
            (1, "2023-05-10T12:00:00Z", &["keep"]),
            (2, "2023-11-20T08:00:00Z", &[]),
            (3, "2024-06-01T10:00:00Z", &[]),
            (4, "2024-12-30T09:00:00Z", &[]),
            (5, "2024-12-31T22:00:00Z", &[]),
            (6, "2025-01-01T01:00:00Z", &[]),
            (7, "2025-02-14T12:00:00Z", &[]),
            (8, "2025-02-28T23:59:00Z", &[]),
            (9, "2025-03-01T00:01:00Z", &[]),
            (10, "2025-03-02T10:00:00Z", &[]),
            (11, "2025-03-03T09:00:00Z", &[]),
            (12, "2025-03-03T09:30:00Z", &["keep"]),
            (13, "2025-03-03T14:00:00Z", &[]),
            (14, "2025-03-04T08:00:00Z", &[]),
            (15, "2025-03-04T08:10:00Z", &["other"]),
            (16, "2025-03-04T08:20:00Z", &[]),
            (17, "2025-03-04T09:05:00Z", &[]),
            (18, "2025-03-04T11:00:00Z", &[]),
            (19, "2025-03-05T07:00:00Z", &[]),
            (20, "2025-03-05T07:30:00Z", &[]),
        ];
        rows.iter()
            .map(|(n, t, tags)| Candidate {
                id: Id([*n; 32]),
                time: DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc),
                tags: tags.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }

    fn kept(policy: &Policy) -> BTreeSet<u8> {
        apply(policy, &table())
            .iter()
            .filter(|v| v.keep())
            .map(|v| v.id.0[0])
            .collect()
    }

    fn set(ns: &[u8]) -> BTreeSet<u8> {
        ns.iter().copied().collect()
    }

    #[test]
    fn each_rule_keeps_the_hand_worked_set() {
        let p = |f: fn(&mut Policy)| {
            let mut p = Policy::default();
            f(&mut p);
            p
        };
        let cases: Vec<(&str, Policy, BTreeSet<u8>)> = vec![
            ("last 3", p(|p| p.last = 3), set(&[20, 19, 18])),
            // 19 shares 20's hour; 16 is the newest of 08:00-08:59 on 03-04.
            ("hourly 4", p(|p| p.hourly = 4), set(&[20, 18, 17, 16])),
            // Every hour that has a snapshot: all but 19, 15, 14 and 11,
            // which each share an hour with a newer one.
            (
                "hourly 100",
                p(|p| p.hourly = 100),
                set(&[20, 18, 17, 16, 13, 12, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
            ),
            ("daily 3", p(|p| p.daily = 3), set(&[20, 18, 13])),
            // 2025-W10, then W09 (10 is Sunday 03-02), then W07.
            ("weekly 3", p(|p| p.weekly = 3), set(&[20, 10, 7])),
            // 2024-12-30 and 2024-12-31 fall in 2025-W01 with 2025-01-01,
            // so 6 stands for that week and the fifth week is 2024-W22.
            ("weekly 5", p(|p| p.weekly = 5), set(&[20, 10, 7, 6, 3])),
            ("monthly 4", p(|p| p.monthly = 4), set(&[20, 8, 6, 5])),
            // Only three years have snapshots.
            ("yearly 10", p(|p| p.yearly = 10), set(&[20, 5, 2])),
            (
                "tag other",
                p(|p| p.tags = vec!["other".into()]),
                set(&[15]),
            ),
            (
                "last 2, daily 2, monthly 2, tag keep",
                p(|p| {
                    p.last = 2;
                    p.daily = 2;
                    p.monthly = 2;
                    p.tags = vec!["keep".into()];
                }),
                set(&[20, 19, 18, 12, 8, 1]),
            ),
        ];
        for (name, policy, expected) in cases {
            assert_eq!(kept(&policy), expected, "policy {name}");
            assert_eq!(policy.describe(), name);
        }
    }

    #[test]
    fn reasons_name_the_rule_and_period() {
        let policy = Policy {
            last: 2,
            hourly: 1,
            daily: 2,
            weekly: 1,
            monthly: 2,
            yearly: 1,
            tags: vec!["keep".into()],
        };
        let verdicts = apply(&policy, &table());
        let reasons = |n: u8| -> Vec<String> {
            verdicts
                .iter()
                .find(|v| v.id.0[0] == n)
                .unwrap()
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            reasons(20),
            [
                "last 1",
                "hourly 2025-03-05 07:00",
                "daily 2025-03-05",
                "weekly 2025-W10",
                "monthly 2025-03",
                "yearly 2025"
            ]
        );
        assert_eq!(reasons(19), ["last 2"]);
        assert_eq!(reasons(18), ["daily 2025-03-04"]);
        assert_eq!(reasons(8), ["monthly 2025-02"]);
        assert_eq!(reasons(12), ["tag keep"]);
        assert!(reasons(17).is_empty());
        let order: Vec<u8> = verdicts.iter().map(|v| v.id.0[0]).collect();
        assert_eq!(order, (1..=20).rev().collect::<Vec<u8>>(), "newest first");
    }

    #[test]
    fn an_empty_policy_is_recognised() {
        assert!(Policy::default().is_empty());
        assert!(!Policy {
            tags: vec!["x".into()],
            ..Policy::default()
        }
        .is_empty());
        assert!(apply(&Policy::default(), &table())
            .iter()
            .all(|v| !v.keep()));
    }
}
