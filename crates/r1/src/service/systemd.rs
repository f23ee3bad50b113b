//! r1 as a systemd user service: `~/.config/systemd/user/r1.service`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::{
    find_on_path, remove_unit, run_tool, running_daemon, write_unit, Action, ServiceStatus, Target,
    ToolOutput, Written,
};
use crate::output;

/// The unit's name.
const UNIT_NAME: &str = "r1.service";

/// What to run to start the service when `r1` could not.
const ENABLE_HINT: &str = "systemctl --user enable --now r1";

/// The directory of user units: `$XDG_CONFIG_HOME/systemd/user` when that is set to an
/// absolute path (as systemd reads it), else `~/.config/systemd/user`.
fn unit_dir(user_home: &Path, xdg_config_home: Option<OsString>) -> PathBuf {
    xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| user_home.join(".config"))
        .join("systemd")
        .join("user")
}

fn unit_path(target: &Target) -> PathBuf {
    unit_dir(&target.user_home, std::env::var_os("XDG_CONFIG_HOME")).join(UNIT_NAME)
}

/// The unit that runs `exe serve`, with `R1_HOME` set when the state directory is not
/// the default.
fn unit_text(exe: &Path, r1_home: Option<&Path>) -> String {
    let exec = format!("{} serve", quote(&exe.display().to_string(), true));
    let env = match r1_home {
        Some(home) => format!(
            "Environment={}\n",
            quote(&format!("R1_HOME={}", home.display()), false)
        ),
        None => String::new(),
    };
    format!(
        "# Written by `r1 serve --install`; `r1 serve --uninstall` stops and removes it.
[Unit]
Description=r1 daemon (AI agent sessions)

[Service]
Type=exec
ExecStart={exec}
{env}Restart=on-failure
RestartSec=5s
# On stop, SIGTERM goes to the daemon alone: it pauses its sessions and stops the
# commands and agents they run itself; whatever is left is killed after the timeout.
KillMode=mixed
# Agents work in your home directory and run your tools, so the hardening stops at what
# cannot get in their way: no ProtectHome, no ProtectSystem.
NoNewPrivileges=yes

[Install]
WantedBy=default.target
"
    )
}

/// `arg` as one word of a unit setting: quoted when it holds anything but plain path
/// characters, with `\` and `"` escaped, `%` (a specifier) doubled, and in a command
/// line (`exec`) `$` (a variable) doubled.
fn quote(arg: &str, exec: bool) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if exec => out.push_str("$$"),
            c => out.push(c),
        }
    }
    let plain = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@=,".contains(c));
    if plain {
        out
    } else {
        format!("\"{out}\"")
    }
}

/// The program of the unit's `ExecStart=`: its first word, unquoted.
fn exec_of(unit: &str) -> Option<PathBuf> {
    let line = unit
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("ExecStart="))?
        .trim_start();
    let mut word = String::new();
    let mut chars = line.chars().peekable();
    if line.starts_with('"') {
        chars.next();
        while let Some(c) = chars.next() {
            match c {
                '\\' => word.push(chars.next()?),
                '"' => break,
                c => word.push(c),
            }
        }
    } else {
        word = line.split_whitespace().next()?.to_string();
    }
    let word = word.replace("%%", "%").replace("$$", "$");
    (!word.is_empty()).then(|| PathBuf::from(word))
}

/// True when `systemctl --user` failed because no user manager answered: no D-Bus
/// session (a container, an SSH session without lingering, `su`).
fn no_user_manager(out: &ToolOutput) -> bool {
    let m = out.message().to_ascii_lowercase();
    (m.contains("connect to") && m.contains("bus"))
        || m.contains("xdg_runtime_dir")
        || m.contains("no medium found")
}

/// What to do when the unit is written but no user manager answers.
fn no_manager_message(detail: &str) -> String {
    format!(
        "no systemd user manager answered ({detail}), so the service is not enabled or running.\n\
         To run it now and at every boot, even with nobody logged in:\n  \
         loginctl enable-linger $USER\n  {ENABLE_HINT}\n\
         (run them in a login session of yours, e.g. over SSH, not under su)"
    )
}

const LINGER_NOTE: &str = "A user service runs while you are logged in. For a headless machine \
(SSH only, CI runners), let it run without a login session: loginctl enable-linger $USER";

pub(super) fn run(target: &Target, action: Action) -> anyhow::Result<i32> {
    let path = unit_path(target);
    let systemctl = find_on_path("systemctl");
    match action {
        Action::Install { now } => {
            let systemctl = systemctl.ok_or_else(|| {
                anyhow!(
                    "systemctl is not on PATH, so there is no systemd to run r1 as a service; \
                     nothing was written. Without systemd, run `r1 serve` under your own \
                     supervisor (or let r1 start it on demand, as it does by default)"
                )
            })?;
            install(target, &path, &systemctl, now)
        }
        Action::Uninstall => uninstall(&path, systemctl.as_deref()),
        Action::Status { json } => {
            status(target, &path, systemctl.as_deref()).print(json);
            Ok(0)
        }
    }
}

fn install(target: &Target, path: &Path, systemctl: &Path, now: bool) -> anyhow::Result<i32> {
    let text = unit_text(&target.exe, target.r1_home_env.as_deref());
    let written = write_unit(path, &text)?;
    output::line(&match written {
        Written::Created => format!("installed {}", path.display()),
        Written::Updated => format!("updated {}", path.display()),
        Written::Unchanged => format!("already installed: {} (unchanged)", path.display()),
    });
    output::line(&format!("  ExecStart={} serve", target.exe.display()));
    let reload = run_tool(systemctl, &["--user", "daemon-reload"])?;
    if !reload.success {
        if no_user_manager(&reload) {
            eprintln!("r1: {}", no_manager_message(&reload.message()));
            // The unit is in place; but the start that --now asked for did not happen.
            return Ok(if now { 1 } else { 0 });
        }
        return Err(anyhow!(
            "the unit is written, but `systemctl --user daemon-reload` failed: {}",
            reload.message()
        ));
    }
    if now {
        let enable = run_tool(systemctl, &["--user", "enable", "--now", UNIT_NAME])?;
        if !enable.success {
            if no_user_manager(&enable) {
                eprintln!("r1: {}", no_manager_message(&enable.message()));
            } else {
                eprintln!(
                    "r1: `systemctl --user enable --now {UNIT_NAME}` failed: {}\n\
                     `journalctl --user -u r1` shows the service's log",
                    enable.message()
                );
            }
            return Ok(1);
        }
        let s = status(target, path, Some(systemctl));
        match (s.running, s.pid) {
            (Some(true), Some(pid)) => output::line(&format!("enabled and running (pid {pid})")),
            _ => output::line("enabled and started"),
        }
        if written == Written::Updated {
            output::line(&format!(
                "  if it was already running, it still runs the old unit: systemctl --user restart {UNIT_NAME}"
            ));
        }
        if let Some(pid) = running_daemon(&target.state_dir).filter(|p| Some(*p) != s.pid) {
            output::line(&format!(
                "  note: a daemon started outside the service (pid {pid}) serves {} now; \
                 the service takes over once it stops (`r1 ctl shutdown`)",
                target.state_dir.display()
            ));
        }
    } else {
        output::line(&format!(
            "not enabled yet; to start it now and at every login: r1 serve --install --now (or {ENABLE_HINT})"
        ));
    }
    output::line(LINGER_NOTE);
    Ok(0)
}

fn uninstall(path: &Path, systemctl: Option<&Path>) -> anyhow::Result<i32> {
    if !path.exists() {
        output::line(&format!(
            "r1 is not installed as a service (no {}); nothing to do",
            path.display()
        ));
        return Ok(0);
    }
    let mut manager_ok = false;
    if let Some(systemctl) = systemctl {
        let disable = run_tool(systemctl, &["--user", "disable", "--now", UNIT_NAME])?;
        if disable.success {
            manager_ok = true;
            output::line("stopped and disabled r1.service");
        } else if no_user_manager(&disable) {
            output::line(&format!(
                "no systemd user manager answered ({}), so nothing runs under it",
                disable.message()
            ));
        } else {
            return Err(anyhow!(
                "`systemctl --user disable --now {UNIT_NAME}` failed, so the unit is left in place: {}",
                disable.message()
            ));
        }
    }
    remove_unit(path)?;
    output::line(&format!("removed {}", path.display()));
    if let (Some(systemctl), true) = (systemctl, manager_ok) {
        // Forget the removed unit and any failed state it left; neither changes what
        // was done, so a failure here is not one of the uninstall.
        let _ = run_tool(systemctl, &["--user", "daemon-reload"]);
        let _ = run_tool(systemctl, &["--user", "reset-failed", UNIT_NAME]);
    }
    Ok(0)
}

fn status(target: &Target, path: &Path, systemctl: Option<&Path>) -> ServiceStatus {
    let exec = std::fs::read_to_string(path).ok().and_then(|t| exec_of(&t));
    let mut s = ServiceStatus::new("systemd", UNIT_NAME, path, exec, target);
    let Some(systemctl) = systemctl else {
        s.manager_error = Some("systemctl is not on PATH".into());
        return s;
    };
    let show = run_tool(
        systemctl,
        &[
            "--user",
            "show",
            UNIT_NAME,
            "--property=LoadState,UnitFileState,ActiveState,MainPID",
        ],
    );
    match show {
        Ok(out) if out.success => {
            let prop = |name: &str| {
                out.stdout.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|r| r.strip_prefix('='))
                        .map(str::trim)
                })
            };
            s.enabled = prop("UnitFileState").map(|v| v == "enabled" || v == "enabled-runtime");
            s.running = prop("ActiveState").map(|v| v == "active" || v == "reloading");
            s.pid = prop("MainPID")
                .and_then(|p| p.parse::<u32>().ok())
                .filter(|p| *p != 0);
        }
        Ok(out) if no_user_manager(&out) => {
            s.manager_error = Some(format!(
                "no systemd user manager answered: {}",
                out.message()
            ));
        }
        Ok(out) => s.manager_error = Some(format!("systemctl --user show: {}", out.message())),
        Err(e) => s.manager_error = Some(format!("{e:#}")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_binary_with_restart_and_no_new_privileges() {
        let unit = unit_text(Path::new("/usr/local/bin/r1"), None);
        assert!(
            unit.contains("\nExecStart=/usr/local/bin/r1 serve\n"),
            "{unit}"
        );
        assert!(unit.contains("\nRestart=on-failure\n"));
        assert!(unit.contains("\nRestartSec=5s\n"));
        assert!(unit.contains("\nNoNewPrivileges=yes\n"));
        assert!(unit.contains("\nWantedBy=default.target\n"));
        assert!(
            !unit.contains("ProtectHome="),
            "agents work in home directories"
        );
        assert!(
            !unit.contains("Environment="),
            "the default state dir needs no R1_HOME"
        );
        assert_eq!(exec_of(&unit), Some(PathBuf::from("/usr/local/bin/r1")));
    }

    #[test]
    fn odd_paths_are_quoted_and_read_back() {
        let exe = Path::new("/home/a b/100% \"r1\"/$bin\\r1");
        let unit = unit_text(exe, Some(Path::new("/srv/r1 home/%h")));
        assert!(
            unit.contains("ExecStart=\"/home/a b/100%% \\\"r1\\\"/$$bin\\\\r1\" serve\n"),
            "{unit}"
        );
        assert!(
            unit.contains("Environment=\"R1_HOME=/srv/r1 home/%%h\"\n"),
            "{unit}"
        );
        assert_eq!(exec_of(&unit).as_deref(), Some(exe));
    }

    #[test]
    fn the_unit_dir_follows_xdg_config_home_only_when_absolute() {
        let home = Path::new("/home/u");
        assert_eq!(
            unit_dir(home, None),
            PathBuf::from("/home/u/.config/systemd/user")
        );
        assert_eq!(
            unit_dir(home, Some("/cfg".into())),
            PathBuf::from("/cfg/systemd/user")
        );
        assert_eq!(
            unit_dir(home, Some("rel".into())),
            PathBuf::from("/home/u/.config/systemd/user")
        );
    }

    #[test]
    fn a_missing_bus_is_told_from_other_failures() {
        let out = |stderr: &str| ToolOutput {
            success: false,
            stdout: String::new(),
            stderr: stderr.into(),
        };
        assert!(no_user_manager(&out(
            "Failed to connect to bus: No medium found"
        )));
        assert!(no_user_manager(&out(
            "Failed to connect to user scope bus via local transport: $DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR not defined"
        )));
        assert!(!no_user_manager(&out(
            "Unit file r1.service does not exist."
        )));
    }
}
