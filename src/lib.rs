//! devicehub: a firmware delivery server. See `README.md` and `../shared/design.md`.
//!
//! # Layers (what may import what)
//!
//! ```text
//!  doors:  http (REST, DDI, UI)      jobs (workers, timers)      [amqp (DMF)]
//!              \                        |                        /
//!               `-------------> service (use-cases, rights, the session engine)
//!                                   |            \
//!                          db (diesel)    pipeline (steps)
//!                                   \        /
//!                           storage (object_store)    domain (pure rules, no I/O)
//! ```
//!
//! - `domain` is pure: no actix, diesel, tokio or object_store; it imports nothing above.
//! - `service` is the only caller of `db`; rights are checked there, once.
//! - The doors (`http`, `jobs`, later `amqp`) and `pipeline` never name `diesel` or
//!   `crate::db`; `pipeline` knows no `service` either (the output cache is a trait).
//! - Only `storage` names `object_store` types.
//!
//! The `layer_rules` test below checks these rules on the source tree; `cargo test` (and CI)
//! fails when a door, a job or the pipeline names the database directly.

pub mod amqp;
pub mod cli;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod pipeline;
pub mod service;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod time;

#[cfg(test)]
mod layer_rules;
