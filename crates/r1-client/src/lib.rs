//! The r1 client side: find the daemon (discovery), check it (probe and protocol
//! gate), start it when it is not running (connect-or-spawn), and talk to it over the
//! unix socket or loopback TCP with a typed client that implements [`r1_proto::Api`].

mod api;
mod discovery;
mod error;
mod http;
mod spawn;
mod sse;

pub use api::resolve_operation;
pub use discovery::{default_home, discover, env_sock, read_token, token_path};
pub use error::ClientError;
pub use http::{Client, EventStream, Transport};
pub use spawn::{connect, connect_or_spawn, probe, ConnectOptions};
pub use sse::{SseFrame, SseReader};
