//! `r1 open`: log a browser into the daemon's web UI with a single-use code.

use std::path::Path;

use clap::Args;
use r1_client::{ClientError, ConnectOptions};

use crate::output;

/// Open the web UI in your browser. A single-use login code, valid for 60 seconds,
/// goes in the URL's fragment (never sent to any server); the page trades it for the
/// token and scrubs it from the address bar. The long-lived token never appears in a URL.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    print_url: bool,
}

/// Runs `r1 open`; returns the exit code.
pub fn run(home: &Path, args: OpenArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("r1: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(open(home, &args)) {
        Ok(()) => 0,
        Err(e) => output::fail(&e, false),
    }
}

async fn open(home: &Path, args: &OpenArgs) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(&ConnectOptions::new(home)).await?;
    let (code, _) = client.mint_login_code().await?;
    let url = format!("{}/#code={code}", client.registration().url);
    if args.print_url {
        output::line(&url);
        return Ok(());
    }
    let opened = std::process::Command::new("xdg-open")
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if opened {
        eprintln!("opened the r1 web UI in your browser (the login code works once, for 60 s)");
    } else {
        eprintln!("could not start a browser; open this URL (it works once, for 60 s):");
        output::line(&url);
    }
    Ok(())
}
