//! `cairn key list | add | remove | passwd`.

use anyhow::{bail, Result};
use cairn_repo::format::crypto::{calibrate_iterations, Secret};
use cairn_repo::store::keys::{add_slot, list_slots, remove_slot};
use cairn_repo::{Id, Repository};
use serde_json::json;

use crate::args::{Cli, KeyArgs, KeyCommand};
use crate::keys::{new_secret, owner};
use crate::location;
use crate::output::Out;

pub fn key(cli: &Cli, out: &Out, args: &KeyArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    if !repo.codec().is_sealed() {
        return Err(cairn_repo::Error::NotEncrypted(repo.backend().location()).into());
    }
    match &args.what {
        KeyCommand::List => list(&repo, out),
        KeyCommand::Add(new) => {
            let id = add(&repo, &new_secret(new)?)?;
            report(out, "added", &id)
        }
        KeyCommand::Remove { id } => {
            let id = find(&repo, id)?;
            remove_slot(&repo, &id)?;
            report(out, "removed", &id)
        }
        KeyCommand::Passwd(new) => {
            let current = repo
                .unlocked_slot()
                .expect("an encrypted repository was unlocked by a slot");
            let id = add(&repo, &new_secret(new)?)?;
            remove_slot(&repo, &current)?;
            report(out, "replaced", &id)
        }
    }
}

fn add(repo: &Repository, secret: &Secret) -> Result<Id> {
    let iterations = match secret {
        Secret::Password(_) => calibrate_iterations(std::time::Duration::from_millis(500)),
        Secret::KeyFile(_) => 1,
    };
    Ok(add_slot(repo, secret, iterations, &owner())?)
}

fn report(out: &Out, what: &str, id: &Id) -> Result<u8> {
    if out.json {
        out.json(&json!({ what: id.to_hex() }))?;
    } else {
        out.info(&format!("{what} key {}", id.short()));
    }
    Ok(0)
}

/// A slot id from a full id or a unique prefix.
fn find(repo: &Repository, spec: &str) -> Result<Id> {
    let lower = spec.to_ascii_lowercase();
    if lower.len() < 4 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("invalid key id {spec:?}: use at least 4 hex digits (see `cairn key list`)");
    }
    let hits: Vec<Id> = list_slots(&**repo.backend())?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id.to_hex().starts_with(&lower))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(cairn_repo::Error::NoSuchKey(spec.to_string()).into()),
        _ => bail!("key id {spec:?} is ambiguous"),
    }
}

fn list(repo: &Repository, out: &Out) -> Result<u8> {
    let slots = list_slots(&**repo.backend())?;
    let current = repo.unlocked_slot();
    if out.json {
        let rows: Vec<_> = slots
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": id.to_hex(),
                    "current": Some(*id) == current,
                    "kind": s.kind,
                    "access": s.access,
                    "created": s.created,
                    "host": s.host,
                    "user": s.user,
                })
            })
            .collect();
        out.json(&json!({ "keys": rows }))?;
        return Ok(0);
    }
    outln!(
        " {:<8}  {:<9}  {:<20}  {:<12}  user",
        "id",
        "kind",
        "created",
        "host"
    );
    for (id, s) in &slots {
        let mark = if Some(*id) == current { '*' } else { ' ' };
        outln!(
            "{mark}{:<8}  {:<9}  {:<20}  {:<12}  {}",
            id.short(),
            s.kind,
            s.created,
            s.host,
            s.user
        );
    }
    out.info("* the key this command was unlocked with");
    Ok(0)
}
