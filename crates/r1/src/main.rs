//! `r1`: the daemon (`serve`) and its command-line clients (`ctl`, …).

mod acp;
mod chat;
mod ctl;
mod doctor;
mod mcp_cmd;
mod missions_cmd;
mod open_cmd;
mod ops_cmd;
mod output;
mod serve;
mod service;
mod sessions_cmd;
mod tui_cmd;
mod via_socket;
mod worktrees_cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// r1 hosts AI agent sessions in one per-user daemon; the CLI, a browser, an editor,
/// other agents over MCP and scripts over HTTP are all clients of the same sessions.
#[derive(Debug, Parser)]
#[command(name = "r1", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// The state directory (default: ~/.r1).
    #[arg(long, global = true, env = "R1_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Reach the daemon through this unix socket instead of the state directory's
    /// daemon.json (an SSH-forwarded socket: `ssh -L /tmp/r1.sock:/home/me/.r1/r1.sock
    /// host`). Never starts a daemon. The token is read from $R1_TOKEN_FILE, else from
    /// the state directory's `token`.
    #[arg(long, global = true, env = "R1_SOCK", value_name = "PATH")]
    sock: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground (clients start it on demand, detached), or
    /// install it as a login service (--install, --uninstall, --status).
    Serve(serve::ServeArgs),
    /// Control the daemon: discover, health, status, logs, shutdown, rotate-token, sessions.
    Ctl(ctl::CtlArgs),
    /// Chat with a session in the terminal (starts one unless --session is given).
    Chat(chat::ChatArgs),
    /// A full-screen terminal client: sessions, the streaming conversation, tool lanes
    /// and approvals (`r1 chat` stays the line-mode client for pipes).
    ///
    /// Starts a session in --workdir, attaches to --session, or else shows the newest
    /// live session (asking for a workdir when there is none). Works over SSH; honours
    /// NO_COLOR and falls back to 256 or 16 colours. Sessions keep running in the
    /// daemon after you quit.
    ///
    /// Keys: Enter sends, Alt-Enter adds a line; Esc or Ctrl-C cancels the running turn
    /// (neither quits); Ctrl-Q or :q quits; Ctrl-N / Ctrl-P switch session; Ctrl-T
    /// starts one (Tab completes its workdir); Ctrl-S pauses or resumes; Ctrl-K
    /// searches every session; Tab moves between panes (k kills the focused lane in the
    /// lanes pane); on an approval card y allows, n denies, a always allows the tool;
    /// ? or F1 shows every key. The mouse wheel scrolls; a click selects.
    Tui(tui_cmd::TuiArgs),
    /// Open the web UI in your browser (logs in with a single-use code).
    Open(open_cmd::OpenArgs),
    /// Check the state directory, token and daemon, and say what to fix.
    Doctor(doctor::DoctorArgs),
    /// Serve r1's sessions to other agents over MCP (`r1 mcp serve`, stdio).
    Mcp(mcp_cmd::McpArgs),
    /// Serve r1 to an editor over the Agent Client Protocol (stdio): Zed, JetBrains,
    /// Neovim. Each ACP session is an r1 session, with the same id.
    Acp(acp::AcpArgs),
    /// Deprecated: `r1 daemon start` is `r1 serve`, `status` is `r1 ctl status`,
    /// `stop` is `r1 ctl shutdown`.
    #[command(hide = true)]
    Daemon(DaemonArgs),
    /// Deprecated: `r1 mcp serve`.
    #[command(name = "mcp-serve", hide = true)]
    McpServe(mcp_cmd::ServeArgs),
}

/// The old `r1 daemon` verbs, kept working; each says on stderr what replaced it.
#[derive(Debug, clap::Args)]
struct DaemonArgs {
    #[command(subcommand)]
    verb: DaemonVerb,
}

#[derive(Debug, Subcommand)]
enum DaemonVerb {
    /// Deprecated: `r1 serve` (takes the same flags).
    Start(serve::ServeArgs),
    /// Deprecated: `r1 ctl status`.
    Status {
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Deprecated: `r1 ctl shutdown`.
    Stop {
        /// Seconds in-flight requests get to finish.
        #[arg(long, default_value_t = 5)]
        grace: u64,
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// The one-line hint a deprecated verb prints on stderr before doing what `new` does.
fn deprecated(old: &str, new: &str) {
    eprintln!("r1: `r1 {old}` is deprecated; use `r1 {new}`");
}

fn main() {
    let cli = Cli::parse();
    if let Some(sock) = cli.sock.as_ref().filter(|s| !s.as_os_str().is_empty()) {
        // Every client below reads it through `ConnectOptions::new`; set before any
        // thread starts.
        std::env::set_var("R1_SOCK", sock);
    }
    let home = cli.home.clone().unwrap_or_else(r1_client::default_home);
    let code = match cli.command {
        Command::Serve(args) => serve::run(&home, args),
        Command::Ctl(args) => ctl::run(&home, args),
        Command::Chat(args) => chat::run(&home, args),
        Command::Tui(args) => tui_cmd::run(&home, args),
        Command::Open(args) => open_cmd::run(&home, args),
        Command::Doctor(args) => doctor::run(&home, args),
        Command::Mcp(args) => mcp_cmd::run(&home, args),
        Command::Acp(args) => acp::run(&home, args),
        Command::Daemon(DaemonArgs { verb }) => match verb {
            DaemonVerb::Start(args) => {
                deprecated("daemon start", "serve");
                serve::run(&home, args)
            }
            DaemonVerb::Status { json } => {
                deprecated("daemon status", "ctl status");
                ctl::run(&home, ctl::CtlArgs::status(json))
            }
            DaemonVerb::Stop { grace, json } => {
                deprecated("daemon stop", "ctl shutdown");
                ctl::run(&home, ctl::CtlArgs::shutdown(grace, json))
            }
        },
        Command::McpServe(args) => {
            deprecated("mcp-serve", "mcp serve");
            mcp_cmd::run_serve(&home, args)
        }
    };
    std::process::exit(code);
}
