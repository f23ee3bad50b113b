//! What every child process r1 starts shares: the credential rule for its environment
//! and killing its whole process group. Tools, exec agents and MCP servers all use these,
//! so the rule cannot drift between them.

/// True for environment variables that may hold one of r1's credentials or another
/// secret: r1's own (`R1_…`) and anything named like a token, secret or password. With
/// `api_keys`, names containing `API_KEY` count too; an exec agent keeps them, because it
/// needs its own provider key.
pub(crate) fn is_secret_name(name: &str, api_keys: bool) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("R1_")
        || ["TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|word| upper.contains(word))
        || (api_keys && upper.contains("API_KEY"))
}

/// Kills a process group r1 created (SIGKILL).
pub(crate) fn kill_group(pgid: libc::pid_t) {
    // kill(-1) would signal every process of the user and kill(0) the daemon's own
    // group; a child's pid is never either, but this is the one place to be sure.
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; the negative pid
    // addresses the process group r1 created for the child. ESRCH (the group is already
    // gone) is the expected outcome after a clean exit and is ignored.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::is_secret_name;

    #[test]
    fn secret_names() {
        assert!(is_secret_name("R1_HOME", true));
        assert!(is_secret_name("github_token", true));
        assert!(is_secret_name("OPENAI_API_KEY", true));
        assert!(!is_secret_name("OPENAI_API_KEY", false));
        assert!(is_secret_name("db_password", false));
        assert!(!is_secret_name("PATH", true));
    }
}
