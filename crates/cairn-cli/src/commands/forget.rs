//! `cairn forget`: remove snapshots by id or by a retention policy.
//!
//! Only snapshot files are deleted; the data they referenced stays in the
//! repository until a prune frees what no remaining snapshot uses.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use cairn_repo::ops::forget::{self, GroupKey, Policy, Verdict};
use cairn_repo::ops::prune::{prune, PruneOptions};
use cairn_repo::{Id, Snapshot};
use serde_json::{json, Value};

use super::maintain::{print_prune, DEFAULT_MAX_UNUSED};
use crate::args::{Cli, ForgetArgs};
use crate::location;
use crate::output::Out;

/// One group's outcome, newest first within `keep` and `remove`.
struct GroupPlan {
    key: GroupKey,
    keep: Vec<(Verdict, String)>,
    remove: Vec<(Id, String)>,
}

pub fn forget(cli: &Cli, out: &Out, args: &ForgetArgs) -> Result<u8> {
    let policy = policy_of(args)?;
    if policy.is_some() && !args.snapshots.is_empty() {
        bail!("forget: give snapshot ids or a --keep-* policy, not both");
    }
    let repo = location::open(cli)?;
    let filter = args.filter.filter();
    let list = repo.snapshot_list()?;
    let all = list.snapshots;

    let plans = match &policy {
        Some(policy) => {
            let considered: Vec<&(Id, Snapshot)> =
                all.iter().filter(|(_, s)| filter.matches(s)).collect();
            let plans = by_policy(policy, considered)?;
            // Only now: a refusal must stay the one line on stderr.
            out.info(&format!("applying policy: keep {}", policy.describe()));
            plans
        }
        None => {
            let chosen = forget::resolve_ids(&all, &list.damaged, &args.snapshots, &filter)?;
            let mut plans = by_id(&all, &chosen.valid);
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
    };

    let removed: usize = plans.iter().map(|p| p.remove.len()).sum();
    if !args.dry_run {
        for plan in &plans {
            for (id, _) in &plan.remove {
                repo.remove_snapshot(id)?;
            }
        }
    }

    let pruned = if args.prune {
        let opts = PruneOptions {
            max_unused_percent: DEFAULT_MAX_UNUSED,
            dry_run: args.dry_run,
        };
        Some(prune(&repo, &opts)?)
    } else {
        None
    };

    if out.json {
        out.json(&json!({
            "groups": plans.iter().map(group_json).collect::<Vec<Value>>(),
            "removed": removed,
            "dry_run": args.dry_run,
            "prune": pruned,
        }))?;
        return Ok(0);
    }
    print_plans(&plans);
    out.info(&match (args.dry_run, args.prune) {
        (true, _) => format!("would remove {removed} snapshot(s) (dry run: nothing was removed)"),
        (false, true) => format!("removed {removed} snapshot(s)"),
        (false, false) => format!("removed {removed} snapshot(s); run prune to free their data"),
    });
    if let Some(r) = &pruned {
        print_prune(out, args.dry_run, r);
    }
    Ok(0)
}

/// The policy the flags describe; `None` when no `--keep-*` flag was given.
fn policy_of(args: &ForgetArgs) -> Result<Option<Policy>> {
    let counts = [
        args.keep_last,
        args.keep_hourly,
        args.keep_daily,
        args.keep_weekly,
        args.keep_monthly,
        args.keep_yearly,
    ];
    if counts.iter().all(Option::is_none) && args.keep_tags.is_empty() {
        if args.snapshots.is_empty() {
            bail!(
                "forget: nothing to do: name snapshots to remove or give a policy \
                 (--keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly N, --keep-tag T)"
            );
        }
        return Ok(None);
    }
    let [last, hourly, daily, weekly, monthly, yearly] = counts.map(|c| c.unwrap_or(0));
    let policy = Policy {
        last,
        hourly,
        daily,
        weekly,
        monthly,
        yearly,
        tags: args.keep_tags.clone(),
    };
    if policy.is_empty() {
        bail!("forget: every --keep-* count is 0, so the policy would remove every snapshot; refusing");
    }
    Ok(Some(policy))
}

/// Apply the policy per group. A group the policy would empty (say a
/// `--keep-tag` that no snapshot carries) stops the whole command before
/// anything is removed: emptying a group is done by naming its snapshots.
fn by_policy(policy: &Policy, considered: Vec<&(Id, Snapshot)>) -> Result<Vec<GroupPlan>> {
    let mut plans = Vec::new();
    for (key, members) in forget::group(considered) {
        let candidates: Vec<_> = members
            .iter()
            .map(|(id, s)| forget::candidate(id, s))
            .collect();
        let time_of = |id: &Id| -> String {
            members
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s.time.clone())
                .unwrap_or_default()
        };
        let verdicts = forget::apply(policy, &candidates);
        if !verdicts.iter().any(Verdict::keep) {
            bail!(
                "forget: the policy keeps no snapshot of {}; refusing to remove all {} of them (name them by id to do that)",
                describe(&key),
                verdicts.len()
            );
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

/// The named snapshots, grouped as the policy would group them.
fn by_id(all: &[(Id, Snapshot)], chosen: &BTreeSet<Id>) -> Vec<GroupPlan> {
    forget::group(all.iter().filter(|(id, _)| chosen.contains(id)))
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
        .collect()
}

fn describe(key: &GroupKey) -> String {
    let paths: Vec<String> = key.paths.iter().map(|p| p.display().to_string()).collect();
    format!(
        "volume {}, host {}, paths {}",
        key.volume,
        key.host,
        paths.join(" ")
    )
}

fn group_json(plan: &GroupPlan) -> Value {
    json!({
        "volume": plan.key.volume,
        "host": plan.key.host,
        "paths": plan.key.paths,
        "keep": plan.keep.iter().map(|(v, time)| json!({
            "id": v.id.to_hex(),
            "time": time,
            "reasons": v.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "remove": plan.remove.iter().map(|(id, time)| json!({
            "id": id.to_hex(),
            "time": time,
        })).collect::<Vec<_>>(),
    })
}

fn print_plans(plans: &[GroupPlan]) {
    let shown = |time: &str| {
        chrono::DateTime::parse_from_rfc3339(time)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| time.to_string())
    };
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}", describe(&plan.key));
        println!(
            "  {:<6}  {:<8}  {:<19}  reasons",
            "action", "id", "time (UTC)"
        );
        for (v, time) in &plan.keep {
            let reasons: Vec<String> = v.reasons.iter().map(ToString::to_string).collect();
            println!(
                "  {:<6}  {:<8}  {:<19}  {}",
                "keep",
                v.id.short(),
                shown(time),
                reasons.join(", ")
            );
        }
        for (id, time) in &plan.remove {
            println!("  {:<6}  {:<8}  {:<19}", "remove", id.short(), shown(time));
        }
    }
}
