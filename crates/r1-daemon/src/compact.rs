//! Compaction: when the next request would not fit the engine's context budget, the
//! oldest whole turns of the conversation are replaced by a summary written by the same
//! model, and `session.compacted` is journaled so a replay or a restart rebuilds the
//! conversation the model saw.
//!
//! A turn starts at a user message that is not a tool result, so cutting only at turn
//! starts never separates a tool call from its result. The system prompt is not part of
//! the history (it goes in the request apart) and the newest [`KEEP_TURNS`] turns stay
//! verbatim. When the summary cannot be made (the provider fails, or answers nothing),
//! the same oldest turns are dropped whole instead.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use r1_engine::{ChatMessage, Provider, ProviderEvent, ProviderRequest, Role};
use r1_proto::events::{SessionCompacted, TokenUsage};
use r1_proto::EventKind;

use crate::sessions::Session;
use crate::Hub;

/// Turns kept verbatim at the end of the conversation (the current one included).
pub(crate) const KEEP_TURNS: usize = 2;
/// How long the summary may take.
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(120);
/// The most of the old conversation the summarizer is shown, from its end.
const TRANSCRIPT_BYTES: usize = 400 * 1024;
/// The most of one tool result shown in the transcript.
const TOOL_RESULT_BYTES: usize = 2048;
/// How the summary message starts; it stands first in a compacted conversation.
pub(crate) const SUMMARY_PREFIX: &str = "[Summary of the earlier conversation]\n";
/// The assistant's answer that follows the summary, so roles still alternate.
const SUMMARY_ACK: &str = "Understood. I will continue from that summary.";

/// The context budget when the engine does not set `context_tokens`: by model
/// family, conservative where unknown.
pub fn default_context_tokens(kind: &str, model: Option<&str>) -> u64 {
    let m = model.unwrap_or("").to_ascii_lowercase();
    match kind {
        "anthropic" => 200_000,
        "exec" | "echo" => u64::MAX, // the agent keeps its own context; echo has none
        _ if m.starts_with("gpt-4.1") || m.contains("gemini") => 1_000_000,
        _ if m.starts_with("gpt-4o") || m.starts_with("gpt-5") || m.starts_with("o3") => 128_000,
        _ if m.contains("claude") => 200_000,
        _ => 32_000,
    }
}

/// Whether a provider's error says the request did not fit the model's context
/// (OpenAI's `context_length_exceeded`, Anthropic's `prompt is too long`, and the
/// wording of compatible servers).
pub(crate) fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "prompt is too long",
        "context window",
        "too many tokens",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Roughly how many tokens a message costs: four bytes a token, plus its framing.
fn tokens(m: &ChatMessage) -> u64 {
    let bytes = m.text.len()
        + m.tool_result
            .as_ref()
            .map_or(0, |r| r.content.len() + r.name.len())
        + m.tool_calls
            .iter()
            .map(|c| c.name.len() + c.arguments.to_string().len())
            .sum::<usize>();
    (bytes as u64).div_ceil(4) + 8
}

/// The estimated tokens of a conversation.
pub(crate) fn estimate(history: &[ChatMessage]) -> u64 {
    history.iter().map(tokens).sum()
}

/// Where each turn starts: a user message that is not a tool result.
fn turn_starts(history: &[ChatMessage]) -> Vec<usize> {
    history
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::User && m.tool_result.is_none())
        .map(|(i, _)| i)
        .collect()
}

/// The index where the kept part starts (the first of the last `keep` turns), if
/// there is anything before it to compact.
pub(crate) fn cut_point(history: &[ChatMessage], keep: usize) -> Option<usize> {
    let starts = turn_starts(history);
    if starts.len() <= keep.max(1) {
        return None;
    }
    let cut = starts[starts.len() - keep.max(1)];
    (cut > 0).then_some(cut)
}

/// Drops the oldest whole turns until the conversation's memory cost fits `fits`;
/// never cuts inside a turn, and always keeps the last one.
pub(crate) fn drop_whole_turns(
    history: &mut Vec<ChatMessage>,
    fits: impl Fn(&[ChatMessage]) -> bool,
) {
    let starts = turn_starts(history);
    // Everything before the first turn start is a leftover (a tool result whose turn
    // was already dropped): it always goes.
    let mut cut = starts.first().copied().unwrap_or(0);
    for &next in starts.iter().skip(1) {
        if fits(&history[cut..]) {
            break;
        }
        cut = next;
    }
    if !fits(&history[cut..]) {
        cut = starts.last().copied().unwrap_or(cut);
    }
    history.drain(..cut);
}

/// The two messages that stand for the summarized part.
fn summary_pair(summary: &str) -> [ChatMessage; 2] {
    [
        ChatMessage::text(Role::User, format!("{SUMMARY_PREFIX}{summary}")),
        ChatMessage::text(Role::Assistant, SUMMARY_ACK),
    ]
}

/// Applies a journaled compaction to the conversation being rebuilt (load, replay).
pub(crate) fn apply(history: &mut Vec<ChatMessage>, c: &SessionCompacted) {
    let kept = c.kept.min(history.len());
    let tail = history.split_off(history.len() - kept);
    history.clear();
    if c.method == "summary" && !c.summary.is_empty() {
        history.extend(summary_pair(&c.summary));
    }
    history.extend(tail);
}

/// The old part as text for the summarizer, newest kept when it is too long.
fn transcript(head: &[ChatMessage]) -> String {
    let mut lines = Vec::new();
    for m in head {
        if let Some(r) = &m.tool_result {
            let mut content = r.content.clone();
            if content.len() > TOOL_RESULT_BYTES {
                let mut end = TOOL_RESULT_BYTES;
                while !content.is_char_boundary(end) {
                    end -= 1;
                }
                content.truncate(end);
                content.push_str(" […]");
            }
            lines.push(format!("Tool result ({}): {content}", r.name));
            continue;
        }
        let who = match m.role {
            Role::User => "User",
            _ => "Assistant",
        };
        if !m.text.is_empty() {
            lines.push(format!("{who}: {}", m.text));
        }
        for c in &m.tool_calls {
            lines.push(format!("Assistant called {}({})", c.name, c.arguments));
        }
    }
    let mut out = String::new();
    for line in lines.iter().rev() {
        if out.len() + line.len() > TRANSCRIPT_BYTES {
            break;
        }
        out.insert_str(0, &format!("{line}\n"));
    }
    out
}

/// Asks `provider` for a summary of `head`; with the usage the call reported, if any,
/// whether or not it made a summary.
async fn summarize(
    provider: &dyn Provider,
    model: Option<String>,
    head: &[ChatMessage],
) -> (Result<String, String>, Option<TokenUsage>) {
    let req = ProviderRequest {
        model,
        system: Some(
            "You compress the earlier part of a conversation between a user and a coding agent so the agent can continue without it. Write a concise summary: the user's goals and constraints, decisions made, files and commands involved and what they showed, and what is still open. Do not address the user.".into(),
        ),
        messages: vec![ChatMessage::text(
            Role::User,
            format!(
                "Summarize this conversation so far:\n\n{}",
                transcript(head)
            ),
        )],
        tools: Vec::new(),
        protected: Default::default(),
        notes: Vec::new(),
        agent: Default::default(),
    };
    let mut usage = None;
    let run = async {
        let mut stream = provider.stream(req).await.map_err(|e| e.message)?;
        let mut text = String::new();
        while let Some(ev) = stream.next().await {
            match ev.map_err(|e| e.message)? {
                ProviderEvent::TextDelta(d) => text.push_str(&d),
                ProviderEvent::Usage {
                    input_tokens,
                    output_tokens,
                    cached_input_tokens,
                } => {
                    usage = Some(TokenUsage {
                        input_tokens,
                        output_tokens,
                        cached_input_tokens,
                        cost_usd: None,
                    })
                }
                ProviderEvent::Finish { .. } => break,
                _ => {}
            }
        }
        Ok::<_, String>(text)
    };
    let text = match tokio::time::timeout(SUMMARY_TIMEOUT, run).await {
        Err(_) => Err("the summary took too long".to_string()),
        Ok(r) => r.and_then(|t| {
            let t = t.trim().to_string();
            if t.is_empty() {
                Err("the model answered no summary".into())
            } else {
                Ok(t)
            }
        }),
    };
    (text, usage)
}

/// What a compaction made: the new conversation and the record to journal.
pub(crate) struct Compacted {
    pub history: Vec<ChatMessage>,
    pub record: SessionCompacted,
}

/// Compacts `history` (whose last turn is the one about to run), or `None` when there
/// is nothing before the kept turns. `upto_seq` is found in the journal: the record
/// before the first kept user message.
pub(crate) async fn compact(
    hub: &Hub,
    s: &Arc<Session>,
    provider: &dyn Provider,
    history: &[ChatMessage],
    reason: &str,
) -> Option<Compacted> {
    let cut = cut_point(history, KEEP_TURNS)?;
    let (head, tail) = history.split_at(cut);
    let before = estimate(history);
    let (summary, mut usage) = summarize(provider, s.model.clone(), head).await;
    // The summary's tokens count like a turn's, in the totals and the budget.
    if let Some(u) = usage.as_mut() {
        hub.count_usage(s, u);
    }
    let (method, summary) = match summary {
        Ok(summary) => ("summary", summary),
        Err(why) => {
            tracing::warn!(session = %s.id, "compaction: no summary ({why}); dropping the oldest turns");
            ("dropped", String::new())
        }
    };
    let mut out = Vec::with_capacity(tail.len() + 2);
    if method == "summary" {
        out.extend(summary_pair(&summary));
    }
    out.extend_from_slice(tail);
    let user_messages_kept = tail
        .iter()
        .filter(|m| m.role == Role::User && m.tool_result.is_none())
        .filter(|m| !m.text.starts_with(SUMMARY_PREFIX))
        .count();
    let upto_seq = upto_seq(s, user_messages_kept).await;
    let record = SessionCompacted {
        upto_seq,
        method: method.to_string(),
        summary,
        tokens_before: before,
        tokens_after: estimate(&out),
        kept: tail.len(),
        reason: reason.to_string(),
        usage,
    };
    Some(Compacted {
        history: out,
        record,
    })
}

/// The seq just before the `n`-th last user message of the journal (0 when unknown).
async fn upto_seq(s: &Arc<Session>, n: usize) -> u64 {
    let Ok(journal) = s.journal() else {
        return 0;
    };
    let mut user_seqs = Vec::new();
    let mut since = 1;
    loop {
        let Ok(page) = journal.read_from(since, 10_000).await else {
            return 0;
        };
        let Some(last) = page.last() else { break };
        since = last.seq + 1;
        user_seqs.extend(
            page.iter()
                .filter(|r| r.kind == EventKind::SessionMessage && r.data["role"] == "user")
                .map(|r| r.seq),
        );
    }
    match user_seqs.len().checked_sub(n.max(1)) {
        Some(i) => user_seqs[i].saturating_sub(1),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_engine::{ToolCall, ToolResult};
    use serde_json::json;

    fn user(t: &str) -> ChatMessage {
        ChatMessage::text(Role::User, t)
    }

    fn calls(id: &str) -> ChatMessage {
        ChatMessage {
            role: Role::Assistant,
            text: String::new(),
            tool_calls: vec![ToolCall {
                id: id.into(),
                name: "read_file".into(),
                arguments: json!({"path": "a"}),
            }],
            tool_result: None,
            agent_session: None,
        }
    }

    fn result(id: &str) -> ChatMessage {
        ChatMessage {
            role: Role::User,
            text: String::new(),
            tool_calls: Vec::new(),
            tool_result: Some(ToolResult {
                call_id: id.into(),
                name: "read_file".into(),
                content: "x".repeat(400),
                is_error: false,
            }),
            agent_session: None,
        }
    }

    /// Every tool result follows the assistant message that called it.
    fn no_orphans(h: &[ChatMessage]) -> bool {
        h.iter().enumerate().all(|(i, m)| match &m.tool_result {
            None => true,
            Some(r) => h[..i]
                .iter()
                .rev()
                .take_while(|p| p.tool_result.is_some() || !p.tool_calls.is_empty())
                .any(|p| p.tool_calls.iter().any(|c| c.id == r.call_id)),
        })
    }

    fn conversation(turns: usize) -> Vec<ChatMessage> {
        let mut h = Vec::new();
        for t in 0..turns {
            h.push(user(&format!("question {t}")));
            h.push(calls(&format!("c{t}")));
            h.push(result(&format!("c{t}")));
            h.push(ChatMessage::text(Role::Assistant, format!("answer {t}")));
        }
        h
    }

    #[test]
    fn the_cut_is_at_a_turn_start_and_keeps_the_last_turns() {
        let h = conversation(5);
        let cut = cut_point(&h, 2).unwrap();
        assert_eq!(h[cut].text, "question 3");
        assert!(no_orphans(&h[cut..]));
        assert_eq!(cut_point(&conversation(2), 2), None);
        assert_eq!(cut_point(&conversation(1), 2), None);
    }

    #[test]
    fn dropping_never_orphans_a_tool_result() {
        for budget in [10, 100, 150, 300, 1000] {
            let mut h = conversation(6);
            // A leftover tool result at the front (from an older trim) goes too.
            h.insert(0, result("old"));
            drop_whole_turns(&mut h, |h| estimate(h) <= budget);
            assert!(no_orphans(&h), "budget {budget}: {h:?}");
            assert_eq!(h[0].role, Role::User);
            assert!(h[0].tool_result.is_none(), "budget {budget}");
            assert_eq!(h.last().unwrap().text, "answer 5");
        }
    }

    #[test]
    fn a_journaled_compaction_rebuilds_the_same_conversation() {
        let h = conversation(4);
        let cut = cut_point(&h, 2).unwrap();
        let rec = SessionCompacted {
            upto_seq: 9,
            method: "summary".into(),
            summary: "they asked 0 and 1".into(),
            tokens_before: estimate(&h),
            tokens_after: 0,
            kept: h.len() - cut,
            reason: "budget".into(),
            usage: None,
        };
        let mut rebuilt = h.clone();
        apply(&mut rebuilt, &rec);
        assert_eq!(rebuilt.len(), 2 + h.len() - cut);
        assert!(rebuilt[0].text.starts_with(SUMMARY_PREFIX));
        assert_eq!(rebuilt[2].text, "question 2");
        assert!(no_orphans(&rebuilt));
        let dropped = SessionCompacted {
            method: "dropped".into(),
            summary: String::new(),
            ..rec
        };
        let mut rebuilt = h.clone();
        apply(&mut rebuilt, &dropped);
        assert_eq!(rebuilt[0].text, "question 2");
    }

    #[test]
    fn budgets_by_family() {
        assert_eq!(default_context_tokens("anthropic", None), 200_000);
        assert_eq!(
            default_context_tokens("openai", Some("gpt-4o-mini")),
            128_000
        );
        assert_eq!(
            default_context_tokens("openai", Some("qwen2.5-coder")),
            32_000
        );
        assert_eq!(default_context_tokens("exec", None), u64::MAX);
    }
}
