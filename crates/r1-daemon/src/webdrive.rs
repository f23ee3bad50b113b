//! `web.*`: the daemon's own web UI in a headless browser, for agents.
//!
//! The browser is Playwright MCP (the npm package `@playwright/mcp`) run by Node.js as an
//! external stdio MCP server through the engine's [`McpPool`] (its own process group,
//! its timeouts), with the system's Chromium as its executable: nothing downloads a
//! browser. One task owns it ([`WebDriver`]): it starts the server on the first call,
//! runs the calls one at a time (there is one page), and stops it after
//! `[web] idle_timeout_s` without a call and at daemon shutdown, killing node's process
//! group and Chromium's (Playwright starts Chromium detached, in a group of its own,
//! which [`Browser::stop`] finds through `/proc` while node still runs).
//!
//! Navigation is held to the daemon's own origin, and the browser's network to it too
//! (Playwright MCP's `network.allowedOrigins`). A browser logs in like a person does,
//! with a single-use code in the URL's fragment that the page trades for the token:
//! the token never reaches the browser's command line, its environment or a tool result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use r1_engine::{McpPool, McpServerConfig, McpTransport, McpTrust};
use r1_proto::events::ToolCall;
use r1_proto::{ApiError, ErrorCode, WebPageView};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// The `@playwright/mcp` release r1 is tested with, named in the install hint.
pub const PLAYWRIGHT_MCP_VERSION: &str = "0.0.86";

/// The pool's name for the server (its tools are `playwright__<tool>`).
const SERVER: &str = "playwright";

/// Playwright MCP needs Node.js 20 or later (its `engines`).
const MIN_NODE_MAJOR: u32 = 20;

/// How long `node --version` may take; it is instant unless the machine is wedged.
const NODE_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many calls may wait for the browser; more are refused (`budget_exceeded`)
/// rather than queued without bound.
const QUEUE: usize = 16;

/// How much of a browser error is quoted to the caller.
const MAX_ERROR_BYTES: usize = 2048;

/// How long shutdown waits for the browser to be stopped; stopping kills the process
/// group, so this is only a bound on reaping it.
const STOP_WAIT: Duration = Duration::from_secs(5);

fn default_idle_timeout_s() -> u64 {
    300
}

fn default_timeout_s() -> u64 {
    60
}

/// `[web]` in `daemon.toml`: the browser behind `web.*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// The Node.js binary (default: `node` on the daemon's PATH).
    #[serde(default)]
    pub node: Option<PathBuf>,
    /// The `@playwright/mcp` package directory, or its `cli.js` (default:
    /// `$R1_HOME/web/node_modules/@playwright/mcp`, then npm's global directories).
    #[serde(default)]
    pub playwright_mcp: Option<PathBuf>,
    /// The Chromium binary (default: `chromium`, then `chromium-browser`, on the PATH).
    #[serde(default)]
    pub chromium: Option<PathBuf>,
    /// Seconds without a `web.*` call after which the browser is stopped (default 300).
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// Seconds the browser may take to start, and then each call (default 60).
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Run Chromium without its sandbox (default: only as root, where Chromium
    /// refuses to start with it).
    #[serde(default)]
    pub no_sandbox: Option<bool>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            node: None,
            playwright_mcp: None,
            chromium: None,
            idle_timeout_s: default_idle_timeout_s(),
            timeout_s: default_timeout_s(),
            no_sandbox: None,
        }
    }
}

impl WebConfig {
    /// Refuses zero timeouts.
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_timeout_s == 0 {
            return Err("[web] idle_timeout_s must be at least 1".into());
        }
        if self.timeout_s == 0 {
            return Err("[web] timeout_s must be at least 1".into());
        }
        Ok(())
    }
}

/// What one call needs besides its operation: the config in force, where the state
/// directory is, the daemon's origin and a fresh login code.
pub(crate) struct Context {
    /// `[web]` as it is now.
    pub config: WebConfig,
    /// `$R1_HOME`.
    pub home: PathBuf,
    /// The daemon's origin, `http://127.0.0.1:<port>`.
    pub origin: String,
    /// A single-use login code, used when the browser has not logged in yet.
    pub login_code: Option<String>,
}

/// One `web.*` operation, its params already checked.
pub(crate) enum Op {
    /// Go to this URL on the daemon's origin (checked by [`same_origin_url`]).
    Navigate(String),
    /// Click the element `selector` names.
    Click(String),
    /// Fill the field `selector` names with the value.
    Fill(String, String),
    /// Read the page.
    Snapshot,
}

/// What the browser's task is asked; a call is boxed, so the channel's slots stay
/// small.
enum Msg {
    Call {
        call: Box<(Op, Context)>,
        reply: oneshot::Sender<Result<WebPageView, ApiError>>,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
}

/// The handle on the task that owns the browser; cheap to share.
pub(crate) struct WebDriver {
    tx: std::sync::OnceLock<mpsc::Sender<Msg>>,
}

impl WebDriver {
    /// A driver with no task yet: it starts with the first call.
    pub(crate) fn new() -> WebDriver {
        WebDriver {
            tx: std::sync::OnceLock::new(),
        }
    }

    /// Runs `op` in the browser, starting it if need be.
    pub(crate) async fn call(&self, op: Op, cx: Context) -> Result<WebPageView, ApiError> {
        let idle = Duration::from_secs(cx.config.idle_timeout_s);
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(rx, idle));
            tx
        });
        let (reply, answer) = oneshot::channel();
        tx.try_send(Msg::Call {
            call: Box::new((op, cx)),
            reply,
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::new(
                ErrorCode::BudgetExceeded,
                format!("{QUEUE} web.* calls already wait for the browser; retry later"),
            ),
            mpsc::error::TrySendError::Closed(_) => {
                ApiError::new(ErrorCode::Conflict, "the daemon is shutting down")
            }
        })?;
        answer
            .await
            .map_err(|_| ApiError::internal("the browser task ended"))?
    }

    /// Stops the browser (kills its process group) and the task, for the daemon's
    /// shutdown; later calls are refused.
    pub(crate) async fn shutdown(&self) {
        let Some(tx) = self.tx.get() else { return };
        let (done, stopped) = oneshot::channel();
        if tx.send(Msg::Stop { done }).await.is_ok() {
            let _ = tokio::time::timeout(STOP_WAIT, stopped).await;
        }
    }
}

/// A running (or starting) browser.
struct Browser {
    pool: McpPool,
    /// Whether it has traded a login code yet.
    logged_in: bool,
    /// The config file node was started with, which names this daemon's server among
    /// the machine's processes.
    config_path: PathBuf,
}

impl Browser {
    /// Ends Playwright MCP (closes its session, kills node's process group) and then
    /// the process groups of the browsers it started, if they outlived it.
    async fn stop(self) {
        let groups = browser_groups(&self.config_path);
        self.pool.shutdown().await;
        for g in groups {
            // Only the group whose leader is still the process found above: a pid that
            // was freed and taken again has another start time.
            if proc_stat(g.pgid).is_some_and(|s| s.start == g.start) {
                kill_group(g.pgid);
            }
        }
    }
}

/// A process group a browser leads.
struct Group {
    pgid: libc::pid_t,
    /// Its leader's start time (clock ticks since boot), to recognise it later.
    start: u64,
}

/// What r1 reads of `/proc/<pid>/stat`.
struct ProcStat {
    ppid: libc::pid_t,
    pgrp: libc::pid_t,
    start: u64,
}

fn proc_stat(pid: libc::pid_t) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: read after the last.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    Some(ProcStat {
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The process groups led by children of this daemon's Playwright MCP (the node whose
/// command line names `config_path`): the browsers it launched.
fn browser_groups(config_path: &Path) -> Vec<Group> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = config_path.as_os_str().as_encoded_bytes();
    let pids: Vec<libc::pid_t> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let servers: Vec<libc::pid_t> = pids
        .iter()
        .copied()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .collect();
    pids.iter()
        .filter_map(|&pid| {
            let s = proc_stat(pid)?;
            (servers.contains(&s.ppid) && s.pgrp == pid).then_some(Group {
                pgid: pid,
                start: s.start,
            })
        })
        .collect()
}

/// Kills a browser's process group (SIGKILL).
fn kill_group(pgid: libc::pid_t) {
    // kill(-1) would signal every process of the user and kill(0) the daemon's own
    // group; a browser's pid is never either, but this is the one place to be sure.
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; the negative
    // pid addresses the group a browser of ours leads (checked by its start time).
    // ESRCH (the group is gone) is the usual outcome and is ignored.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The task that owns the browser: one call at a time, stopped when idle.
async fn run(mut rx: mpsc::Receiver<Msg>, mut idle: Duration) {
    let mut browser: Option<Browser> = None;
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            () = tokio::time::sleep(idle), if browser.is_some() => {
                if let Some(b) = browser.take() {
                    tracing::info!("web: stopping the idle browser");
                    b.stop().await;
                }
                continue;
            }
        };
        match msg {
            Some(Msg::Call { call: job, reply }) => {
                let (op, cx) = *job;
                idle = Duration::from_secs(cx.config.idle_timeout_s);
                let result = call(&mut browser, op, cx).await;
                let _ = reply.send(result);
            }
            Some(Msg::Stop { done }) => {
                rx.close();
                if let Some(b) = browser.take() {
                    b.stop().await;
                }
                let _ = done.send(());
                return;
            }
            None => break,
        }
    }
    if let Some(b) = browser.take() {
        b.stop().await;
    }
}

async fn call(slot: &mut Option<Browser>, op: Op, cx: Context) -> Result<WebPageView, ApiError> {
    let browser = match slot {
        Some(b) => b,
        None => slot.insert(start(&cx).await?),
    };
    let result = act(browser, op, &cx).await;
    if let Err(Failure::Browser(_)) = &result {
        // The server did not start, died or stopped answering: start afresh next time.
        if let Some(b) = slot.take() {
            b.stop().await;
        }
    }
    result.map_err(Failure::into_api)
}

/// Why a call failed: the browser itself (it is restarted), or the page's answer.
enum Failure {
    Browser(ApiError),
    Page(ApiError),
}

impl Failure {
    fn into_api(self) -> ApiError {
        match self {
            Failure::Browser(e) | Failure::Page(e) => e,
        }
    }
}

async fn act(browser: &mut Browser, op: Op, cx: &Context) -> Result<WebPageView, Failure> {
    match op {
        Op::Navigate(url) => {
            let first = !browser.logged_in;
            let target = match (&cx.login_code, first) {
                (Some(code), true) => {
                    let base = url.split('#').next().unwrap_or(&url);
                    format!("{base}#code={code}")
                }
                _ => url,
            };
            tool(browser, "browser_navigate", json!({ "url": target })).await?;
            if first {
                browser.logged_in = true;
                // The page trades the code for the token and then draws the app: wait
                // (at most 5 s) for its "Loading…" to go rather than snapshot a
                // half-drawn page. A page that never says it is fine too.
                let _ = tool(
                    browser,
                    "browser_wait_for",
                    json!({ "textGone": "Loading", "time": 5 }),
                )
                .await;
            }
        }
        Op::Click(selector) => {
            let target = resolve_target(browser, &selector).await?;
            tool(browser, "browser_click", json!({ "target": target })).await?;
        }
        Op::Fill(selector, value) => {
            let target = resolve_target(browser, &selector).await?;
            tool(
                browser,
                "browser_type",
                json!({ "target": target, "text": value }),
            )
            .await?;
        }
        Op::Snapshot => {}
    }
    let text = tool(browser, "browser_snapshot", json!({})).await?;
    Ok(parse_page(&text))
}

/// Calls a Playwright MCP tool; its text on success.
async fn tool(browser: &Browser, name: &str, arguments: Value) -> Result<String, Failure> {
    let call = ToolCall {
        id: "web".into(),
        name: format!("{SERVER}__{name}"),
        arguments,
    };
    match browser.pool.try_call(&call).await {
        Ok((text, false)) => Ok(text),
        Ok((text, true)) => Err(Failure::Page(page_error(&text))),
        Err(why) if why.contains("timed out") => Err(Failure::Browser(ApiError::new(
            ErrorCode::Timeout,
            format!("the browser did not answer: {}", cut(&why)),
        ))),
        Err(why) => Err(Failure::Browser(ApiError::internal(format!(
            "the browser (Playwright MCP) failed: {}",
            cut(&why)
        )))),
    }
}

/// The error the page's answer is: an element that matches nothing is `not_found`,
/// anything else (a disabled control, a navigation error) `conflict`.
fn page_error(text: &str) -> ApiError {
    let text = text.trim().trim_start_matches("### Error").trim();
    let missing = text.contains("does not match any elements")
        || text.contains("not found in the current page snapshot")
        || text.contains("is not a valid target");
    let code = if missing {
        ErrorCode::NotFound
    } else {
        ErrorCode::Conflict
    };
    ApiError::new(code, format!("the browser says: {}", cut(text)))
}

/// `text` cut to [`MAX_ERROR_BYTES`].
fn cut(text: &str) -> String {
    if text.len() <= MAX_ERROR_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …", &text[..end])
}

/// Starts (lazily: the process starts with the first tool call) Playwright MCP, after
/// checking that everything it needs is installed.
async fn start(cx: &Context) -> Result<Browser, ApiError> {
    let launch = resolve(&cx.config, &cx.home).await?;
    let dir = cx.home.join("web");
    let out = dir.join("out");
    std::fs::create_dir_all(&out)
        .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", out.display())))?;
    let no_sandbox = cx
        .config
        .no_sandbox
        .unwrap_or_else(|| crate::fsutil::euid() == 0);
    let args: Vec<&str> = if no_sandbox {
        vec!["--no-sandbox"]
    } else {
        Vec::new()
    };
    let config = json!({
        "browser": {
            "browserName": "chromium",
            "isolated": true,
            "launchOptions": {
                "headless": true,
                "executablePath": launch.chromium,
                "chromiumSandbox": !no_sandbox,
                "args": args,
            },
        },
        "capabilities": ["core"],
        "network": { "allowedOrigins": [cx.origin] },
        "outputDir": out,
        "imageResponses": "omit",
        "snapshot": { "mode": "none" },
        "redactUrlParams": ["code"],
        "codegen": "none",
        "ignoreRoots": true,
        "timeouts": { "idle": 0 },
    });
    let config_path = dir.join("playwright-mcp.json");
    let text = serde_json::to_vec_pretty(&config)
        .map_err(|_| ApiError::internal("cannot encode the browser's config"))?;
    std::fs::write(&config_path, text)
        .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", config_path.display())))?;
    let server = McpServerConfig {
        name: SERVER.into(),
        transport: McpTransport::Stdio,
        command: Some(launch.node.display().to_string()),
        args: vec![
            launch.cli.display().to_string(),
            "--config".into(),
            config_path.display().to_string(),
        ],
        url: None,
        auth_env: None,
        timeout_s: cx.config.timeout_s,
        max_concurrent: 1,
        trust: McpTrust::Trusted,
    };
    tracing::info!(
        node = %launch.node.display(),
        cli = %launch.cli.display(),
        chromium = %launch.chromium.display(),
        "web: starting the browser"
    );
    Ok(Browser {
        pool: McpPool::new(vec![server], dir),
        logged_in: false,
        config_path,
    })
}

/// What runs the browser.
#[derive(Debug)]
struct Launch {
    node: PathBuf,
    cli: PathBuf,
    chromium: PathBuf,
}

/// Finds Node.js, `@playwright/mcp` and Chromium; when any is missing, one `conflict`
/// error names each missing piece and how to install it.
async fn resolve(config: &WebConfig, home: &Path) -> Result<Launch, ApiError> {
    let mut missing = Vec::new();
    let node = match &config.node {
        Some(p) => executable(p).then(|| p.clone()),
        None => which("node"),
    };
    let node = match node {
        None => {
            missing.push(match &config.node {
                Some(p) => format!(
                    "Node.js {MIN_NODE_MAJOR} or later: `[web] node` is {}, which is not an \
                     executable",
                    p.display()
                ),
                None => format!(
                    "Node.js {MIN_NODE_MAJOR} or later: there is no `node` on the daemon's \
                     PATH; install it (Debian: `apt-get install nodejs npm`) or set \
                     `[web] node`"
                ),
            });
            None
        }
        Some(node) => match node_major(&node).await {
            Some(major) if major >= MIN_NODE_MAJOR => Some(node),
            found => {
                missing.push(format!(
                    "Node.js {MIN_NODE_MAJOR} or later: {} is {}",
                    node.display(),
                    found.map_or("not a working node".into(), |m| format!("version {m}"))
                ));
                None
            }
        },
    };
    let cli = playwright_cli(config, home);
    if cli.is_none() {
        let install = format!(
            "`npm install --prefix {} @playwright/mcp@{PLAYWRIGHT_MCP_VERSION}`",
            home.join("web").display()
        );
        missing.push(match &config.playwright_mcp {
            Some(p) => format!(
                "the npm package @playwright/mcp: `[web] playwright_mcp` is {}, which holds \
                 no cli.js; install it with {install}",
                p.display()
            ),
            None => format!(
                "the npm package @playwright/mcp: install it with {install} (or set \
                 `[web] playwright_mcp` to its directory)"
            ),
        });
    }
    let chromium = match &config.chromium {
        Some(p) => executable(p).then(|| p.clone()),
        None => which("chromium").or_else(|| which("chromium-browser")),
    };
    if chromium.is_none() {
        missing.push(match &config.chromium {
            Some(p) => format!(
                "Chromium: `[web] chromium` is {}, which is not an executable",
                p.display()
            ),
            None => "Chromium: there is no `chromium` on the daemon's PATH; install it \
                     (Debian: `apt-get install chromium`) or set `[web] chromium`"
                .into(),
        });
    }
    match (node, cli, chromium) {
        (Some(node), Some(cli), Some(chromium)) if missing.is_empty() => Ok(Launch {
            node,
            cli,
            chromium,
        }),
        _ => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "web.* needs what is missing on this machine: {}",
                missing.join("; ")
            ),
        )),
    }
}

/// The `cli.js` of `@playwright/mcp`: the configured one, else a local install under
/// `$R1_HOME/web`, else a global one.
fn playwright_cli(config: &WebConfig, home: &Path) -> Option<PathBuf> {
    let as_cli = |p: &Path| {
        if p.is_dir() {
            p.join("cli.js")
        } else {
            p.to_path_buf()
        }
    };
    if let Some(p) = &config.playwright_mcp {
        let cli = as_cli(p);
        return cli.is_file().then_some(cli);
    }
    [
        home.join("web/node_modules/@playwright/mcp"),
        PathBuf::from("/usr/local/lib/node_modules/@playwright/mcp"),
        PathBuf::from("/usr/lib/node_modules/@playwright/mcp"),
    ]
    .iter()
    .map(|p| p.join("cli.js"))
    .find(|p| p.is_file())
}

/// The major version `node --version` reports.
async fn node_major(node: &Path) -> Option<u32> {
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(NODE_PROBE_TIMEOUT, cmd.output())
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The first executable `name` on the daemon's PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `url` as an absolute URL on `origin` (`http://127.0.0.1:<port>`), or a `validation`
/// error naming the origin. A path (`/`, `/?x`) is taken on the origin. The check is on
/// the text: after the origin comes the end, `/`, `?` or `#`, so `origin@host`,
/// `origin.evil` or `origin\…` are refused; no whitespace or control character.
pub(crate) fn same_origin_url(url: &str, origin: &str) -> Result<String, ApiError> {
    let refuse = || {
        ApiError::validation(format!(
            "web.navigate goes only to the daemon's own origin, {origin}; `{}` is not on it",
            cut(url)
        ))
    };
    if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse());
    }
    if url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\") {
        return Ok(format!("{origin}{url}"));
    }
    let head = url.get(..origin.len()).ok_or_else(refuse)?;
    if !head.eq_ignore_ascii_case(origin) {
        return Err(refuse());
    }
    let rest = &url[origin.len()..];
    match rest.chars().next() {
        None => Ok(format!("{origin}/")),
        Some('/') if rest.starts_with("//") || rest.starts_with("/\\") => Err(refuse()),
        Some('/' | '?' | '#') => Ok(format!("{origin}{rest}")),
        Some(_) => Err(refuse()),
    }
}

/// A node of an accessibility snapshot that has a name and a ref.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    role: String,
    name: String,
    reference: String,
}

/// Roles a person acts on, preferred when a name is shared with static content.
const ACTIONABLE: &[&str] = &[
    "button",
    "link",
    "textbox",
    "searchbox",
    "checkbox",
    "radio",
    "combobox",
    "switch",
    "tab",
    "menuitem",
    "option",
    "slider",
    "spinbutton",
];

/// The target Playwright MCP is given for `selector`: a ref as it is; an accessibility
/// name (exact, then ignoring case) as the ref of its node in a fresh snapshot; anything
/// else as it is, for Playwright to read as a CSS selector or a locator.
async fn resolve_target(browser: &Browser, selector: &str) -> Result<String, Failure> {
    if is_ref(selector) {
        return Ok(selector.to_owned());
    }
    let text = tool(browser, "browser_snapshot", json!({})).await?;
    let nodes = parse_nodes(&parse_page(&text).snapshot);
    pick(&nodes, selector).map_err(Failure::Page)
}

/// The ref of the node named `name`, `Ok(name)` when none is, or a `validation` error
/// when several are and they cannot be told apart.
fn pick(nodes: &[Node], name: &str) -> Result<String, ApiError> {
    let mut found: Vec<&Node> = nodes.iter().filter(|n| n.name == name).collect();
    if found.is_empty() {
        found = nodes
            .iter()
            .filter(|n| n.name.to_lowercase() == name.to_lowercase())
            .collect();
    }
    if found.len() > 1 {
        let actionable: Vec<&Node> = found
            .iter()
            .copied()
            .filter(|n| ACTIONABLE.contains(&n.role.as_str()))
            .collect();
        if !actionable.is_empty() {
            found = actionable;
        }
    }
    match found.as_slice() {
        [] => Ok(name.to_owned()),
        [one] => Ok(one.reference.clone()),
        many => Err(ApiError::validation(format!(
            "{} elements are named `{name}`; pass one's ref instead: {}",
            many.len(),
            many.iter()
                .take(8)
                .map(|n| format!("{} \"{}\" [ref={}]", n.role, n.name, n.reference))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Whether `s` is a snapshot ref (`e12`, `f1e3`).
fn is_ref(s: &str) -> bool {
    let rest = match s.strip_prefix('f') {
        Some(r) => {
            let digits = r.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            &r[digits..]
        }
        None => s,
    };
    rest.strip_prefix('e')
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

/// The named nodes of a snapshot: lines `- role "name" … [ref=eN]`.
fn parse_nodes(snapshot: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for line in snapshot.lines() {
        let Some(rest) = line.trim_start().strip_prefix("- ") else {
            continue;
        };
        let role: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let Some(after) = rest[role.len()..].strip_prefix(" \"") else {
            continue;
        };
        let Some((name, tail)) = quoted(after) else {
            continue;
        };
        let Some(reference) = tail.split("[ref=").nth(1).and_then(|r| r.split(']').next()) else {
            continue;
        };
        nodes.push(Node {
            role,
            name,
            reference: reference.to_owned(),
        });
    }
    nodes
}

/// The string up to the closing quote of a quoted name (its opening quote already
/// read), unescaped, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                let raw = &s[..i];
                let name = serde_json::from_str::<String>(&format!("\"{raw}\""))
                    .unwrap_or_else(|_| raw.to_owned());
                return Some((name, &s[i + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// The page in a `browser_snapshot` answer: its `- Page URL:`, `- Page Title:` and the
/// YAML block under `### Snapshot` (the whole text when there is no such block).
fn parse_page(text: &str) -> WebPageView {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_owned())
    };
    let snapshot = text
        .split_once("```yaml\n")
        .map(|(_, rest)| rest.split("\n```").next().unwrap_or(rest).to_owned())
        .unwrap_or_else(|| text.trim().to_owned());
    WebPageView {
        url: field("- Page URL:").unwrap_or_default(),
        title: field("- Page Title:").filter(|t| !t.is_empty()),
        snapshot,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ORIGIN: &str = "http://127.0.0.1:4000";

    #[test]
    fn only_the_daemons_origin() {
        for (url, want) in [
            ("/", "http://127.0.0.1:4000/"),
            ("/?session=s1", "http://127.0.0.1:4000/?session=s1"),
            (ORIGIN, "http://127.0.0.1:4000/"),
            ("http://127.0.0.1:4000/x#y", "http://127.0.0.1:4000/x#y"),
            ("HTTP://127.0.0.1:4000/", "http://127.0.0.1:4000/"),
        ] {
            assert_eq!(same_origin_url(url, ORIGIN).unwrap(), want, "{url}");
        }
        for url in [
            "https://example.com/",
            "http://127.0.0.1:40001/",
            "http://127.0.0.1:4000@evil.example/",
            "http://127.0.0.1:4000.evil.example/",
            "http://127.0.0.1:4000\\@evil",
            "//evil.example/",
            "/\\evil.example",
            "http://127.0.0.1:4000//evil.example/",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "/ x",
            "",
        ] {
            let e = same_origin_url(url, ORIGIN).unwrap_err();
            assert_eq!(e.code, ErrorCode::Validation, "{url}");
            assert!(e.message.contains(ORIGIN), "{}", e.message);
        }
    }

    const PAGE: &str = "### Page\n- Page URL: http://127.0.0.1:4000/\n- Page Title: r1\n\
        ### Snapshot\n```yaml\n- generic [ref=e1]:\n  - heading \"r1\" [level=1] [ref=e2]\n  \
        - textbox \"Message\" [ref=e3]\n  - button \"Send\" [ref=e4] [cursor=pointer]\n  \
        - text: Send\n  - paragraph \"Send\" [ref=e5]\n  - button \"say \\\"hi\\\"\" [ref=f1e6]\n  \
        - link \"Docs\" [ref=e7]\n  - button \"docs\" [ref=e8]\n```";

    #[test]
    fn pages_and_nodes_parse() {
        let page = parse_page(PAGE);
        assert_eq!(page.url, "http://127.0.0.1:4000/");
        assert_eq!(page.title.as_deref(), Some("r1"));
        assert!(page.snapshot.starts_with("- generic [ref=e1]:"));
        assert!(page.snapshot.ends_with("[ref=e8]"));
        let nodes = parse_nodes(&page.snapshot);
        assert_eq!(nodes.len(), 7);
        assert_eq!(
            nodes[4],
            Node {
                role: "button".into(),
                name: "say \"hi\"".into(),
                reference: "f1e6".into()
            }
        );
    }

    #[test]
    fn names_resolve_to_refs() {
        let nodes = parse_nodes(&parse_page(PAGE).snapshot);
        assert_eq!(pick(&nodes, "Message").unwrap(), "e3");
        assert_eq!(pick(&nodes, "message").unwrap(), "e3");
        // A button and a paragraph share the name: the button is what one clicks.
        assert_eq!(pick(&nodes, "Send").unwrap(), "e4");
        assert_eq!(pick(&nodes, "Docs").unwrap(), "e7");
        assert_eq!(pick(&nodes, "say \"hi\"").unwrap(), "f1e6");
        // Not a name: handed to Playwright as a selector.
        assert_eq!(
            pick(&nodes, "[data-testid=composer-send]").unwrap(),
            "[data-testid=composer-send]"
        );
        let e = pick(&nodes, "DOCS").unwrap_err();
        assert_eq!(e.code, ErrorCode::Validation);
        assert!(
            e.message.contains("e7") && e.message.contains("e8"),
            "{}",
            e.message
        );
    }

    #[test]
    fn refs() {
        for r in ["e1", "e42", "f1e3"] {
            assert!(is_ref(r), "{r}");
        }
        for r in ["e", "f1", "fe1", "e1a", "Send", "#e1", ""] {
            assert!(!is_ref(r), "{r}");
        }
    }

    #[test]
    fn the_web_section_parses_and_checks_its_timeouts() {
        let c = crate::state::parse_config(
            "[web]\nnode = \"/usr/bin/node\"\nchromium = \"/usr/bin/chromium\"\n\
             idle_timeout_s = 300\ntimeout_s = 60\nno_sandbox = true\n",
        )
        .unwrap();
        assert_eq!(
            c.web.chromium.as_deref(),
            Some(Path::new("/usr/bin/chromium"))
        );
        assert_eq!(c.web.no_sandbox, Some(true));
        assert_eq!(
            crate::state::parse_config("").unwrap().web,
            WebConfig::default()
        );
        let e = crate::state::parse_config("[web]\nidle_timeout_s = 0\n").unwrap_err();
        assert!(e.to_string().contains("idle_timeout_s"), "{e}");
        assert!(crate::state::parse_config("[web]\nbrowser = \"x\"\n").is_err());
    }

    #[tokio::test]
    async fn missing_pieces_are_named_with_how_to_install_them() {
        let home = std::env::temp_dir().join(format!("r1-web-test-{}", std::process::id()));
        let config = WebConfig {
            node: Some("/nonexistent/node".into()),
            playwright_mcp: Some(home.join("nothing")),
            chromium: Some("/nonexistent/chromium".into()),
            ..WebConfig::default()
        };
        let e = resolve(&config, &home).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        for part in [
            "Node.js 20 or later",
            "/nonexistent/node",
            "@playwright/mcp",
            "npm install --prefix",
            PLAYWRIGHT_MCP_VERSION,
            "Chromium",
            "/nonexistent/chromium",
        ] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
    }
}
