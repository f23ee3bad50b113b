//! Path completion for the workdir prompt: the one function of this crate that reads
//! the file system, run by hosts for [`Cmd::Complete`](crate::Cmd::Complete).

use std::path::Path;

/// The most completions offered at once.
const MAX_CANDIDATES: usize = 200;

/// The directories whose path starts with `input`: `input` is absolute, relative to
/// `cwd`, or starts with `~/` (`home`). Each candidate is `input`'s directory part
/// followed by a directory name and `/`, sorted; hidden directories only when the
/// typed name starts with a dot. Unreadable directories give none.
pub fn complete_path(input: &str, cwd: &str, home: Option<&Path>) -> Vec<String> {
    let (dir_part, stem) = match input.rfind('/') {
        Some(i) => (&input[..=i], &input[i + 1..]),
        None => ("", input),
    };
    let dir = if let Some(rest) = dir_part.strip_prefix("~/") {
        match home {
            Some(h) => h.join(rest),
            None => return Vec::new(),
        }
    } else if dir_part.starts_with('/') {
        Path::new(dir_part).to_path_buf()
    } else {
        Path::new(cwd).join(dir_part)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(stem) && (stem.starts_with('.') || !name.starts_with('.')))
        .map(|name| format!("{dir_part}{name}/"))
        .collect();
    out.sort();
    out.truncate(MAX_CANDIDATES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_complete_relative_absolute_and_home() {
        let tmp = std::env::temp_dir().join(format!("r1-tui-paths-{}", std::process::id()));
        for d in ["alpha", "alps", "beta", ".hidden"] {
            std::fs::create_dir_all(tmp.join(d)).unwrap_or_default();
        }
        std::fs::write(tmp.join("alfile"), "x").unwrap_or_default();
        let cwd = tmp.to_string_lossy().to_string();
        assert_eq!(complete_path("al", &cwd, None), ["alpha/", "alps/"]);
        assert_eq!(complete_path("./b", &cwd, None), ["./beta/"]);
        assert_eq!(complete_path(".h", &cwd, None), [".hidden/"]);
        let abs = format!("{cwd}/alph");
        assert_eq!(complete_path(&abs, "/", None), [format!("{cwd}/alpha/")]);
        assert_eq!(complete_path("~/be", "/", Some(&tmp)), ["~/beta/"]);
        assert!(complete_path("nope/x", &cwd, None).is_empty());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
