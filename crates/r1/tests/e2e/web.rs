//! Issue 19: `web.*`, the daemon's web UI driven through Playwright MCP. What needs no
//! browser is here: the origin rule and the errors that say what to install. The
//! browser itself is driven by the TypeScript MCP SDK in
//! crates/r1/tests/mcp_node/web.test.mjs.

use serde_json::json;

use crate::support::*;

#[test]
fn navigate_refuses_other_origins_naming_its_own() {
    let home = Home::new();
    let d = home.serve(&[]);
    let origin = format!("http://127.0.0.1:{}", d.port());
    for url in [
        "https://example.com/",
        "http://localhost:1/",
        &format!("{origin}@evil.example/"),
        "file:///etc/passwd",
    ] {
        let r = d.post("/v1/web/navigate", &json!({ "url": url }).to_string());
        assert_eq!(r.status, 400, "{url}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error_code"], "validation", "{v}");
        assert!(
            v["error_message"].as_str().unwrap().contains(&origin),
            "{v}"
        );
    }
}

#[test]
fn missing_node_package_and_chromium_are_named_with_how_to_install_them() {
    // A PATH with neither node nor chromium on it, and no @playwright/mcp in $R1_HOME.
    let home = Home::new();
    let empty = tempfile::tempdir().unwrap();
    let d = home.serve_env(&[], &[("PATH", empty.path().to_str().unwrap())]);
    let r = d.post("/v1/web/snapshot", "{}");
    assert_eq!(r.status, 409, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error_code"], "conflict", "{v}");
    let message = v["error_message"].as_str().unwrap();
    for part in [
        "Node.js 20 or later",
        "apt-get install nodejs npm",
        "@playwright/mcp",
        &format!("npm install --prefix {}", home.path.join("web").display()),
        "Chromium",
        "apt-get install chromium",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    // Every web.* operation says the same.
    let r = d.post("/v1/web/click", &json!({"selector": "Send"}).to_string());
    assert_eq!(r.json()["error_code"], "conflict", "{}", r.body);
}

#[test]
fn with_node_and_chromium_only_the_package_is_named() {
    let have = |p: &str| std::path::Path::new(p).exists();
    if !have("/usr/bin/node") || !have("/usr/bin/chromium") {
        eprintln!("skipped: needs /usr/bin/node and /usr/bin/chromium");
        return;
    }
    let home = Home::new();
    write_config(
        &home,
        "[web]\nnode = \"/usr/bin/node\"\nchromium = \"/usr/bin/chromium\"\nplaywright_mcp = \"/nonexistent/mcp\"\n",
    );
    let d = home.serve(&[]);
    let r = d.post(
        "/v1/web/fill",
        &json!({"selector": "Message", "value": "x"}).to_string(),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let message = r.json()["error_message"].as_str().unwrap().to_string();
    assert!(message.contains("/nonexistent/mcp"), "{message}");
    assert!(message.contains("@playwright/mcp@"), "{message}");
    assert!(!message.contains("Node.js"), "{message}");
    assert!(!message.contains("Chromium"), "{message}");
}
