//! `r1 open`: log a browser into the daemon's web UI with a single-use code.

use std::path::Path;

use clap::Args;
use r1_client::{ClientError, ConnectOptions, Transport};

use crate::output;

/// Open the web UI in your browser. A single-use login code, valid for 60 seconds,
/// goes in the URL's fragment (never sent to any server); the page trades it for the
/// token and scrubs it from the address bar. The long-lived token never appears in a URL.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    print_url: bool,
    /// Serve the UI on a local port relayed to the daemon's unix socket, for a daemon
    /// reached only through its socket (an SSH-forwarded one: `--sock` / `R1_SOCK`).
    /// Runs until stopped (Ctrl+C); the port answers only to its own pages.
    #[arg(long)]
    via_socket: bool,
}

/// Runs `r1 open`; returns the exit code.
pub fn run(home: &Path, args: OpenArgs) -> i32 {
    let rt = match crate::output::runtime(0) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(open(home, &args)) {
        Ok(()) => 0,
        Err(e) => output::fail(&e, false),
    }
}

async fn open(home: &Path, args: &OpenArgs) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(&ConnectOptions::new(home)).await?;
    let relay = if args.via_socket {
        let Transport::Unix(sock) = client.transport() else {
            return Err(ClientError::Protocol(
                "--via-socket needs the unix socket, not --tcp".into(),
            ));
        };
        let relay = crate::via_socket::Relay::bind(sock).await.map_err(|e| {
            ClientError::Unreachable(format!("cannot listen on a loopback port: {e}"))
        })?;
        Some(relay)
    } else {
        None
    };
    let (code, _) = client.mint_login_code().await?;
    let base = match &relay {
        Some(r) => r.url(),
        None => client.registration().url.clone(),
    };
    let url = format!("{base}/#code={code}");
    if let Some(relay) = relay {
        if args.print_url {
            output::line(&url);
        } else if !open_browser(&url) {
            eprintln!("could not start a browser; open this URL (it works once, for 60 s):");
            output::line(&url);
        }
        eprintln!(
            "serving the r1 web UI of the daemon at {} on {}; Ctrl+C stops it",
            client.registration().sock,
            relay.url()
        );
        tokio::select! {
            _ = relay.run() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return Ok(());
    }
    if args.print_url {
        output::line(&url);
        return Ok(());
    }
    if open_browser(&url) {
        eprintln!("opened the r1 web UI in your browser (the login code works once, for 60 s)");
    } else {
        eprintln!("could not start a browser; open this URL (it works once, for 60 s):");
        output::line(&url);
    }
    Ok(())
}

fn open_browser(url: &str) -> bool {
    std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
