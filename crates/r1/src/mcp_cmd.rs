//! `r1 mcp`: r1 as an MCP server for other agents (DESIGN §8).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use r1_client::ConnectOptions;
use r1_mcp::Caps;
use tracing_subscriber::EnvFilter;

use crate::output;

/// Serve r1's sessions to other agents over the Model Context Protocol.
#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(subcommand)]
    verb: McpVerb,
}

#[derive(Debug, Subcommand)]
enum McpVerb {
    /// Serve the r1 tool catalog over stdio (for `.mcp.json`, Codex's `config.toml`, …),
    /// starting the daemon when it is not running. Only MCP messages go to stdout; logs
    /// go to stderr (level from `R1_LOG`, default `warn`).
    Serve(ServeArgs),
}

/// The flags of `r1 mcp serve` (and of the deprecated `r1 mcp-serve`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What the client may do: `read` lists and allows only the tools that change
    /// nothing; `write` also allows starting sessions, sending, cancelling, approving;
    /// `debug` adds the introspection tools (`r1_session_debug_state`).
    #[arg(long, value_enum, default_value_t = CapsArg::Read)]
    caps: CapsArg,
    /// Print the catalog (names, descriptions, input schemas) and exit.
    #[arg(long)]
    print_tools: bool,
    /// With --print-tools: print it as Markdown instead of JSON.
    #[arg(long, requires = "print_tools")]
    markdown: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CapsArg {
    Read,
    Write,
    Debug,
}

impl From<CapsArg> for Caps {
    fn from(c: CapsArg) -> Caps {
        match c {
            CapsArg::Read => Caps::Read,
            CapsArg::Write => Caps::Write,
            CapsArg::Debug => Caps::Debug,
        }
    }
}

/// Runs an `mcp` verb; returns the exit code.
pub fn run(home: &Path, args: McpArgs) -> i32 {
    match args.verb {
        McpVerb::Serve(serve) => run_serve(home, serve),
    }
}

/// Runs `r1 mcp serve`; returns the exit code.
pub fn run_serve(home: &Path, args: ServeArgs) -> i32 {
    let caps = Caps::from(args.caps);
    if args.print_tools {
        let text = r1_mcp::print_tools(caps, args.markdown);
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => 0,
            Err(_) => 1,
        };
    }
    // stdout carries the protocol, so every log line goes to stderr.
    let filter = EnvFilter::try_from_env("R1_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let rt = match crate::output::runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let client = match r1_client::connect_or_spawn(&ConnectOptions::new(home)).await {
            // A tool call made while the daemon restarts onto a new binary waits for it
            // (the socket path stays the same) instead of failing.
            Ok(c) => c.with_reconnect(std::time::Duration::from_secs(30)),
            Err(e) => return output::fail(&e, false),
        };
        tracing::info!(caps = caps.as_str(), "serving MCP on stdio");
        // `r1_cli_invoke` runs this very binary, on the same state directory.
        let opts = r1_mcp::ServerOptions {
            home: Some(home.to_path_buf()),
            cli: std::env::current_exe().ok(),
            ..r1_mcp::ServerOptions::default()
        };
        let server = r1_mcp::R1McpServer::new(Arc::new(client), caps, &opts, "stdio");
        match r1_mcp::serve_stdio(server).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("r1: {e}");
                1
            }
        }
    })
}
