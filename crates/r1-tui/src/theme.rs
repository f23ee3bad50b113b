//! Colours: what the terminal can show ([`ColorMode`], from `NO_COLOR`, `COLORTERM` and
//! `TERM`) and the style of each role in the view ([`Palette`]).

use ratatui::style::{Color, Modifier, Style};
use serde::Serialize;

/// How many colours the view may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// None at all (`NO_COLOR`): only bold, dim, italic and reverse.
    None,
    /// The 16 ANSI colours, which every terminal has.
    Basic,
    /// The xterm 256-colour palette.
    Indexed,
    /// 24-bit colour (`COLORTERM=truecolor` or `24bit`).
    TrueColor,
}

impl ColorMode {
    /// The mode for a terminal with these environment values: `NO_COLOR` set to
    /// anything but the empty string turns colour off (<https://no-color.org>);
    /// `COLORTERM` says whether 24-bit colour works; a `TERM` ending in `256color`
    /// gets the 256-colour palette; anything else the 16 ANSI colours.
    pub fn detect(
        no_color: Option<&str>,
        colorterm: Option<&str>,
        term: Option<&str>,
    ) -> ColorMode {
        if no_color.is_some_and(|v| !v.is_empty()) {
            return ColorMode::None;
        }
        if colorterm
            .is_some_and(|c| c.eq_ignore_ascii_case("truecolor") || c.eq_ignore_ascii_case("24bit"))
        {
            return ColorMode::TrueColor;
        }
        match term {
            Some(t) if t.contains("256color") || t.contains("direct") => ColorMode::Indexed,
            Some("dumb") => ColorMode::None,
            _ => ColorMode::Basic,
        }
    }
}

/// What a piece of the view is, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Ordinary text.
    Text,
    /// Secondary text: hints, timestamps, notices.
    Dim,
    /// Titles and highlights.
    Accent,
    /// The user's messages.
    User,
    /// Tool calls and their results.
    Tool,
    /// Errors.
    Error,
    /// Warnings and things waiting on the user.
    Warn,
    /// Things that went well.
    Ok,
    /// A pane's border.
    Border,
    /// The focused pane's border.
    Focused,
    /// The selected line of a list.
    Selected,
    /// Code.
    Code,
    /// A keyword in code.
    Keyword,
    /// A string literal in code.
    Str,
    /// A comment in code.
    Comment,
}

/// The styles of a [`ColorMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    /// The mode it draws with.
    pub mode: ColorMode,
}

impl Palette {
    /// A palette for `mode`.
    pub fn new(mode: ColorMode) -> Palette {
        Palette { mode }
    }

    /// The style of `role`. With no colour, roles keep only their modifiers, so the
    /// selection and the focus still show (reverse video, bold).
    pub fn style(&self, role: Role) -> Style {
        let s = Style::default();
        let modifiers = match role {
            Role::Accent | Role::Focused | Role::Keyword => s.add_modifier(Modifier::BOLD),
            Role::User => s.add_modifier(Modifier::BOLD),
            Role::Dim | Role::Comment => s.add_modifier(Modifier::DIM),
            Role::Selected => s.add_modifier(Modifier::REVERSED),
            Role::Error | Role::Warn => s.add_modifier(Modifier::BOLD),
            _ => s,
        };
        let (rgb, indexed, basic) = match role {
            Role::Text => return modifiers,
            Role::Dim => (
                Color::Rgb(140, 140, 150),
                Color::Indexed(245),
                Color::DarkGray,
            ),
            Role::Accent => (
                Color::Rgb(110, 170, 255),
                Color::Indexed(75),
                Color::LightBlue,
            ),
            Role::User => (Color::Rgb(130, 210, 140), Color::Indexed(114), Color::Green),
            Role::Tool => (
                Color::Rgb(200, 160, 255),
                Color::Indexed(141),
                Color::Magenta,
            ),
            Role::Error => (Color::Rgb(255, 100, 100), Color::Indexed(203), Color::Red),
            Role::Warn => (Color::Rgb(250, 200, 80), Color::Indexed(221), Color::Yellow),
            Role::Ok => (Color::Rgb(120, 200, 120), Color::Indexed(114), Color::Green),
            Role::Border => (
                Color::Rgb(90, 90, 100),
                Color::Indexed(240),
                Color::DarkGray,
            ),
            Role::Focused => (
                Color::Rgb(110, 170, 255),
                Color::Indexed(75),
                Color::LightBlue,
            ),
            Role::Selected => {
                return match self.mode {
                    ColorMode::None => modifiers,
                    ColorMode::Basic => s.bg(Color::Blue).fg(Color::White),
                    ColorMode::Indexed => s.bg(Color::Indexed(24)).fg(Color::Indexed(255)),
                    ColorMode::TrueColor => {
                        s.bg(Color::Rgb(40, 70, 110)).fg(Color::Rgb(240, 240, 240))
                    }
                }
            }
            Role::Code => (
                Color::Rgb(220, 200, 150),
                Color::Indexed(180),
                Color::Yellow,
            ),
            Role::Keyword => (Color::Rgb(120, 180, 255), Color::Indexed(111), Color::Cyan),
            Role::Str => (Color::Rgb(150, 210, 130), Color::Indexed(150), Color::Green),
            Role::Comment => (
                Color::Rgb(120, 120, 130),
                Color::Indexed(243),
                Color::DarkGray,
            ),
        };
        let color = match self.mode {
            ColorMode::None => return modifiers,
            ColorMode::Basic => basic,
            ColorMode::Indexed => indexed,
            ColorMode::TrueColor => rgb,
        };
        modifiers.fg(color)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_follows_the_environment() {
        assert_eq!(
            ColorMode::detect(Some("1"), Some("truecolor"), Some("xterm-256color")),
            ColorMode::None
        );
        // An empty NO_COLOR does not count (no-color.org).
        assert_eq!(
            ColorMode::detect(Some(""), None, Some("xterm-256color")),
            ColorMode::Indexed
        );
        assert_eq!(
            ColorMode::detect(None, Some("24bit"), Some("xterm")),
            ColorMode::TrueColor
        );
        assert_eq!(
            ColorMode::detect(None, None, Some("screen-256color")),
            ColorMode::Indexed
        );
        assert_eq!(
            ColorMode::detect(None, None, Some("xterm")),
            ColorMode::Basic
        );
        assert_eq!(ColorMode::detect(None, None, None), ColorMode::Basic);
    }

    #[test]
    fn no_colour_means_no_colour_in_any_role() {
        let p = Palette::new(ColorMode::None);
        for role in [
            Role::Text,
            Role::Dim,
            Role::Accent,
            Role::User,
            Role::Tool,
            Role::Error,
            Role::Warn,
            Role::Ok,
            Role::Border,
            Role::Focused,
            Role::Selected,
            Role::Code,
            Role::Keyword,
            Role::Str,
            Role::Comment,
        ] {
            let s = p.style(role);
            assert_eq!((s.fg, s.bg), (None, None), "{role:?}");
        }
        // 256 colours never use 24-bit values.
        let p = Palette::new(ColorMode::Indexed);
        assert!(!matches!(p.style(Role::Accent).fg, Some(Color::Rgb(..))));
    }
}
