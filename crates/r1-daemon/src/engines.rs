//! Engines: which providers sessions can use, from `[engines.<name>]` in
//! `daemon.toml`, or detected from the environment when nothing is configured; resolved
//! once when the daemon starts. API keys are read from the environment variable named
//! by `api_key_env` on a session's first turn; they are never written to disk, journals
//! or logs.

use std::path::Path;
use std::sync::Arc;

use r1_engine::{EchoProvider, Provider};
use r1_proto::{ApiError, EngineView};
use serde::Deserialize;

/// One `[engines.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `echo`, `openai`, `anthropic` or `exec`.
    pub kind: String,
    /// The API base URL (openai: `…/v1`; anthropic: the host).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The default model.
    #[serde(default)]
    pub model: Option<String>,
    /// The name of the environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Anthropic: `max_tokens` per request.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// exec: `claude`, `codex` or `generic`.
    #[serde(default)]
    pub adapter: Option<String>,
    /// exec: the program to run.
    #[serde(default)]
    pub command: Option<String>,
    /// exec: extra arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The context budget in tokens: past it, the oldest turns of a session are
    /// summarized (`session.compacted`). Default: by model family
    /// ([`crate::compact::default_context_tokens`]).
    #[serde(default)]
    pub context_tokens: Option<u64>,
}

/// A resolved engine: its name, config, and where it came from.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The name sessions use.
    pub name: String,
    /// Its settings.
    pub config: EngineConfig,
    /// Where it came from, for `r1 ctl engines`.
    pub origin: String,
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Every engine: `echo` always; the configured ones; or, with none configured, those
/// the environment provides (`OPENAI_BASE_URL`/`OPENAI_API_KEY` → `openai`,
/// `ANTHROPIC_API_KEY` → `anthropic`).
pub fn engines(configured: &toml::Table) -> Result<Vec<Engine>, String> {
    let mut out = vec![Engine {
        name: "echo".into(),
        config: EngineConfig {
            kind: "echo".into(),
            base_url: None,
            model: None,
            api_key_env: None,
            max_tokens: None,
            adapter: None,
            command: None,
            args: Vec::new(),
            context_tokens: None,
        },
        origin: "built in (offline; not a model)".into(),
    }];
    for (name, v) in configured {
        let config: EngineConfig = v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("[engines.{name}]: {}", e.message()))?;
        if !matches!(
            config.kind.as_str(),
            "echo" | "openai" | "anthropic" | "exec"
        ) {
            return Err(format!(
                "[engines.{name}]: kind must be echo, openai, anthropic or exec, not {:?}",
                config.kind
            ));
        }
        out.retain(|e| &e.name != name);
        out.push(Engine {
            name: name.clone(),
            config,
            origin: "daemon.toml".into(),
        });
    }
    if configured.is_empty() {
        if env_set("OPENAI_BASE_URL") || env_set("OPENAI_API_KEY") {
            out.push(Engine {
                name: "openai".into(),
                config: EngineConfig {
                    kind: "openai".into(),
                    base_url: std::env::var("OPENAI_BASE_URL").ok(),
                    model: std::env::var("OPENAI_MODEL").ok(),
                    api_key_env: Some("OPENAI_API_KEY".into()),
                    max_tokens: None,
                    adapter: None,
                    command: None,
                    args: Vec::new(),
                    context_tokens: None,
                },
                origin: "detected from OPENAI_BASE_URL / OPENAI_API_KEY".into(),
            });
        }
        if env_set("ANTHROPIC_API_KEY") {
            out.push(Engine {
                name: "anthropic".into(),
                config: EngineConfig {
                    kind: "anthropic".into(),
                    base_url: std::env::var("ANTHROPIC_BASE_URL").ok(),
                    model: std::env::var("ANTHROPIC_MODEL").ok(),
                    api_key_env: Some("ANTHROPIC_API_KEY".into()),
                    max_tokens: None,
                    adapter: None,
                    command: None,
                    args: Vec::new(),
                    context_tokens: None,
                },
                origin: "detected from ANTHROPIC_API_KEY".into(),
            });
        }
    }
    Ok(out)
}

/// The default engine: `default_engine` from the config, else the first detected or
/// configured model engine, else `echo`.
pub fn default_engine(all: &[Engine], configured_default: Option<&str>) -> String {
    if let Some(d) = configured_default {
        return d.to_string();
    }
    all.iter()
        .find(|e| e.config.kind != "echo")
        .map_or_else(|| "echo".to_string(), |e| e.name.clone())
}

/// The engines as `r1 ctl engines` shows them.
pub fn views(all: &[Engine], default: &str) -> Vec<EngineView> {
    all.iter()
        .map(|e| {
            let (available, why) = match (&e.config.kind[..], &e.config.api_key_env) {
                ("openai" | "anthropic", Some(var)) if !env_set(var) => (
                    e.config.kind == "openai" && e.config.base_url.is_some(),
                    format!("{var} is not set"),
                ),
                ("exec", _) if e.config.command.is_none() => (false, "no command".to_string()),
                _ => (true, "ready".to_string()),
            };
            EngineView {
                name: e.name.clone(),
                kind: e.config.kind.clone(),
                model: e.config.model.clone(),
                available,
                reason: format!("{why}; {}", e.origin),
                default: e.name == default,
            }
        })
        .collect()
}

/// Refuses a session start that could never run a turn: a model engine (`openai`,
/// `anthropic`) with no model passed and none configured. Checked at `session.start`,
/// so the user hears it at once instead of from every turn.
pub fn check_start(e: &Engine, model: Option<&str>) -> Result<(), ApiError> {
    let needs_model = matches!(e.config.kind.as_str(), "openai" | "anthropic");
    if needs_model && model.is_none() && e.config.model.is_none() {
        let env = match e.config.kind.as_str() {
            "openai" => " (or OPENAI_MODEL for the detected engine)",
            _ => " (or ANTHROPIC_MODEL for the detected engine)",
        };
        return Err(ApiError::validation(format!(
            "engine {} needs a model: pass one (`--model NAME`, or \"model\" in session.start), or set model = \"NAME\" in [engines.{}] of daemon.toml{env}",
            e.name, e.name
        )));
    }
    Ok(())
}

/// Builds the provider of engine `e` for a session in `workdir`.
pub fn provider(
    e: &Engine,
    model: Option<&str>,
    workdir: &Path,
) -> Result<Arc<dyn Provider>, ApiError> {
    let c = &e.config;
    let key = c
        .api_key_env
        .as_deref()
        .and_then(|v| std::env::var(v).ok())
        .filter(|k| !k.is_empty());
    let model = model.map(str::to_string).or_else(|| c.model.clone());
    let bad = |m: String| ApiError::validation(format!("engine {}: {m}", e.name));
    match c.kind.as_str() {
        "echo" => Ok(Arc::new(EchoProvider)),
        "openai" => {
            let cfg = r1_engine::OpenAiConfig {
                base_url: c
                    .base_url
                    .clone()
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key: key,
                model: model.ok_or_else(|| {
                    bad("no model configured; set model in daemon.toml or pass one".into())
                })?,
                retry: r1_engine::RetryPolicy::default(),
            };
            Ok(Arc::new(
                r1_engine::OpenAiProvider::new(cfg).map_err(|er| bad(er.message))?,
            ))
        }
        "anthropic" => {
            let cfg = r1_engine::AnthropicConfig {
                base_url: c
                    .base_url
                    .clone()
                    .unwrap_or_else(|| "https://api.anthropic.com".into()),
                api_key: key,
                model: model.ok_or_else(|| {
                    bad("no model configured; set model in daemon.toml or pass one".into())
                })?,
                max_tokens: c.max_tokens.unwrap_or(4096),
                retry: r1_engine::RetryPolicy::default(),
            };
            Ok(Arc::new(
                r1_engine::AnthropicProvider::new(cfg).map_err(|er| bad(er.message))?,
            ))
        }
        "exec" => {
            let adapter = match c.adapter.as_deref().unwrap_or("generic") {
                "claude" => r1_engine::ExecAdapter::ClaudeCode,
                "codex" => r1_engine::ExecAdapter::Codex,
                "generic" => r1_engine::ExecAdapter::Generic,
                other => return Err(bad(format!("unknown exec adapter {other:?}"))),
            };
            let command = c.command.clone().ok_or_else(|| bad("no command".into()))?;
            Ok(Arc::new(r1_engine::ExecProvider::new(
                r1_engine::ExecConfig {
                    adapter,
                    command,
                    args: c.args.clone(),
                    workdir: workdir.to_path_buf(),
                    env_remove: Vec::new(),
                },
            )))
        }
        other => Err(bad(format!("unknown kind {other:?}"))),
    }
}
