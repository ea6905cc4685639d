//! The HTML pages, one module each.

pub mod browse;
pub mod diff;
pub mod history;
pub mod repo;
pub mod volumes;
