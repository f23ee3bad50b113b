//! How a session's journal records become ACP `session/update`s: assistant text is
//! `agent_message_chunk`, a tool call is `tool_call` then `tool_call_update`s (its lane's
//! output, then its result), and an agent CLI's to-do list is a `plan`. No I/O: the
//! prompt loop and `session/load` feed records in and send what comes out.

use std::collections::{HashMap, HashSet};

use r1_proto::events::{SessionMessage, ToolStarted};
use r1_proto::{EventData, EventRecord};
use serde_json::Value;

use super::protocol::{
    ContentBlock, PlanEntry, SessionUpdate, ToolCallContent, ToolCallLocation, ToolCallStatus,
    ToolCallUpdate, ToolKind,
};

/// The most output of one running tool sent to the client while it runs: each
/// `tool_call_update` carries the whole output so far (the protocol replaces content,
/// it does not append), so a chatty command would otherwise cost quadratic bytes. The
/// result at the end is sent whole.
pub const LIVE_OUTPUT_BYTES: usize = 64 * 1024;

/// Turns records into updates, remembering what it announced.
#[derive(Debug, Default)]
pub struct Mapper {
    /// The session's workdir, to make tool paths absolute.
    workdir: String,
    /// Replaying a journal (`session/load`): user messages are sent, streamed deltas
    /// are not (each assistant message is sent whole), nor is a running tool's output.
    replay: bool,
    /// Assistant text sent as deltas since the last assistant message.
    streamed: String,
    /// Tool calls announced with `tool_call`, by call id.
    announced: HashSet<String>,
    /// A running tool's output so far, by call id.
    output: HashMap<String, String>,
    /// Which call runs in which lane.
    lanes: HashMap<String, String>,
    /// External calls shown as a `plan`, whose results are not shown again.
    plans: HashSet<String>,
}

impl Mapper {
    /// A mapper for a live turn (`replay` false) or a journal replay, in a session
    /// working in `workdir`.
    pub fn new(workdir: &str, replay: bool) -> Mapper {
        Mapper {
            workdir: workdir.to_string(),
            replay,
            ..Mapper::default()
        }
    }

    /// The updates `r` makes.
    pub fn map(&mut self, r: &EventRecord) -> Vec<SessionUpdate> {
        let Ok(event) = r.event() else {
            return Vec::new();
        };
        match event {
            EventData::SessionMessage(SessionMessage::User(m)) if self.replay => {
                vec![SessionUpdate::UserMessageChunk {
                    content: ContentBlock::text(m.text),
                }]
            }
            EventData::SessionDelta(d) if !self.replay && !d.text.is_empty() => {
                self.streamed.push_str(&d.text);
                vec![SessionUpdate::AgentMessageChunk {
                    content: ContentBlock::text(d.text),
                }]
            }
            EventData::SessionMessage(SessionMessage::Assistant(m)) => {
                let mut out = Vec::new();
                // What the deltas did not carry (all of it when none streamed).
                let streamed = std::mem::take(&mut self.streamed);
                if let Some(rest) = m.text.strip_prefix(streamed.as_str()) {
                    if !rest.is_empty() {
                        out.push(SessionUpdate::AgentMessageChunk {
                            content: ContentBlock::text(rest),
                        });
                    }
                }
                for call in &m.tool_calls {
                    if self.announced.insert(call.id.clone()) {
                        out.push(SessionUpdate::ToolCall(self.describe(
                            &call.id,
                            &call.name,
                            &call.arguments,
                            ToolCallStatus::Pending,
                        )));
                    }
                }
                out
            }
            EventData::ToolStarted(d) => self.started(d),
            EventData::LaneCreated(d) if !d.call_id.is_empty() => {
                self.lanes.insert(d.lane, d.call_id);
                Vec::new()
            }
            EventData::LaneDelta(d) => {
                let Some(call) = self.lanes.get(&d.lane).cloned() else {
                    return Vec::new();
                };
                let out = self.output.entry(call.clone()).or_default();
                if out.len() >= LIVE_OUTPUT_BYTES {
                    return Vec::new();
                }
                out.push_str(&d.text);
                if self.replay {
                    return Vec::new();
                }
                vec![SessionUpdate::ToolCallUpdate(ToolCallUpdate {
                    tool_call_id: call,
                    content: Some(vec![ToolCallContent::text(out.clone())]),
                    ..ToolCallUpdate::default()
                })]
            }
            EventData::ToolCompleted(d) => {
                if self.plans.contains(&d.call_id) {
                    return Vec::new();
                }
                let status = if d.is_error {
                    ToolCallStatus::Failed
                } else {
                    ToolCallStatus::Completed
                };
                let output = self.output.remove(&d.call_id).unwrap_or_default();
                let text = if d.content.is_empty() {
                    output
                } else {
                    d.content
                };
                let content = Some(vec![ToolCallContent::text(text)]);
                if self.announced.insert(d.call_id.clone()) {
                    let tool = d.tool.unwrap_or_else(|| "tool".into());
                    let mut call = self.describe(&d.call_id, &tool, &Value::Null, status);
                    call.content = content;
                    return vec![SessionUpdate::ToolCall(call)];
                }
                vec![SessionUpdate::ToolCallUpdate(ToolCallUpdate {
                    tool_call_id: d.call_id,
                    status: Some(status),
                    content,
                    ..ToolCallUpdate::default()
                })]
            }
            _ => Vec::new(),
        }
    }

    /// The tool call a permission request names (announcing it first if the model's
    /// message did not).
    pub fn permission_call(
        &mut self,
        call_id: &str,
        tool: &str,
        args: &Value,
    ) -> (Option<SessionUpdate>, ToolCallUpdate) {
        let call = self.describe(call_id, tool, args, ToolCallStatus::Pending);
        let announce = self
            .announced
            .insert(call_id.to_string())
            .then(|| SessionUpdate::ToolCall(call.clone()));
        (announce, call)
    }

    fn started(&mut self, d: ToolStarted) -> Vec<SessionUpdate> {
        if d.external {
            if let Some(entries) = plan_of(&d.tool, &d.args) {
                self.plans.insert(d.call_id);
                return vec![SessionUpdate::Plan { entries }];
            }
        }
        if let Some(lane) = &d.lane {
            self.lanes.insert(lane.clone(), d.call_id.clone());
        }
        if self.announced.insert(d.call_id.clone()) {
            return vec![SessionUpdate::ToolCall(self.describe(
                &d.call_id,
                &d.tool,
                &d.args,
                ToolCallStatus::InProgress,
            ))];
        }
        vec![SessionUpdate::ToolCallUpdate(ToolCallUpdate {
            tool_call_id: d.call_id,
            status: Some(ToolCallStatus::InProgress),
            ..ToolCallUpdate::default()
        })]
    }

    /// A whole `tool_call` for `tool` called with `args`.
    fn describe(
        &self,
        call_id: &str,
        tool: &str,
        args: &Value,
        status: ToolCallStatus,
    ) -> ToolCallUpdate {
        let kind = kind_of(tool);
        let arg = |k: &str| args.get(k).and_then(Value::as_str);
        let path = arg("path").or(arg("file_path"));
        let detail = match kind {
            ToolKind::Execute => arg("command"),
            ToolKind::Search => arg("pattern").or(arg("query")),
            _ => path,
        };
        let title = match detail {
            Some(d) => format!("{tool}: {}", one_line(d)),
            None => tool.to_string(),
        };
        let locations = path.map(|p| {
            let abs = if p.starts_with('/') {
                p.to_string()
            } else {
                format!("{}/{}", self.workdir.trim_end_matches('/'), p)
            };
            vec![ToolCallLocation { path: abs }]
        });
        ToolCallUpdate {
            tool_call_id: call_id.to_string(),
            title: Some(title),
            kind: Some(kind),
            status: Some(status),
            content: None,
            locations,
            raw_input: (!args.is_null()).then(|| args.clone()),
        }
    }
}

/// The sort of a tool, by name: r1's built-in tools, and the usual names of agent
/// CLIs' own tools (recorded as external calls).
pub fn kind_of(tool: &str) -> ToolKind {
    match tool {
        "read_file" | "list_dir" | "Read" | "LS" | "NotebookRead" => ToolKind::Read,
        "write_file" | "edit_file" | "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => {
            ToolKind::Edit
        }
        "search" | "Grep" | "Glob" | "WebSearch" => ToolKind::Search,
        "run_command" | "Bash" | "shell" | "exec_command" => ToolKind::Execute,
        _ => ToolKind::Other,
    }
}

/// The first line of `s`, cut to 120 characters, for a title.
fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    let mut t: String = line.chars().take(120).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// The plan an agent CLI's to-do tool carries: Claude Code's `TodoWrite`
/// (`{todos: [{content, status}]}`) or Codex's `update_plan` (`{plan: [{step,
/// status}]}`). r1's own engines make no plans.
pub fn plan_of(tool: &str, args: &Value) -> Option<Vec<PlanEntry>> {
    let (list, text_key) = match tool {
        "TodoWrite" => (args.get("todos")?, "content"),
        "update_plan" => (args.get("plan")?, "step"),
        _ => return None,
    };
    let entries = list
        .as_array()?
        .iter()
        .filter_map(|e| {
            let content = e.get(text_key)?.as_str()?.to_string();
            let status = match e.get("status").and_then(Value::as_str) {
                Some("in_progress") => "in_progress",
                Some("completed") => "completed",
                _ => "pending",
            };
            Some(PlanEntry {
                content,
                priority: "medium",
                status,
            })
        })
        .collect();
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_proto::events::{
        AssistantMessage, LaneCreated, LaneDelta, SessionDelta, ToolCall, ToolCompleted,
        UserMessage,
    };
    use r1_proto::Event;
    use serde_json::json;

    fn rec<E: Event>(seq: u64, e: E) -> EventRecord {
        EventRecord {
            v: 1,
            seq,
            at: "2026-01-01T00:00:00.000Z".into(),
            kind: E::KIND,
            lane: "main".into(),
            data: serde_json::to_value(&e).unwrap(),
        }
    }

    fn json_of(u: &[SessionUpdate]) -> Value {
        serde_json::to_value(u).unwrap()
    }

    fn assistant(text: &str, calls: Vec<ToolCall>) -> SessionMessage {
        SessionMessage::Assistant(AssistantMessage {
            text: text.into(),
            reply_to: "msg_1".into(),
            usage: None,
            tool_calls: calls,
            agent_session: None,
        })
    }

    #[test]
    fn deltas_stream_and_the_message_adds_only_what_they_missed() {
        let mut m = Mapper::new("/w", false);
        let d = |t: &str| SessionDelta {
            text: t.into(),
            reply_to: "msg_1".into(),
        };
        assert_eq!(
            json_of(&m.map(&rec(1, d("echo: ")))),
            json!([{"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "echo: "}}])
        );
        m.map(&rec(2, d("hi")));
        assert!(m.map(&rec(3, assistant("echo: hi", vec![]))).is_empty());
        // A message that streamed nothing is sent whole.
        assert_eq!(
            json_of(&m.map(&rec(4, assistant("whole", vec![]))))[0]["content"]["text"],
            "whole"
        );
    }

    #[test]
    fn a_tool_call_is_announced_then_updated_with_output_and_result() {
        let mut m = Mapper::new("/w", false);
        let call = ToolCall {
            id: "call_1".into(),
            name: "run_command".into(),
            arguments: json!({"command": "echo hi"}),
        };
        let u = json_of(&m.map(&rec(1, assistant("", vec![call]))));
        assert_eq!(
            u,
            json!([{
                "sessionUpdate": "tool_call", "toolCallId": "call_1", "title": "run_command: echo hi",
                "kind": "execute", "status": "pending", "rawInput": {"command": "echo hi"}
            }])
        );
        m.map(&rec(
            2,
            LaneCreated {
                lane: "tool_a".into(),
                tool: "run_command".into(),
                call_id: "call_1".into(),
            },
        ));
        let started = ToolStarted {
            lane: Some("tool_a".into()),
            call_id: "call_1".into(),
            tool: "run_command".into(),
            args: json!({"command": "echo hi"}),
            external: false,
        };
        assert_eq!(
            json_of(&m.map(&rec(3, started))),
            json!([{"sessionUpdate": "tool_call_update", "toolCallId": "call_1", "status": "in_progress"}])
        );
        let delta = |t: &str| LaneDelta {
            lane: "tool_a".into(),
            text: t.into(),
        };
        m.map(&rec(4, delta("h")));
        let u = json_of(&m.map(&rec(5, delta("i\n"))));
        assert_eq!(u[0]["content"][0]["content"]["text"], "hi\n");
        let done = ToolCompleted {
            lane: Some("tool_a".into()),
            call_id: "call_1".into(),
            tool: Some("run_command".into()),
            content: "exit 0\nhi\n".into(),
            is_error: false,
            denied: false,
            external: false,
        };
        assert_eq!(
            json_of(&m.map(&rec(6, done))),
            json!([{
                "sessionUpdate": "tool_call_update", "toolCallId": "call_1", "status": "completed",
                "content": [{"type": "content", "content": {"type": "text", "text": "exit 0\nhi\n"}}]
            }])
        );
    }

    #[test]
    fn a_denied_call_fails_and_paths_become_locations() {
        let mut m = Mapper::new("/w/", false);
        let call = ToolCall {
            id: "c".into(),
            name: "write_file".into(),
            arguments: json!({"path": "src/a.rs", "content": "x"}),
        };
        let u = json_of(&m.map(&rec(1, assistant("", vec![call]))));
        assert_eq!(u[0]["kind"], "edit");
        assert_eq!(u[0]["locations"], json!([{"path": "/w/src/a.rs"}]));
        let denied = ToolCompleted {
            lane: None,
            call_id: "c".into(),
            tool: Some("write_file".into()),
            content: "the user denied the write_file call".into(),
            is_error: true,
            denied: true,
            external: false,
        };
        let u = json_of(&m.map(&rec(2, denied)));
        assert_eq!(u[0]["status"], "failed");
    }

    #[test]
    fn replay_sends_user_messages_and_whole_answers() {
        let mut m = Mapper::new("/w", true);
        let user = SessionMessage::User(UserMessage {
            text: "hello".into(),
            message_id: "msg_1".into(),
            client_message_id: None,
        });
        assert_eq!(
            json_of(&m.map(&rec(1, user))),
            json!([{"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": "hello"}}])
        );
        let d = SessionDelta {
            text: "echo: ".into(),
            reply_to: "msg_1".into(),
        };
        assert!(m.map(&rec(2, d)).is_empty());
        let u = json_of(&m.map(&rec(3, assistant("echo: hello", vec![]))));
        assert_eq!(u[0]["content"]["text"], "echo: hello");
    }

    #[test]
    fn an_agent_cli_todo_list_is_a_plan() {
        let mut m = Mapper::new("/w", false);
        let todo = ToolStarted {
            lane: None,
            call_id: "t1".into(),
            tool: "TodoWrite".into(),
            args: json!({"todos": [
                {"content": "read", "status": "completed"},
                {"content": "fix", "status": "in_progress"},
                {"content": "test", "status": "pending"}
            ]}),
            external: true,
        };
        assert_eq!(
            json_of(&m.map(&rec(1, todo))),
            json!([{"sessionUpdate": "plan", "entries": [
                {"content": "read", "priority": "medium", "status": "completed"},
                {"content": "fix", "priority": "medium", "status": "in_progress"},
                {"content": "test", "priority": "medium", "status": "pending"}
            ]}])
        );
        let result = ToolCompleted {
            lane: None,
            call_id: "t1".into(),
            tool: None,
            content: "ok".into(),
            is_error: false,
            denied: false,
            external: true,
        };
        assert!(m.map(&rec(2, result)).is_empty());
        assert_eq!(
            plan_of(
                "update_plan",
                &json!({"plan": [{"step": "a", "status": "x"}]})
            )
            .unwrap()[0]
                .status,
            "pending"
        );
        assert!(plan_of("Bash", &json!({})).is_none());
    }
}
