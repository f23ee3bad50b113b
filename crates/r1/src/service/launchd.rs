//! r1 as a launchd agent (macOS): `~/Library/LaunchAgents/dev.r1.daemon.plist`.
//!
//! The plist is written by a pure function, compiled and tested everywhere; only
//! [`run`], which calls `launchctl`, is reached on macOS alone.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

use super::{
    find_on_path, remove_unit, run_tool, running_daemon, write_unit, Action, ServiceStatus, Target,
    Written,
};
use crate::output;

/// The agent's label, which is also the plist's file name.
const LABEL: &str = "dev.r1.daemon";

/// Seconds launchd waits before starting the agent again (as `RestartSec` on systemd).
const THROTTLE_S: u32 = 5;

fn plist_path(user_home: &Path) -> PathBuf {
    user_home
        .join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

/// The agent that runs `exe serve` at login and again whenever it exits with a failure,
/// with `R1_HOME` set when the state directory is not the default, and its stdout and
/// stderr in `logs_dir`.
fn plist_text(exe: &Path, r1_home: Option<&Path>, logs_dir: &Path) -> String {
    let s = |p: &Path| xml_escape(&p.display().to_string());
    let env = match r1_home {
        Some(home) => format!(
            "\t<key>EnvironmentVariables</key>\n\t<dict>\n\t\t<key>R1_HOME</key>\n\t\t<string>{}</string>\n\t</dict>\n",
            s(home)
        ),
        None => String::new(),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- The r1 daemon as a login service, written by r1 serve (its install flag; its uninstall flag removes it). -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{LABEL}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{exe}</string>
		<string>serve</string>
	</array>
{env}	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>{THROTTLE_S}</integer>
	<key>StandardOutPath</key>
	<string>{out}</string>
	<key>StandardErrorPath</key>
	<string>{err}</string>
</dict>
</plist>
"#,
        exe = s(exe),
        out = s(&logs_dir.join("launchd.out.log")),
        err = s(&logs_dir.join("launchd.err.log")),
    )
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The program of a plist written by [`plist_text`]: the first string of its
/// `ProgramArguments`.
fn program_of(plist: &str) -> Option<PathBuf> {
    let rest = &plist[plist.find("<key>ProgramArguments</key>")?..];
    let start = rest.find("<string>")? + "<string>".len();
    let end = start + rest[start..].find("</string>")?;
    Some(PathBuf::from(xml_unescape(&rest[start..end])))
}

/// `gui/<uid>`, the launchd domain of the logged-in user's agents.
fn domain() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    format!("gui/{}", unsafe { libc::geteuid() })
}

pub(super) fn run(target: &Target, action: Action) -> anyhow::Result<i32> {
    let path = plist_path(&target.user_home);
    let launchctl = find_on_path("launchctl");
    match action {
        Action::Install { now } => {
            let launchctl = launchctl.ok_or_else(|| {
                anyhow!("launchctl is not on PATH, so there is no launchd to run r1 as a service; nothing was written")
            })?;
            install(target, &path, &launchctl, now)
        }
        Action::Uninstall => uninstall(&path, launchctl.as_deref()),
        Action::Status { json } => {
            status(target, &path, launchctl.as_deref()).print(json);
            Ok(0)
        }
    }
}

fn install(target: &Target, path: &Path, launchctl: &Path, now: bool) -> anyhow::Result<i32> {
    // launchd opens the log files but creates no directory: the state directory and
    // its logs/ must exist, private, before the agent first starts.
    r1_daemon::StateDir::open(&target.state_dir).map_err(|e| anyhow!("{e}"))?;
    let logs = target.state_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let text = plist_text(&target.exe, target.r1_home_env.as_deref(), &logs);
    let written = write_unit(path, &text)?;
    output::line(&match written {
        Written::Created => format!("installed {}", path.display()),
        Written::Updated => format!("updated {}", path.display()),
        Written::Unchanged => format!("already installed: {} (unchanged)", path.display()),
    });
    if !now {
        output::line(
            "launchd starts it at your next login; to start it now: r1 serve --install --now",
        );
        return Ok(0);
    }
    let service = format!("{}/{LABEL}", domain());
    // A disabled label would make bootstrap fail; installing means wanting it enabled.
    let _ = run_tool(launchctl, &["enable", &service]);
    let loaded = run_tool(launchctl, &["print", &service])?.success;
    if loaded && written != Written::Unchanged {
        // launchd keeps the plist it loaded: unload the old one to load the new.
        let _ = run_tool(launchctl, &["bootout", &service]);
    }
    if loaded && written == Written::Unchanged {
        let kick = run_tool(launchctl, &["kickstart", &service])?;
        if !kick.success {
            return Err(anyhow!(
                "`launchctl kickstart {service}` failed: {}",
                kick.message()
            ));
        }
    } else {
        let boot = run_tool(
            launchctl,
            &[
                std::ffi::OsStr::new("bootstrap"),
                domain().as_ref(),
                path.as_os_str(),
            ],
        )?;
        if !boot.success {
            return Err(anyhow!(
                "the agent is written, but `launchctl bootstrap {} {}` failed: {}",
                domain(),
                path.display(),
                boot.message()
            ));
        }
    }
    let s = status(target, path, Some(launchctl));
    match (s.running, s.pid) {
        (Some(true), Some(pid)) => output::line(&format!("loaded and running (pid {pid})")),
        _ => output::line("loaded and started"),
    }
    if let Some(pid) = running_daemon(&target.state_dir).filter(|p| Some(*p) != s.pid) {
        output::line(&format!(
            "  note: a daemon started outside the service (pid {pid}) serves {} now; \
             the service takes over once it stops (`r1 ctl shutdown`)",
            target.state_dir.display()
        ));
    }
    Ok(0)
}

fn uninstall(path: &Path, launchctl: Option<&Path>) -> anyhow::Result<i32> {
    if !path.exists() {
        output::line(&format!(
            "r1 is not installed as a service (no {}); nothing to do",
            path.display()
        ));
        return Ok(0);
    }
    if let Some(launchctl) = launchctl {
        // Fails when the agent is not loaded, which is what uninstalling wants anyway.
        let out = run_tool(launchctl, &["bootout", &format!("{}/{LABEL}", domain())])?;
        if out.success {
            output::line(&format!("stopped and unloaded {LABEL}"));
        }
    }
    remove_unit(path)?;
    output::line(&format!("removed {}", path.display()));
    Ok(0)
}

fn status(target: &Target, path: &Path, launchctl: Option<&Path>) -> ServiceStatus {
    let exec = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| program_of(&t));
    let mut s = ServiceStatus::new("launchd", LABEL, path, exec, target);
    let Some(launchctl) = launchctl else {
        s.manager_error = Some("launchctl is not on PATH".into());
        return s;
    };
    let service = format!("{}/{LABEL}", domain());
    match run_tool(launchctl, &["print", &service]) {
        Ok(out) if out.success => {
            let field = |name: &str| {
                out.stdout.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix(name)
                        .and_then(|r| r.trim_start().strip_prefix('='))
                        .map(str::trim)
                })
            };
            s.running = Some(field("state") == Some("running"));
            s.pid = field("pid").and_then(|p| p.parse().ok());
        }
        Ok(_) => s.running = Some(false),
        Err(e) => s.manager_error = Some(format!("{e:#}")),
    }
    // Enabled: installed, and not switched off with `launchctl disable`.
    if s.installed {
        s.enabled = match run_tool(launchctl, &["print-disabled", &domain()]) {
            Ok(out) if out.success => Some(!out.stdout.lines().any(|l| {
                l.contains(&format!("\"{LABEL}\""))
                    && (l.contains("disabled") || l.contains("true"))
            })),
            _ => None,
        };
    } else {
        s.enabled = Some(false);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plist as Python's `plistlib` reads it (an XML parser with the plist rules),
    /// as JSON.
    fn parsed(plist: &str) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev.r1.daemon.plist");
        std::fs::write(&file, plist).unwrap();
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'), fmt=plistlib.FMT_XML)))",
            ])
            .arg(&file)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "plistlib refused the plist: {}\n{plist}",
            String::from_utf8_lossy(&out.stderr)
        );
        // On macOS, the system's own checker too.
        if let Some(plutil) = find_on_path("plutil") {
            let lint = std::process::Command::new(plutil)
                .arg("-lint")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                lint.status.success(),
                "{}",
                String::from_utf8_lossy(&lint.stdout)
            );
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn the_plist_has_what_launchd_needs() {
        let text = plist_text(
            Path::new("/usr/local/bin/r1"),
            None,
            Path::new("/Users/u/.r1/logs"),
        );
        let p = parsed(&text);
        assert_eq!(p["Label"], "dev.r1.daemon");
        assert_eq!(
            p["ProgramArguments"],
            serde_json::json!(["/usr/local/bin/r1", "serve"])
        );
        assert_eq!(p["RunAtLoad"], true);
        assert_eq!(p["KeepAlive"], serde_json::json!({"SuccessfulExit": false}));
        assert_eq!(p["ThrottleInterval"], 5);
        assert_eq!(p["StandardOutPath"], "/Users/u/.r1/logs/launchd.out.log");
        assert_eq!(p["StandardErrorPath"], "/Users/u/.r1/logs/launchd.err.log");
        assert!(p.get("EnvironmentVariables").is_none());
        assert_eq!(program_of(&text), Some(PathBuf::from("/usr/local/bin/r1")));
    }

    #[test]
    fn odd_paths_are_escaped_and_read_back() {
        let exe = Path::new("/Users/a & b/<r1>/\"it's\"");
        let text = plist_text(
            exe,
            Some(Path::new("/srv/r1 & co")),
            Path::new("/srv/r1 & co/logs"),
        );
        let p = parsed(&text);
        assert_eq!(p["ProgramArguments"][0], exe.display().to_string());
        assert_eq!(
            p["EnvironmentVariables"],
            serde_json::json!({"R1_HOME": "/srv/r1 & co"})
        );
        assert_eq!(p["StandardErrorPath"], "/srv/r1 & co/logs/launchd.err.log");
        assert_eq!(program_of(&text).as_deref(), Some(exe));
    }

    #[test]
    fn the_plist_lives_in_launch_agents() {
        assert_eq!(
            plist_path(Path::new("/Users/u")),
            PathBuf::from("/Users/u/Library/LaunchAgents/dev.r1.daemon.plist")
        );
    }
}
