//! A fresh r1 daemon for one feature file: its own temp `R1_HOME` (with `echo` as the
//! default engine, so no key in the environment changes what the scenarios see),
//! started in sidecar mode so its readiness is one line on a pipe, not a poll.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use r1_client::{Client, ConnectOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a daemon may take to listen: a cold start on a loaded 2-core machine
/// takes well under a second; this only bounds a daemon that will never come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a daemon may take to exit after `daemon.shutdown` before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running daemon and the temp directory holding its home and the scenarios'
/// workdirs; both go away with it.
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    home: PathBuf,
    /// A client of it over its unix socket.
    pub client: Client,
    workdirs: usize,
}

impl Daemon {
    /// Starts `bin serve` on a new temp home and connects to it.
    pub async fn start(bin: &Path) -> Result<Daemon> {
        let dir = tempfile::Builder::new()
            .prefix("r1-agent")
            .tempdir()
            .context("cannot make a temp directory")?;
        let home = dir.path().join("home");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&home)
            .context("cannot make the temp R1_HOME")?;
        std::fs::write(home.join("daemon.toml"), "default_engine = \"echo\"\n")
            .context("cannot write daemon.toml")?;
        let stderr = std::fs::File::create(dir.path().join("serve.stderr"))
            .context("cannot make the daemon's stderr file")?;
        let mut child = Command::new(bin)
            .args(["serve", "--log-level", "debug", "--emit-port-stdout"])
            .env("R1_HOME", &home)
            .env_remove("R1_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            bail!("the daemon's stdout is not a pipe");
        };
        let mut first = String::new();
        let mut reader = BufReader::new(stdout);
        let read = reader.read_line(&mut first);
        match tokio::time::timeout(START_TIMEOUT, read).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => bail!(
                "the daemon exited before it listened:\n{}",
                tail(&dir.path().join("serve.stderr"), 40)
            ),
            Err(_) => bail!(
                "the daemon did not listen within {}s:\n{}",
                START_TIMEOUT.as_secs(),
                tail(&dir.path().join("serve.stderr"), 40)
            ),
        }
        let line: serde_json::Value =
            serde_json::from_str(&first).context("the daemon's first line is not JSON")?;
        if line["event"] != r1_proto::DaemonListening::EVENT {
            bail!("the daemon's first line is not daemon.listening: {first}");
        }
        let mut opts = ConnectOptions::new(&home);
        opts.spawn = false;
        let client = r1_client::connect(&opts)
            .await
            .context("cannot connect to the daemon")?;
        Ok(Daemon {
            child,
            dir,
            home,
            client,
            workdirs: 0,
        })
    }

    /// A new empty directory for a scenario (outside the daemon's home, which no tool
    /// may touch), canonical so it compares equal to what the daemon reports.
    pub fn workdir(&mut self, name: &str) -> Result<PathBuf> {
        self.workdirs += 1;
        let p = self.dir.path().join(format!("{name}-{}", self.workdirs));
        std::fs::create_dir(&p).with_context(|| format!("cannot make {}", p.display()))?;
        p.canonicalize().context("cannot resolve the workdir")
    }

    /// The last `lines` lines of the daemon's own log file and of its stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.home.join("logs"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        let mut out = String::new();
        if let Some(newest) = files.last() {
            out.push_str(&format!("== {} (last {lines} lines)\n", newest.display()));
            out.push_str(&tail(newest, lines));
        }
        out.push_str(&format!("\n== the daemon's stderr (last {lines} lines)\n"));
        out.push_str(&tail(&self.dir.path().join("serve.stderr"), lines));
        out
    }

    /// Asks the daemon to shut down, and kills it if it has not exited in time.
    pub async fn stop(mut self) {
        let _ = self
            .client
            .call_method("daemon.shutdown", serde_json::json!({"grace_s": 2}))
            .await;
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let mut out = all[from..].join("\n");
    out.push('\n');
    out
}
