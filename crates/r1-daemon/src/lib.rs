//! The r1 daemon: the state directory, the listeners and their perimeter, the routes
//! of the wire API, and the hub that owns every session.

mod actor;
mod agent;
mod assets;
mod bus;
pub mod compact;
mod conn;
pub mod cortex;
mod engines;
mod error;
mod fsutil;
pub mod hooks;
mod hub;
mod index;
pub mod labels;
pub mod logs;
mod metrics;
mod missions;
mod perimeter;
mod permission;
mod reload;
mod restart;
mod routes;
pub mod search;
mod server;
mod session_stream;
mod sessions;
mod state;
mod status;
mod subscribers;
mod transition;
mod tui_host;
mod verify;
mod webdrive;
mod workdir;
mod worktree;
mod ws;

pub use hub::{DaemonInfo, Hub};
pub use restart::{build_id, RESTART_FAILED_ENV, START_ERROR_ENV};
pub use server::{serve, serve_with, ServeOptions};
pub use state::{
    check_private_dir, read_private_file, socket_path, Config, Limits, StartError, StateDir,
};
