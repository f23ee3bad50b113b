//! Issue 17, "Usage, visible": the tokens (cached ones too) and the cost of every model
//! call are journaled, summed in `sessions get`, `ctl status` and the view, kept across
//! restarts, and the token budget applies to the session's whole total.

use std::os::unix::fs::PermissionsExt;

use r1_test_support::{openai_text_chunks_with_usage, FakeKind, FakeProvider, Scripted};
use serde_json::{json, Value};

use crate::agent::wait_for;
use crate::sessions::records;
use crate::support::*;

const KEY: &str = "sk-test-usage-key";

/// One answer reporting 1,000 prompt tokens (800 of them cached) and 50 output tokens.
fn answer(text: &str) -> Scripted {
    Scripted::Sse(openai_text_chunks_with_usage(
        text,
        2,
        json!({
            "prompt_tokens": 1000,
            "completion_tokens": 50,
            "total_tokens": 1050,
            "prompt_tokens_details": {"cached_tokens": 800},
        }),
    ))
}

/// What one such answer costs at $2 / $10 per million input / output tokens and $0.50
/// per million cached input tokens: 200 × 2 + 800 × 0.5 + 50 × 10, per million.
const ONE_CALL_USD: f64 = 0.0013;

fn config(fake: &FakeProvider) -> String {
    format!(
        "default_engine = \"model\"\n[engines.model]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"priced-model\"\napi_key_env = \"R1T_MODEL_KEY\"\n\n[prices.\"priced-model\"]\ninput = 2.0\noutput = 10.0\ncached_input = 0.5\n",
        fake.base_url()
    )
}

fn serve(home: &Home) -> Daemon {
    home.serve_env(&[], &[("R1T_MODEL_KEY", KEY)])
}

fn start(d: &Daemon, work: &std::path::Path, budget: Option<u64>) -> String {
    let mut body = json!({"workdir": work});
    if let Some(b) = budget {
        body["token_budget"] = json!(b);
    }
    let r = d.post("/v1/sessions", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "model_calls": 0}),
        "a new session has used nothing: {v}"
    );
    v["id"].as_str().unwrap().to_string()
}

/// Sends `text` and waits for the end of its turn (idle, or an error); the records.
fn turn(d: &Daemon, id: &str, text: &str) -> Vec<Value> {
    let before = records(d, id).len() as u64;
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": text}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for(d, id, "the end of the turn", |r| {
        r["seq"].as_u64() > Some(before)
            && r["kind"] == "session.state"
            && r["data"]["state"] == "idle"
    })
}

fn cost(v: &Value) -> f64 {
    v["usage"]["cost_usd"].as_f64().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn usage_is_journaled_priced_summed_and_kept_across_restarts() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeProvider::start(
        FakeKind::OpenAi,
        vec![
            answer("one"),
            answer("two"),
            answer("three"),
            answer("four"),
        ],
    ));
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(home.path.join("daemon.toml"), config(&fake)).unwrap();
    let d = serve(&home);
    let work = tempfile::tempdir().unwrap();

    // Two turns, each one model call: the usage is on each assistant message, priced.
    let a = start(&d, work.path(), None);
    turn(&d, &a, "first");
    let recs = turn(&d, &a, "second");
    let usages: Vec<&Value> = recs
        .iter()
        .filter(|r| r["kind"] == "session.message" && r["data"]["role"] == "assistant")
        .map(|r| &r["data"]["usage"])
        .collect();
    assert_eq!(usages.len(), 2, "{recs:?}");
    for u in usages {
        assert_eq!(u["input_tokens"], 1000, "{u}");
        assert_eq!(u["output_tokens"], 50, "{u}");
        assert_eq!(u["cached_input_tokens"], 800, "{u}");
        assert!(close(u["cost_usd"].as_f64().unwrap(), ONE_CALL_USD), "{u}");
    }

    // A budget of 1,500 tokens: the first call (1,050) fits.
    let b = start(&d, work.path(), Some(1500));
    let recs = turn(&d, &b, "spend some");
    assert!(
        !recs.iter().any(|r| r["kind"] == "session.error"),
        "{recs:?}"
    );

    let expect_a = |v: &Value| {
        let u = &v["usage"];
        assert_eq!(u["input_tokens"], 2000, "{v}");
        assert_eq!(u["output_tokens"], 100, "{v}");
        assert_eq!(u["cached_input_tokens"], 1600, "{v}");
        assert_eq!(u["model_calls"], 2, "{v}");
        assert!(close(cost(v), 2.0 * ONE_CALL_USD), "{v}");
    };
    expect_a(&home.run_json(&["ctl", "sessions", "get", &a]));
    let out = home.run(&["ctl", "sessions", "get", &a]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tokens  2,000 in (1,600 cached) / 100 out  $0.0026  (2 model calls)"),
        "{text}"
    );
    let status = home.run_json(&["ctl", "status"]);
    assert_eq!(status["usage"]["input_tokens"], 3000, "{status}");
    assert_eq!(status["usage"]["output_tokens"], 150, "{status}");
    assert_eq!(status["usage"]["cached_input_tokens"], 2400, "{status}");
    assert_eq!(status["usage"]["model_calls"], 3, "{status}");
    assert!(close(cost(&status), 3.0 * ONE_CALL_USD), "{status}");
    let out = home.run(&["ctl", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tokens       3,000 in (2,400 cached) / 150 out  $0.0039"),
        "{text}"
    );

    // A restart: the totals are the fold of the journal, and the budget counts them.
    drop(d);
    let d = serve(&home);
    expect_a(&d.get(&format!("/v1/sessions/{a}")).json());
    let v = d.get(&format!("/v1/sessions/{b}")).json();
    assert_eq!(v["usage"]["input_tokens"], 1000, "{v}");
    let recs = turn(&d, &b, "spend more");
    let e = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "session.error")
        .unwrap_or_else(|| panic!("no budget error after the restart: {recs:?}"));
    assert_eq!(e["data"]["code"], "budget_exceeded", "{e}");
    assert!(
        e["data"]["message"].as_str().unwrap().contains("2100 used"),
        "{e}"
    );
    // The call that crossed the budget is in the totals (it was paid for).
    let v = d.get(&format!("/v1/sessions/{b}")).json();
    assert_eq!(v["usage"]["input_tokens"], 2000, "{v}");
    assert_eq!(v["usage"]["model_calls"], 2, "{v}");
    // A spent budget stops the next turn before it reaches the provider.
    let asked = fake.recorded().len();
    let recs = turn(&d, &b, "and more");
    let e = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "session.error")
        .unwrap();
    assert_eq!(e["data"]["code"], "budget_exceeded", "{e}");
    assert_eq!(
        fake.recorded().len(),
        asked,
        "the provider was asked anyway"
    );
    assert_eq!(fake.remaining(), 0);

    // Prices reload live: the next call is priced anew, earlier calls keep their cost.
    let doubled = config(&fake)
        .replace("input = 2.0", "input = 4.0")
        .replace("output = 10.0", "output = 20.0")
        .replace("cached_input = 0.5", "cached_input = 1.0");
    std::fs::write(home.path.join("daemon.toml"), doubled).unwrap();
    let r = home.run_json(&["ctl", "reload"]);
    assert_eq!(r["changed"], json!(["prices"]), "{r}");
    fake.push([answer("five")]);
    let recs = turn(&d, &a, "priced anew");
    let last = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "session.message" && r["data"]["role"] == "assistant")
        .unwrap();
    let paid = last["data"]["usage"]["cost_usd"].as_f64().unwrap();
    assert!(close(paid, 2.0 * ONE_CALL_USD), "{last}");
    let v = d.get(&format!("/v1/sessions/{a}")).json();
    assert!(close(cost(&v), 4.0 * ONE_CALL_USD), "{v}");
}
