//! What users do with a repository: back up and restore, compare, forget,
//! prune, check, repair and measure. Each operation takes a `&Repository`
//! and returns a typed report for the front end to render.

pub mod backup;
pub mod check;
pub mod copy;
pub mod diff;
pub mod forget;
pub mod fsmeta;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod stats;
pub mod walk;
