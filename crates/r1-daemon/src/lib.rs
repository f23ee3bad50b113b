//! The r1 daemon: the state directory, the listeners and their perimeter, the routes
//! of the wire API, and the hub that owns every session.

mod actor;
mod agent;
mod assets;
mod bus;
mod conn;
mod engines;
mod error;
mod fsutil;
mod hub;
mod index;
mod metrics;
mod missions;
mod perimeter;
mod routes;
pub mod search;
mod server;
mod session_stream;
mod sessions;
mod state;
mod subscribers;
mod transition;
mod verify;
mod worktree;
mod ws;

pub use hub::{DaemonInfo, Hub};
pub use server::{serve, serve_with, ServeOptions};
pub use state::{
    check_private_dir, read_private_file, socket_path, Config, Limits, StartError, StateDir,
};
