//! Firmware-update sessions: one engine, several doors. A DDI action, a DMF action and a
//! seed-003 session are the same session.
//!
//! - `engine`: the only place that applies a transition (events, timers, new sessions, the
//!   jobs and notices a transition causes, in its transaction).
//! - `request`: the seed-003 use-cases (request, status, start, confirm, download, lists).
//! - `views`: what the doors render.

pub mod engine;
pub mod request;
pub mod views;
