//! The file tools: `read_file`, `write_file`, `edit_file`, `list_dir`. Blocking code,
//! run on the blocking pool by the caller.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::path::{canonical_root, resolve, Resolved};
use super::ToolError;
use crate::sandbox::Protected;

/// How much of a file `read_file` returns: enough for any source file a model should be
/// reading whole, small enough that one call cannot flood its context.
const READ_LIMIT: u64 = 256 * 1024;

/// The largest file `edit_file` will load; an edit rewrites the whole file.
const EDIT_LIMIT: u64 = 16 * 1024 * 1024;

/// How many entries `list_dir` returns before saying how many it left out.
const LIST_LIMIT: usize = 1000;

/// Tells temporary files of concurrent writes in one daemon apart.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Reads a text file, lossily decoded, cut at [`READ_LIMIT`].
pub(crate) fn read_file(
    workdir: &Path,
    requested: &str,
    protected: &Protected,
) -> Result<String, ToolError> {
    let root = canonical_root(workdir)?;
    let target = resolve(&root, requested, protected)?;
    let meta = regular_file(&target)?;
    let file = fs::File::open(&target.path)
        .map_err(|e| ToolError::io(format!("cannot read `{}`", target.display), e))?;
    let opened = file
        .metadata()
        .map_err(|e| ToolError::io(format!("cannot read `{}`", target.display), e))?;
    target.check_opened(&opened)?;
    let mut bytes = Vec::new();
    // One byte past the limit tells a cut file from one of exactly the limit's size.
    file.take(READ_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::io(format!("cannot read `{}`", target.display), e))?;
    let cut = bytes.len() as u64 > READ_LIMIT;
    if cut {
        bytes.truncate(READ_LIMIT as usize);
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if cut {
        text.push_str(&format!(
            "\n[truncated: showing the first {READ_LIMIT} bytes of {} bytes]",
            meta.len().max(READ_LIMIT + 1)
        ));
    }
    Ok(text)
}

/// Creates or replaces a file, creating missing parent directories.
pub(crate) fn write_file(
    workdir: &Path,
    requested: &str,
    content: &str,
    protected: &Protected,
) -> Result<String, ToolError> {
    let root = canonical_root(workdir)?;
    let target = resolve(&root, requested, protected)?;
    match fs::metadata(&target.path) {
        Ok(meta) if meta.is_dir() => {
            return Err(ToolError::Refused(format!(
                "`{}` is a directory; give a file path",
                target.display
            )))
        }
        Ok(meta) if !meta.is_file() => {
            return Err(ToolError::Refused(format!(
                "`{}` is not a regular file",
                target.display
            )))
        }
        _ => {}
    }
    let existed = target.path.exists();
    if let Some(parent) = target.path.parent() {
        // The parent is inside the workdir: `resolve` put the canonical existing part
        // first and only appended names that do not exist yet.
        fs::create_dir_all(parent).map_err(|e| {
            ToolError::io(
                format!("cannot create the directories of `{}`", target.display),
                e,
            )
        })?;
    }
    write_atomic(&target, content.as_bytes())?;
    let verb = if existed { "wrote" } else { "created" };
    Ok(format!(
        "{verb} `{}` ({} bytes, {} lines)",
        target.display,
        content.len(),
        content.lines().count()
    ))
}

/// Replaces the one occurrence of `old` in a file by `new`.
pub(crate) fn edit_file(
    workdir: &Path,
    requested: &str,
    old: &str,
    new: &str,
    protected: &Protected,
) -> Result<String, ToolError> {
    let root = canonical_root(workdir)?;
    let target = resolve(&root, requested, protected)?;
    if old.is_empty() {
        return Err(ToolError::Args(
            "`old` is empty; give the exact text to replace".to_owned(),
        ));
    }
    let meta = regular_file(&target)?;
    if meta.len() > EDIT_LIMIT {
        return Err(ToolError::Refused(format!(
            "`{}` is too large to edit ({} bytes; the limit is {EDIT_LIMIT}); use write_file or run_command",
            target.display,
            meta.len()
        )));
    }
    // Read through a descriptor checked again after opening: "found" or "not found"
    // would otherwise tell a guess about a protected file's content.
    let mut file = fs::File::open(&target.path)
        .map_err(|e| ToolError::io(format!("cannot read `{}`", target.display), e))?;
    let opened = file
        .metadata()
        .map_err(|e| ToolError::io(format!("cannot read `{}`", target.display), e))?;
    target.check_opened(&opened)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| {
        if e.kind() == ErrorKind::InvalidData {
            ToolError::Refused(format!(
                "`{}` is not valid UTF-8; edit_file only edits text files",
                target.display
            ))
        } else {
            ToolError::io(format!("cannot read `{}`", target.display), e)
        }
    })?;
    let Some(at) = text.find(old) else {
        return Err(ToolError::Refused(format!(
            "`old` was not found in `{}`; no change made. It must match the file exactly, \
             including whitespace and indentation: read the file and copy the text",
            target.display
        )));
    };
    // Overlapping occurrences count too: "aa" in "aaa" is ambiguous.
    let step = old.chars().next().map_or(1, char::len_utf8);
    if text[at + step..].contains(old) {
        let count = text.matches(old).count().max(2);
        return Err(ToolError::Refused(format!(
            "`old` matches {count} times in `{}`; no change made. Include more surrounding \
             text so that it matches exactly once",
            target.display
        )));
    }
    let mut edited = String::with_capacity(text.len() - old.len() + new.len());
    edited.push_str(&text[..at]);
    edited.push_str(new);
    edited.push_str(&text[at + old.len()..]);
    write_atomic(&target, edited.as_bytes())?;
    let line = text[..at].matches('\n').count() + 1;
    Ok(format!(
        "edited `{}`: replaced 1 occurrence at line {line}",
        target.display
    ))
}

/// Lists a directory: sorted names, directories with a trailing `/`.
/// A listing shows the names in the directory, the state directory's own name among
/// them when the workdir contains it, but never enters a protected directory.
pub(crate) fn list_dir(
    workdir: &Path,
    requested: &str,
    protected: &Protected,
) -> Result<String, ToolError> {
    let root = canonical_root(workdir)?;
    let target = resolve(&root, requested, protected)?;
    let context = || format!("cannot list `{}`", target.display);
    let meta = fs::metadata(&target.path).map_err(|e| ToolError::io(context(), e))?;
    if !meta.is_dir() {
        return Err(ToolError::Refused(format!(
            "`{}` is not a directory; use read_file for files",
            target.display
        )));
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(&target.path).map_err(|e| ToolError::io(context(), e))? {
        let entry = entry.map_err(|e| ToolError::io(context(), e))?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
        // The entry's own type, not its target's: a symlink is not followed, since its
        // target may be outside the workdir.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            name.push('/');
        }
        names.push(name);
    }
    if names.is_empty() {
        return Ok(format!("`{}` is empty", target.display));
    }
    names.sort();
    let total = names.len();
    names.truncate(LIST_LIMIT);
    let mut out = names.join("\n");
    if total > LIST_LIMIT {
        out.push_str(&format!(
            "\n[{} more entries not shown]",
            total - LIST_LIMIT
        ));
    }
    Ok(out)
}

/// The metadata of a regular file, or a clear refusal for a directory, a device, a FIFO.
fn regular_file(target: &Resolved) -> Result<fs::Metadata, ToolError> {
    let meta = fs::metadata(&target.path)
        .map_err(|e| ToolError::io(format!("cannot read `{}`", target.display), e))?;
    if meta.is_dir() {
        return Err(ToolError::Refused(format!(
            "`{}` is a directory; use list_dir",
            target.display
        )));
    }
    if !meta.is_file() {
        // Opening a FIFO would block and a device may never end.
        return Err(ToolError::Refused(format!(
            "`{}` is not a regular file",
            target.display
        )));
    }
    Ok(meta)
}

/// Writes through a temporary file in the same directory and renames it over the
/// target, so a reader never sees half a file and a failed write leaves the old one.
fn write_atomic(target: &Resolved, content: &[u8]) -> Result<(), ToolError> {
    let context = || format!("cannot write `{}`", target.display);
    let Some(dir) = target.path.parent() else {
        return Err(ToolError::Refused(format!(
            "`{}` is not a file path",
            target.display
        )));
    };
    let temp = dir.join(format!(
        ".r1-tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        // create_new fails on anything already there, a symlink included.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        if let Ok(meta) = fs::metadata(&target.path) {
            // Keep the mode of the file being replaced (an executable script stays one).
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &target.path)
    })();
    result.map_err(|e| {
        // Best effort: the temporary file is garbage whether or not removing it works.
        let _ = fs::remove_file(&temp);
        ToolError::io(context(), e)
    })
}
