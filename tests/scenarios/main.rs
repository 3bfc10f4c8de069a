//! End-to-end scenarios: the `coffer` binary against real trees, real files
//! and real SQLite, as an operator runs it. Each test makes its own store in a
//! temporary directory, so they run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

mod bad_input;
mod browse;
mod console;
mod crash;
mod golden;
mod hardware;
mod levels;
mod pool;
mod remote;
mod retention;
mod rotation;
mod roundtrip;
mod safety;
mod tape;
mod verify;
