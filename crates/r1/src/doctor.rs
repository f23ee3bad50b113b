//! `r1 doctor`: check the state directory and the daemon, and say what to fix, and whether
//! commands would run in the Landlock sandbox on this kernel. It never starts a daemon.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use clap::Args;
use r1_client::ConnectOptions;
use serde::Serialize;

use crate::output;

/// Check r1's state directory, registration, token and daemon, and print what to fix.
/// Exits 0 when everything is in order, 1 otherwise. Never starts a daemon.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Whether the binary the daemon was started from is still the one on disk: after an
/// upgrade or a rebuild it is not, and `r1 ctl restart` moves the daemon onto it.
/// `None` for a daemon too old to say which binary it runs.
fn binary_check(reg: &r1_proto::Registration) -> Option<Check> {
    let (exe, running) = (reg.exe.as_deref()?, reg.build_id.as_deref()?);
    let check = match r1_daemon::build_id(Path::new(exe)) {
        Some(on_disk) if on_disk == running => Check {
            name: "binary",
            ok: true,
            detail: format!("the daemon runs {exe} as it is on disk"),
        },
        Some(on_disk) => {
            let version = std::process::Command::new(exe)
                .arg("--version")
                .stdin(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "an unknown version".into());
            Check {
                name: "binary",
                ok: false,
                detail: format!(
                    "{exe} on disk (build {on_disk}, {version}) differs from the running daemon's (build {running}, version {}); run `r1 ctl restart` to move the daemon onto it",
                    reg.version
                ),
            }
        }
        None => Check {
            name: "binary",
            ok: false,
            detail: format!(
                "the daemon's binary {exe} is gone from disk; reinstall r1, then run `r1 ctl restart`"
            ),
        },
    };
    Some(check)
}

fn private_file(path: &Path, name: &'static str) -> Check {
    match std::fs::symlink_metadata(path) {
        Ok(md) => {
            let mode = md.mode() & 0o777;
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            let ok = md.is_file() && md.uid() == me && mode & 0o077 == 0;
            Check {
                name,
                ok,
                detail: if ok {
                    format!("{} (mode {mode:o})", path.display())
                } else {
                    format!(
                        "{} has mode {mode:o}, uid {}: fix with `chmod 600 {}`",
                        path.display(),
                        md.uid(),
                        path.display()
                    )
                },
            }
        }
        Err(_) => Check {
            name,
            ok: false,
            detail: format!(
                "{} is missing (the daemon creates it on start)",
                path.display()
            ),
        },
    }
}

/// Runs the checks; returns the exit code.
pub fn run(home: &Path, args: DoctorArgs) -> i32 {
    let mut checks = Vec::new();
    let dir_ok = match std::fs::symlink_metadata(home) {
        Ok(md) => {
            let mode = md.mode() & 0o777;
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            let ok =
                md.is_dir() && !md.file_type().is_symlink() && md.uid() == me && mode & 0o077 == 0;
            checks.push(Check {
                name: "state directory",
                ok,
                detail: if ok {
                    format!("{} (mode {mode:o})", home.display())
                } else {
                    format!("{} must be a real directory you own with mode 700 (it has mode {mode:o}, uid {}): `chmod 700 {}`", home.display(), md.uid(), home.display())
                },
            });
            ok
        }
        Err(_) => {
            checks.push(Check {
                name: "state directory",
                ok: false,
                detail: format!(
                    "{} does not exist; any `r1 ctl` command creates it",
                    home.display()
                ),
            });
            false
        }
    };
    if dir_ok {
        checks.push(private_file(&home.join("token"), "token"));
        checks.push(private_file(&home.join("daemon.json"), "registration"));
    }
    // Whether commands and exec agents run confined on this kernel: found by trying it.
    // Not being able to confine is not a failure of the installation (older kernels have
    // no Landlock), so only a sandbox the kernel accepts but that does not hold fails.
    let sandbox = r1_engine::probe_sandbox();
    checks.push(Check {
        name: "sandbox",
        ok: sandbox.active()
            || !matches!(
                sandbox.enforcement,
                r1_engine::SandboxEnforcement::Full | r1_engine::SandboxEnforcement::Partial
            ),
        detail: sandbox.detail.clone(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    if let (true, Ok(rt)) = (dir_ok, rt) {
        let mut opts = ConnectOptions::new(home);
        opts.spawn = false;
        match rt.block_on(r1_client::connect(&opts)) {
            Ok(client) => {
                let reg = client.registration().clone();
                checks.push(Check {
                    name: "daemon",
                    ok: true,
                    detail: format!(
                        "pid {} version {} at {} and {}",
                        reg.pid, reg.version, reg.sock, reg.url
                    ),
                });
                if let Some(c) = binary_check(&reg) {
                    checks.push(c);
                }
                use r1_proto::Api;
                let engines = rt.block_on(client.engines_list(r1_proto::EmptyParams {}));
                if let Ok(l) = engines {
                    for e in l.engines {
                        checks.push(Check {
                            name: "engine",
                            ok: e.available,
                            detail: format!("{} ({}): {}", e.name, e.kind, e.reason),
                        });
                    }
                }
            }
            Err(e) => checks.push(Check {
                name: "daemon",
                ok: false,
                detail: format!("{e} (start it with `r1 serve`, or any `r1 ctl` command)"),
            }),
        }
    }
    // A refused hook is a warning, not a failure: the daemon runs fine without it.
    let warnings: Vec<String> = r1_daemon::hooks::discover(&home.join("hooks"), 30)
        .into_iter()
        .filter_map(|h| {
            let why = h.refused?;
            Some(format!(
                "hook {} is refused and never runs: {why}",
                h.path.display()
            ))
        })
        .collect();
    let ok = checks.iter().all(|c| c.ok);
    if args.json {
        output::json(&serde_json::json!({
            "ok": ok, "home": home, "checks": checks, "sandbox": sandbox, "warnings": warnings,
        }));
    } else {
        for w in &warnings {
            output::line(&format!("WARN {:<16} {w}", "hooks"));
        }
        for c in &checks {
            output::line(&format!(
                "{} {:<16} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
    }
    if ok {
        0
    } else {
        1
    }
}
