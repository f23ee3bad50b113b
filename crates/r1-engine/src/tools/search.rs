//! The `search` tool: a regular expression over the files under a path, skipping what
//! `.gitignore` ignores, hidden files and binary files.
//!
//! The walk always starts at the workdir, pruned to the directories leading to the
//! searched path, rather than at the path itself: that way the `.gitignore` files of the
//! directories above it (inside the workdir) apply, while `parents(false)` and
//! `git_global(false)` keep the walker from reading ignore files outside the workdir.
//! Symlinks are not followed, so a link to a directory or file outside is never read.
//! The walk never enters a protected directory (the state directory, when the workdir
//! contains it) and never opens a protected file: paths are checked before descending,
//! and each file's `(dev, inode)` before and after opening, so a hard link to the token is
//! skipped too.

use std::fs;
use std::io::Read;
use std::path::Path;

use ignore::WalkBuilder;
use regex::{Regex, RegexBuilder};
use tokio_util::sync::CancellationToken;

use super::path::{canonical_root, resolve};
use super::ToolError;
use crate::sandbox::{Identities, Protected};

/// How many matching lines are returned; more would drown the model's context.
const MAX_MATCHES: usize = 200;

/// How many files are read before the search stops, so a huge tree cannot keep a
/// blocking thread busy for minutes.
const MAX_FILES: usize = 50_000;

/// Files larger than this are skipped: they are data, not source.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// A matched line is cut to this many characters.
const MAX_LINE_CHARS: usize = 300;

/// A NUL byte in this many leading bytes marks a file as binary (git's heuristic).
const BINARY_SNIFF: usize = 8 * 1024;

/// Searches `pattern` in the files under `requested`.
pub(crate) fn search(
    workdir: &Path,
    requested: &str,
    pattern: &str,
    protected: &Protected,
    cancel: &CancellationToken,
) -> Result<String, ToolError> {
    let regex = RegexBuilder::new(pattern)
        .build()
        .map_err(|e| ToolError::Args(format!("invalid regular expression: {e}")))?;
    let root = canonical_root(workdir)?;
    let target = resolve(&root, requested, protected)?;
    let meta = fs::metadata(&target.path)
        .map_err(|e| ToolError::io(format!("cannot search `{}`", target.display), e))?;

    let mut found = Found::default();
    if meta.is_file() {
        // A file named explicitly is searched even if it is ignored, as ripgrep does.
        search_file(&root, &target.path, &regex, &target.ids, &mut found);
    } else {
        let scope = target.path.clone();
        let fence = protected.clone();
        let walk = WalkBuilder::new(&root)
            .hidden(false)
            .parents(false)
            .git_global(false)
            .require_git(false)
            .follow_links(false)
            // Not `max_filesize`: in ignore 0.4 it makes the walker return before
            // calling `filter_entry` for files. Size is checked in `search_file`.
            .filter_entry(move |entry| {
                let path = entry.path();
                // Entry paths are real: the root is canonical and links are not followed.
                if fence.covering(path).is_some() {
                    return false;
                }
                if path.starts_with(&scope) {
                    // Hidden entries below the searched directory are skipped (`.git`
                    // among them), but the searched directory itself may be hidden.
                    path == scope || !is_hidden(path)
                } else {
                    // Only the directories leading down to the searched one.
                    scope.starts_with(path)
                }
            })
            .build();
        for entry in walk {
            if cancel.is_cancelled() {
                return Err(ToolError::Failed("search cancelled".to_owned()));
            }
            // Unreadable entries are skipped: one bad directory should not void the rest.
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            if found.files >= MAX_FILES {
                found.stopped_early = true;
                break;
            }
            search_file(&root, entry.path(), &regex, &target.ids, &mut found);
            if found.more {
                break;
            }
        }
    }
    Ok(found.render(pattern, &target.display))
}

#[derive(Default)]
struct Found {
    lines: Vec<String>,
    files: usize,
    more: bool,
    stopped_early: bool,
}

impl Found {
    fn render(self, pattern: &str, display: &str) -> String {
        if self.lines.is_empty() {
            let mut out = format!("no matches for `{pattern}` under `{display}`");
            if self.stopped_early {
                out.push_str(&format!(" (stopped after {MAX_FILES} files)"));
            }
            return out;
        }
        let mut out = self.lines.join("\n");
        if self.more {
            out.push_str(&format!(
                "\n[stopped at {MAX_MATCHES} matches; narrow the pattern or the path]"
            ));
        } else if self.stopped_early {
            out.push_str(&format!("\n[stopped after {MAX_FILES} files]"));
        }
        out
    }
}

/// Searches one file, unless it is a protected file under another name (checked
/// before opening it, and again on the opened descriptor in case it was swapped).
fn search_file(root: &Path, path: &Path, regex: &Regex, ids: &Identities, found: &mut Found) {
    found.files += 1;
    match fs::symlink_metadata(path) {
        Ok(meta) if ids.matching(&meta).is_none() => {}
        _ => return,
    }
    let Ok(file) = fs::File::open(path) else {
        return;
    };
    match file.metadata() {
        Ok(meta) if ids.matching(&meta).is_none() && meta.len() <= MAX_FILE_BYTES => {}
        _ => return,
    }
    let mut bytes = Vec::new();
    // Bounded again in case the file grows between the check and the read.
    if file.take(MAX_FILE_BYTES).read_to_end(&mut bytes).is_err() {
        return;
    }
    if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        return;
    }
    let shown = path
        .strip_prefix(root)
        .map_or_else(|_| path.to_string_lossy(), |p| p.to_string_lossy());
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if !regex.is_match(line) {
            continue;
        }
        if found.lines.len() >= MAX_MATCHES {
            found.more = true;
            return;
        }
        let mut text: String = line.chars().take(MAX_LINE_CHARS).collect();
        if text.len() < line.len() {
            text.push('…');
        }
        found.lines.push(format!("{shown}:{}: {text}", index + 1));
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
}
