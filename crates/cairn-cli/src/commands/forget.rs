//! `cairn forget`: remove snapshots by id or by a retention policy.
//!
//! Only snapshot files are deleted; the data they referenced stays in the
//! repository until a prune frees what no remaining snapshot uses.

use anyhow::{bail, Result};
use cairn_repo::ops::forget::{self, GroupPlan, Policy};
use cairn_repo::ops::prune::{prune, PruneOptions};
use serde_json::{json, Value};

use super::maintain::{print_prune, DEFAULT_MAX_UNUSED};
use crate::args::{Cli, ForgetArgs};
use crate::location;
use crate::output::Out;

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
            let plans = forget::plan_policy(policy, &all, &filter)?;
            // Only now: a refusal must stay the one line on stderr.
            out.info(&format!("applying policy: keep {}", policy.describe()));
            plans
        }
        None => {
            let chosen = forget::resolve_ids(&all, &list.damaged, &args.snapshots, &filter)?;
            forget::plan_ids(&all, &chosen)
        }
    };

    let removed: usize = plans.iter().map(|p| p.remove.len()).sum();
    if !args.dry_run {
        forget::forget(&repo, &plans)?;
    }

    let pruned = if args.prune {
        let opts = PruneOptions {
            max_unused_percent: DEFAULT_MAX_UNUSED,
            dry_run: args.dry_run,
            segment_entries: cairn_repo::ops::prune::SEGMENT_ENTRIES,
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
    Ok(Some(policy))
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
            outln!();
        }
        outln!("{}", plan.key);
        outln!(
            "  {:<6}  {:<8}  {:<19}  reasons",
            "action",
            "id",
            "time (UTC)"
        );
        for (v, time) in &plan.keep {
            let reasons: Vec<String> = v.reasons.iter().map(ToString::to_string).collect();
            outln!(
                "  {:<6}  {:<8}  {:<19}  {}",
                "keep",
                v.id.short(),
                shown(time),
                reasons.join(", ")
            );
        }
        for (id, time) in &plan.remove {
            outln!("  {:<6}  {:<8}  {:<19}", "remove", id.short(), shown(time));
        }
    }
}
