//! r1 as an MCP server (DESIGN §8).
//!
//! The catalog's operations as MCP tools, generated from `r1_proto::OPERATIONS` and
//! called through `r1_proto::dispatch` on any [`r1_proto::Api`], served over stdio
//! (`r1 mcp serve`, through `r1-client`) and as streamable HTTP (`/mcp` in the
//! daemon, through [`http_service`]). Tool names use underscores (`r1_session_start`);
//! the dotted names (`r1.session.start`) are accepted as aliases on `tools/call`. Every
//! result is the envelope `{ok, data | error_code + error_message, links}`, returned as
//! `structuredContent` and as a JSON text item. [`Caps::Read`] lists and allows only
//! the tools that change nothing; [`Caps::Write`] adds the mutating ones and
//! [`Caps::Debug`] the introspection ones.
//!
//! Two tools are the server's own rather than operations: `r1_lanes_subscribe`
//! (`subscribe`: lane events as coalesced progress notifications) and `r1_cli_invoke`
//! (`cli`: r1's own CLI, allowlisted verbs only). Beyond tools: sessions as resources
//! with subscriptions and argument completion (`resources`), the daemon's log lines
//! about a connection's sessions as `notifications/message` (`logging`), and one
//! consent line per connection on its first mutating call (`consent`).

mod catalog;
mod cli;
mod consent;
mod dispatch;
mod legacy;
mod logging;
mod resources;
mod server;
mod subscribe;

pub use catalog::{catalog, print_tools, ToolHints, ToolInfo};
pub use cli::{CliInvokeParams, CliInvokeResult, CliRunner, ALLOWED_CTL_VERBS, ALLOWED_VERBS};
pub use dispatch::{call_tool, call_tool_result};
pub use server::{http_service, serve_stdio, HttpService, R1McpServer, ServerOptions};
pub use subscribe::{
    LanesSubscribeParams, LanesSubscribeResult, SubscriptionEnd, MAX_BATCH_BYTES, RATE_HZ,
    SEND_GRACE,
};

/// The MCP protocol revision the server advertises.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// What a client of the MCP server may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Caps {
    /// Only the tools that change nothing are listed and callable (the default).
    #[default]
    Read,
    /// Every tool but the introspection ones is listed and callable.
    Write,
    /// Everything `Write` allows, plus the introspection tools
    /// (`r1_session_debug_state`): for debugging r1 itself.
    Debug,
}

impl Caps {
    /// Whether a tool that is (not) `mutating` is listed and callable.
    pub fn allows(self, mutating: bool) -> bool {
        !mutating || self != Caps::Read
    }

    /// Whether the tool of `op` is listed and callable: read operations always,
    /// write operations under [`Caps::Write`] and [`Caps::Debug`], debug operations
    /// under [`Caps::Debug`] only.
    pub fn allows_op(self, op: &r1_proto::OperationInfo) -> bool {
        match op.capability {
            r1_proto::Capability::Read => true,
            r1_proto::Capability::Write => self != Caps::Read,
            r1_proto::Capability::Debug => self == Caps::Debug,
        }
    }

    /// The spelling in flags and config files: `read`, `write` or `debug`.
    pub fn as_str(self) -> &'static str {
        match self {
            Caps::Read => "read",
            Caps::Write => "write",
            Caps::Debug => "debug",
        }
    }
}

impl std::str::FromStr for Caps {
    type Err = String;

    fn from_str(s: &str) -> Result<Caps, String> {
        match s {
            "read" => Ok(Caps::Read),
            "write" => Ok(Caps::Write),
            "debug" => Ok(Caps::Debug),
            other => Err(format!(
                "unknown caps `{other}`: use `read`, `write` or `debug`"
            )),
        }
    }
}

/// Why the MCP server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The client's `initialize` failed or the connection closed before it.
    #[error("the MCP client did not complete initialization: {0}")]
    Initialize(String),
    /// The connection failed while serving.
    #[error("the MCP connection failed: {0}")]
    Transport(String),
}
