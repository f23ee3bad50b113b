//! Markdown-ish text to terminal lines of a given width: prose is word-wrapped (with
//! `inline code` and **bold**), headings, lists and quotes are marked, and code blocks
//! and tables are kept as written: never re-flowed, a line too long for the width is cut
//! into pieces with a `↪` in front of each continuation, so nothing is lost or joined.
//! Code is highlighted simply (keywords, strings, comments, numbers).

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::theme::{Palette, Role};

/// The mark in front of each continuation of a code or table line that did not fit.
pub const CONTINUATION: &str = "↪";

/// Renders `text` as lines at most `width` columns wide; `base` is the style of prose.
/// An unclosed code fence (a reply still streaming) runs to the end of the text.
pub fn render(text: &str, width: usize, pal: &Palette, base: Style) -> Vec<Line<'static>> {
    let width = width.max(4);
    let mut out = Vec::new();
    let mut fence: Option<(String, String)> = None; // (marker, language)
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if let Some((marker, lang)) = &fence {
            if trimmed.starts_with(marker.as_str()) && trimmed[marker.len()..].trim().is_empty() {
                out.push(Line::from(Span::styled(
                    line.to_string(),
                    pal.style(Role::Dim),
                )));
                fence = None;
            } else {
                let spans = highlight(line, lang, pal);
                out.extend(hard_wrap(spans, width, pal));
            }
            continue;
        }
        if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            let lang = trimmed[marker.len()..].trim().to_ascii_lowercase();
            out.push(Line::from(Span::styled(
                line.to_string(),
                pal.style(Role::Dim),
            )));
            fence = Some((marker.to_string(), lang));
            continue;
        }
        if trimmed.starts_with('|') {
            out.extend(hard_wrap(
                vec![Span::styled(line.to_string(), base)],
                width,
                pal,
            ));
            continue;
        }
        if trimmed.is_empty() {
            out.push(Line::default());
            continue;
        }
        let indent = line.len() - trimmed.len();
        let pad = " ".repeat(indent);
        if let Some(h) = heading(trimmed) {
            let style = pal.style(Role::Accent).add_modifier(Modifier::BOLD);
            out.extend(wrap(&inline(h, style, pal), width, vec![], vec![]));
        } else if let Some(item) = ["- ", "* ", "+ "]
            .iter()
            .find_map(|b| trimmed.strip_prefix(b))
        {
            let first = vec![Span::raw(format!("{pad}• "))];
            let rest = vec![Span::raw(format!("{pad}  "))];
            out.extend(wrap(&inline(item, base, pal), width, first, rest));
        } else if let Some((num, item)) = numbered(trimmed) {
            let first = vec![Span::raw(format!("{pad}{num} "))];
            let rest = vec![Span::raw(" ".repeat(indent + num.width() + 1))];
            out.extend(wrap(&inline(item, base, pal), width, first, rest));
        } else if let Some(q) = trimmed.strip_prefix('>') {
            let bar = vec![Span::styled(format!("{pad}│ "), pal.style(Role::Dim))];
            out.extend(wrap(
                &inline(q.trim_start(), pal.style(Role::Dim), pal),
                width,
                bar.clone(),
                bar,
            ));
        } else {
            let first = vec![Span::raw(pad.clone())];
            out.extend(wrap(
                &inline(trimmed, base, pal),
                width,
                first.clone(),
                first,
            ));
        }
    }
    out
}

/// The text of a `#`…`######` heading line.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.bytes().take_while(|b| *b == b'#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
        Some(line[hashes..].trim())
    } else {
        None
    }
}

/// `12.` and the rest of a numbered list item.
fn numbered(line: &str) -> Option<(&str, &str)> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 3 {
        return None;
    }
    let rest = line[digits..].strip_prefix(". ")?;
    Some((&line[..=digits], rest))
}

/// Splits prose into styled pieces: `code` and **bold**.
fn inline(text: &str, base: Style, pal: &Palette) -> Vec<(String, Style)> {
    let mut out: Vec<(String, Style)> = Vec::new();
    let mut cur = String::new();
    let mut bold = false;
    let mut rest = text;
    let style = |bold: bool| {
        if bold {
            base.add_modifier(Modifier::BOLD)
        } else {
            base
        }
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            if let Some(end) = after.find('`') {
                if !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), style(bold)));
                }
                out.push((after[..end].to_string(), pal.style(Role::Code)));
                rest = &after[end + 1..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("**") {
            if bold || after.contains("**") {
                if !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), style(bold)));
                }
                bold = !bold;
                rest = after;
                continue;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            cur.push(c);
        }
        rest = chars.as_str();
    }
    if !cur.is_empty() {
        out.push((cur, style(bold)));
    }
    out
}

/// Word-wraps styled pieces to `width`, the first line after `first`, the others after
/// `rest`. A word longer than a line is cut.
fn wrap(
    pieces: &[(String, Style)],
    width: usize,
    first: Vec<Span<'static>>,
    rest: Vec<Span<'static>>,
) -> Vec<Line<'static>> {
    let prefix_width = |p: &[Span<'static>]| p.iter().map(|s| s.content.width()).sum::<usize>();
    let mut lines = Vec::new();
    let mut line: Vec<Span<'static>> = first.clone();
    let mut used = prefix_width(&first);
    let mut fresh = true; // nothing but the prefix on the line yet
    let rest_width = prefix_width(&rest);
    // Tokens: runs of spaces or of other characters, each with its style.
    let mut tokens: Vec<(String, Style, bool)> = Vec::new();
    for (text, style) in pieces {
        let mut cur = String::new();
        let mut cur_space = false;
        for c in text.chars() {
            let space = c == ' ' || c == '\t';
            if !cur.is_empty() && space != cur_space {
                tokens.push((std::mem::take(&mut cur), *style, cur_space));
            }
            cur_space = space;
            cur.push(if c == '\t' { ' ' } else { c });
        }
        if !cur.is_empty() {
            tokens.push((cur, *style, cur_space));
        }
    }
    // A word's later pieces in other styles stick to it: only spaces break lines. Spaces
    // wait until the word after them is placed, so no line ends with one.
    let mut pending: Option<(String, Style)> = None;
    let mut i = 0;
    while i < tokens.len() {
        let (text, style, space) = &tokens[i];
        if *space {
            if !fresh {
                pending = Some((text.clone(), *style));
            }
            i += 1;
            continue;
        }
        // The whole word: this token and the non-space tokens glued to it.
        let mut j = i;
        let mut word_width = 0;
        while j < tokens.len() && !tokens[j].2 {
            word_width += tokens[j].0.width();
            j += 1;
        }
        let gap = pending.as_ref().map_or(0, |(t, _)| t.width());
        if used + gap + word_width > width && !fresh {
            lines.push(Line::from(std::mem::replace(&mut line, rest.clone())));
            used = rest_width;
            fresh = true;
        } else if let Some((t, st)) = pending.take() {
            used += t.width();
            line.push(Span::styled(t, st));
        }
        pending = None;
        for (text, style, _) in &tokens[i..j] {
            for c in text.chars() {
                let w = c.width().unwrap_or(0);
                // A word longer than the line: cut it where the line is full.
                if used + w > width && !fresh {
                    lines.push(Line::from(std::mem::replace(&mut line, rest.clone())));
                    used = rest_width;
                }
                fresh = false;
                push_char(&mut line, c, *style);
                used += w;
            }
        }
        i = j;
    }
    if !fresh || lines.is_empty() {
        lines.push(Line::from(line));
    }
    lines
}

/// Appends `c` to the last span of `line` when it has the same style.
fn push_char(line: &mut Vec<Span<'static>>, c: char, style: Style) {
    match line.last_mut() {
        Some(last) if last.style == style => last.content.to_mut().push(c),
        _ => line.push(Span::styled(c.to_string(), style)),
    }
}

/// Cuts one line of spans into pieces of at most `width` columns without re-flowing
/// it: continuations start with [`CONTINUATION`].
pub fn hard_wrap(spans: Vec<Span<'static>>, width: usize, pal: &Palette) -> Vec<Line<'static>> {
    let total: usize = spans.iter().map(|s| s.content.width()).sum();
    if total <= width {
        return vec![Line::from(spans)];
    }
    let cont = || {
        vec![Span::styled(
            format!("{CONTINUATION} "),
            pal.style(Role::Dim),
        )]
    };
    let cont_width = CONTINUATION.width() + 1;
    let mut lines = Vec::new();
    let mut line: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in spans {
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > cont_width {
                lines.push(Line::from(std::mem::replace(&mut line, cont())));
                used = cont_width;
            }
            push_char(&mut line, c, span.style);
            used += w;
        }
    }
    if !line.is_empty() {
        lines.push(Line::from(line));
    }
    lines
}

/// Words highlighted as keywords, across the languages agents write most.
const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "defer",
    "do",
    "done",
    "elif",
    "else",
    "enum",
    "esac",
    "export",
    "extends",
    "false",
    "fi",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "go",
    "if",
    "impl",
    "import",
    "in",
    "interface",
    "let",
    "loop",
    "match",
    "mod",
    "mut",
    "new",
    "nil",
    "None",
    "null",
    "package",
    "pass",
    "pub",
    "raise",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "switch",
    "then",
    "this",
    "throw",
    "trait",
    "true",
    "True",
    "False",
    "try",
    "type",
    "use",
    "var",
    "where",
    "while",
    "with",
    "yield",
];

/// Languages whose comments start with `#`.
const HASH_COMMENTS: &[&str] = &[
    "",
    "sh",
    "bash",
    "shell",
    "zsh",
    "console",
    "python",
    "py",
    "toml",
    "yaml",
    "yml",
    "ruby",
    "rb",
    "make",
    "makefile",
    "dockerfile",
    "conf",
    "ini",
    "perl",
    "r",
];

/// Highlights one line of code in `lang`: comments, strings, numbers and keywords.
fn highlight(line: &str, lang: &str, pal: &Palette) -> Vec<Span<'static>> {
    let code = pal.style(Role::Code);
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, spans: &mut Vec<Span<'static>>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        let style = if KEYWORDS.contains(&w.as_str()) {
            pal.style(Role::Keyword)
        } else if w.starts_with(|c: char| c.is_ascii_digit()) {
            pal.style(Role::Str)
        } else {
            code
        };
        spans.push(Span::styled(w, style));
    };
    let hash = HASH_COMMENTS.contains(&lang);
    let single_quotes = !matches!(lang, "rust" | "rs");
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let rest = &line[i..];
        let boundary = i == 0 || line[..i].ends_with(char::is_whitespace);
        if rest.starts_with("//") || (hash && c == '#' && boundary) {
            flush(&mut word, &mut spans);
            spans.push(Span::styled(rest.to_string(), pal.style(Role::Comment)));
            break;
        }
        if c == '"' || c == '`' || (c == '\'' && single_quotes) {
            flush(&mut word, &mut spans);
            let mut s = String::from(c);
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                s.push(d);
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == c {
                    break;
                }
            }
            spans.push(Span::styled(s, pal.style(Role::Str)));
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut spans);
            match spans.last_mut() {
                Some(last) if last.style == code => last.content.to_mut().push(c),
                _ => spans.push(Span::styled(c.to_string(), code)),
            }
        }
    }
    flush(&mut word, &mut spans);
    spans
}

/// The plain text of a line.
pub fn line_text(line: &Line<'_>) -> String {
    line.spans.iter().map(|s| s.content.as_ref()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::ColorMode;

    fn text(md: &str, width: usize) -> Vec<String> {
        render(
            md,
            width,
            &Palette::new(ColorMode::Indexed),
            Style::default(),
        )
        .iter()
        .map(line_text)
        .collect()
    }

    #[test]
    fn prose_wraps_at_words() {
        assert_eq!(
            text("the quick brown fox jumps over the lazy dog", 16),
            ["the quick brown", "fox jumps over", "the lazy dog"]
        );
        // A word longer than the line is cut, never lost.
        let long = text("abcdefghijklmnopqrstuvwxyz", 10).concat();
        assert_eq!(long, "abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn code_blocks_are_kept_as_written() {
        let md = "Look:\n```rust\nfn main() {\n    let x = \"a b c d e f g h\"; // words words words\n}\n```\nafter";
        let lines = text(md, 30);
        assert_eq!(lines[0], "Look:");
        assert_eq!(lines[1], "```rust");
        assert_eq!(lines[2], "fn main() {");
        // The long line is cut, not re-flowed: its pieces join back to the original.
        assert!(lines[3].starts_with("    let x = "));
        assert!(lines[4].starts_with(CONTINUATION));
        let joined: String = lines[3..]
            .iter()
            .take_while(|l| *l != "}")
            .map(|l| {
                l.trim_start_matches(&format!("{CONTINUATION} "))
                    .to_string()
            })
            .collect();
        assert_eq!(
            joined,
            "    let x = \"a b c d e f g h\"; // words words words"
        );
        assert!(lines.contains(&"}".to_string()));
        assert_eq!(lines.last().map(String::as_str), Some("after"));
        for l in &lines {
            assert!(l.width() <= 30, "{l:?}");
        }
    }

    #[test]
    fn an_unclosed_fence_is_code_to_the_end() {
        let lines = text("```\nlet a   =   1;\nmore   spaces", 40);
        assert_eq!(lines, ["```", "let a   =   1;", "more   spaces"]);
    }

    #[test]
    fn lists_headings_and_inline_code() {
        let lines = text("# Title\n- one two three four\n1. first\n`x` and **b**", 12);
        assert_eq!(lines[0], "Title");
        assert_eq!(lines[1], "• one two");
        assert_eq!(lines[2], "  three four");
        assert_eq!(lines[3], "1. first");
        assert_eq!(lines[4], "x and b");
    }

    #[test]
    fn keywords_strings_and_comments_are_highlighted() {
        let pal = Palette::new(ColorMode::Indexed);
        let spans = highlight("let s = \"hi\"; // note", "rust", &pal);
        let style_of = |t: &str| spans.iter().find(|s| s.content == t).map(|s| s.style);
        assert_eq!(style_of("let"), Some(pal.style(Role::Keyword)));
        assert_eq!(style_of("\"hi\""), Some(pal.style(Role::Str)));
        assert_eq!(style_of("// note"), Some(pal.style(Role::Comment)));
    }

    #[test]
    fn tables_are_not_reflowed() {
        let lines = text("| a | b |\n|---|---|\n| 1 | 2 |", 40);
        assert_eq!(lines, ["| a | b |", "|---|---|", "| 1 | 2 |"]);
    }
}
