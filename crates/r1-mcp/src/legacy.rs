//! The five legacy mission tools of the agentic API, kept reachable until v2.0.0 under
//! both their `stoke_*` and bare names (`build_from_sow`, `get_mission_status`,
//! `get_mission_logs`, `cancel_mission`, `list_missions`). Each is a thin rename of a
//! `mission.*` operation: its arguments are rewritten into the operation's params and
//! its answer carries `links.deprecations[]` naming the replacement. They are not in
//! `tools/list`: clients that know them call them; new clients see only `r1_mission_*`.

use r1_proto::ApiError;
use serde_json::{json, Map, Value};

/// A legacy tool resolved to the operation that replaces it.
#[derive(Debug)]
pub(crate) struct Legacy {
    /// The replacing operation's dotted method, e.g. `mission.create`.
    pub method: &'static str,
    /// The operation's params, rewritten from the legacy arguments.
    pub params: Value,
    /// The deprecation note for `links.deprecations`.
    pub deprecation: String,
}

/// The legacy tool `name` (with or without `stoke_`) called with `args`: `None` when
/// `name` is not a legacy tool, an error when its arguments are not what it takes.
pub(crate) fn resolve(name: &str, args: &Value) -> Option<Result<Legacy, ApiError>> {
    let bare = name.strip_prefix("stoke_").unwrap_or(name);
    let (method, tool) = replacement(bare)?;
    let empty = Map::new();
    let args = match args {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => {
            return Some(Err(ApiError::validation(format!(
                "the arguments of `{name}` must be a JSON object"
            ))))
        }
    };
    let params = if bare == "build_from_sow" {
        build_from_sow(name, args)
    } else {
        // The others take the replacement's params unchanged.
        Ok(Value::Object(args.clone()))
    };
    Some(params.map(|params| Legacy {
        method,
        params,
        deprecation: deprecation(name, tool),
    }))
}

/// The method of the operation that replaces the legacy tool `name` (with or without
/// `stoke_`); `None` when `name` is not a legacy tool.
pub(crate) fn method_of(name: &str) -> Option<&'static str> {
    replacement(name.strip_prefix("stoke_").unwrap_or(name)).map(|(method, _)| method)
}

/// The operation (method, tool alias) that replaces the legacy tool `bare`.
fn replacement(bare: &str) -> Option<(&'static str, &'static str)> {
    Some(match bare {
        "build_from_sow" => ("mission.create", "r1.mission.create"),
        "get_mission_status" | "get_mission_logs" => ("mission.get", "r1.mission.get"),
        "cancel_mission" => ("mission.cancel", "r1.mission.cancel"),
        "list_missions" => ("mission.list", "r1.mission.list"),
        _ => return None,
    })
}

/// The deprecation note of the legacy tool `name`.
pub(crate) fn note(name: &str) -> String {
    let bare = name.strip_prefix("stoke_").unwrap_or(name);
    match replacement(bare) {
        Some((_, tool)) => deprecation(name, tool),
        None => format!("`{name}` is deprecated and will be removed in r1 v2.0.0"),
    }
}

fn deprecation(name: &str, tool: &str) -> String {
    format!(
        "`{name}` is deprecated and will be removed in r1 v2.0.0; use `{tool}` (`{}`)",
        tool.replace('.', "_")
    )
}

/// `build_from_sow {repo_root, sow, title?}`: a mission whose prompt is the statement
/// of work, in a worktree of `repo_root`.
fn build_from_sow(name: &str, args: &Map<String, Value>) -> Result<Value, ApiError> {
    if let Some(k) = args
        .keys()
        .find(|k| !matches!(k.as_str(), "repo_root" | "sow" | "title"))
    {
        return Err(ApiError::validation(format!(
            "`{name}` takes `repo_root`, `sow` and optionally `title`, not `{k}`"
        )));
    }
    let text = |k: &str| match args.get(k) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(ApiError::validation(format!("`{k}` must be a string"))),
    };
    let repo_root = text("repo_root")?
        .ok_or_else(|| ApiError::validation(format!("`{name}` needs `repo_root`")))?;
    let sow = text("sow")?.ok_or_else(|| ApiError::validation(format!("`{name}` needs `sow`")))?;
    let mut spec = json!({"prompt": sow, "workdir": repo_root});
    if let Some(title) = text("title")? {
        spec["title"] = Value::String(title);
    }
    Ok(json!({ "spec": spec }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn both_names_resolve_and_rewrite() {
        for name in ["build_from_sow", "stoke_build_from_sow"] {
            let l = resolve(name, &json!({"repo_root": "/r", "sow": "do it"}))
                .unwrap()
                .unwrap();
            assert_eq!(l.method, "mission.create");
            assert_eq!(
                l.params,
                json!({"spec": {"prompt": "do it", "workdir": "/r"}})
            );
            assert!(
                l.deprecation.contains("r1.mission.create"),
                "{}",
                l.deprecation
            );
        }
        let l = resolve("stoke_cancel_mission", &json!({"mission_id": "ms_1"}))
            .unwrap()
            .unwrap();
        assert_eq!(l.method, "mission.cancel");
        assert_eq!(l.params, json!({"mission_id": "ms_1"}));
        assert!(resolve("r1_mission_get", &json!({})).is_none());
        assert!(resolve("stoke_nothing", &json!({})).is_none());
    }

    #[test]
    fn bad_arguments_are_validation_errors() {
        for args in [
            json!({"sow": "x"}),
            json!({"repo_root": "/r", "sow": 3}),
            json!({"repo_root": "/r", "sow": "x", "extra": 1}),
            json!("nope"),
        ] {
            let e = resolve("build_from_sow", &args).unwrap().unwrap_err();
            assert_eq!(e.code, r1_proto::ErrorCode::Validation, "{args}");
            assert!(note("stoke_build_from_sow").contains("r1.mission.create"));
        }
    }
}
