//! `web.*`: the daemon's own web UI driven in a headless browser (Playwright MCP), so an
//! agent sees and does what a person in the browser would.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The params of `web.navigate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebNavigateParams {
    /// Where to go: a URL on the daemon's own origin (`http://127.0.0.1:<port>/…`) or a
    /// path on it (`/`). Any other origin is refused.
    pub url: String,
}

/// The params of `web.click`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebClickParams {
    /// The element: its accessibility name as the snapshot shows it (`Send`), a ref
    /// from the last snapshot (`e12`), a CSS selector (`[data-testid=composer-send]`)
    /// or a Playwright locator (`getByRole('button', { name: 'Send' })`).
    pub selector: String,
}

/// The params of `web.fill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebFillParams {
    /// The field: its accessibility name (`Message`), a ref from the last snapshot, a
    /// CSS selector or a Playwright locator, as for `web.click`.
    pub selector: String,
    /// The text the field is set to (what was in it is replaced).
    pub value: String,
}

/// The page the browser shows after an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WebPageView {
    /// The page's URL (a login code is never shown: the page scrubs it).
    pub url: String,
    /// The page's title, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The accessibility snapshot, as Playwright MCP renders it (YAML: one line per
    /// node, `- role "name" [ref=eN]`); a `ref` can be passed as a `selector`.
    pub snapshot: String,
}
