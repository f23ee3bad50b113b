//! Black-box tests of the real `r1` binary: each test gets its own `R1_HOME` and
//! talks to a real daemon over its real unix socket and loopback port.

// Tests may unwrap (STYLE.md §4): a panic is how a test fails. Daemons started by a
// test are reaped by `Daemon::drop`, which clippy cannot see through the loop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

mod agent;
mod catalog;
mod cli_approvals;
mod confinement;
mod core;
mod cortex;
mod faults;
mod files;
mod flow;
mod foundation;
mod hardening;
mod hooks;
mod manage;
mod missions;
mod ops;
mod perimeter;
mod providers;
mod real_programs;
mod reload;
mod remote;
mod restart;
mod search;
mod service;
mod sessions;
mod support;
mod tui;
mod usage;
mod web;
mod worktrees;
