//! The single integration-test binary: everything links once.
//! PostgreSQL halves run when `DATABASE_URL` points at PostgreSQL (see build.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod authz;
mod authz_matrix;
mod browser;
mod catalog;
mod ddi;
mod devices;
mod dmf;
mod downloads;
mod field_differences;
mod firmware;
mod health;
mod integrity;
mod migrations;
mod nul;
mod openapi;
mod operations;
mod outbox;
mod people;
mod procedures;
mod process;
mod races;
mod scrub;
mod sealing;
mod sessions;
mod storage_full;
mod store_identity;
mod timers;
mod ui;
mod webdriver;
