//! devicehub: a firmware delivery server. See `README.md` and `../shared/design.md`.
//!
//! The shape: `domain` (pure rules) ← `service` (use-cases, the only caller of `db`) ←
//! doors (`http`, later `amqp`). `db` and `storage` hold what is durable.

pub mod cli;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod pipeline;
pub mod service;
pub mod settings;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod time;
