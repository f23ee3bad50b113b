//! `verify.build | verify.test | verify.lint`: the project's own command, run in a
//! session's workdir (its worktree) in a lane of the session. The command and the
//! parsing of its failures are `r1_engine::verify`'s; here the run becomes records:
//! `lane.created`, `lane.delta` as output comes, `lane.status`, and the whole result as
//! one durable `verify.completed`, so a restart does not lose it. `lanes.kill` on the
//! lane (and a mission's cancel) kills the command's whole process group.

use std::path::PathBuf;
use std::time::Duration;

use r1_proto::events::{LaneCreated, LaneDelta, LaneKilled, LaneStatusChanged};
use r1_proto::{
    ApiError, LaneStatus, SessionState, VerifyParams, VerifyResult, VerifyStep, WorktreeState,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fsutil::random_hex;
use crate::transition::Rec;
use crate::Hub;

/// The longest a verify command may run.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Output chunks waiting to be journaled as `lane.delta`.
const OUTPUT_QUEUE: usize = 256;

impl Hub {
    /// Runs the `step` command of the session or worktree `p` names; `stop` kills it
    /// (a mission's cancel, shutdown).
    pub async fn verify(
        &self,
        step: VerifyStep,
        p: VerifyParams,
        stop: CancellationToken,
    ) -> Result<VerifyResult, ApiError> {
        let sid = match (&p.worktree_id, &p.session_id) {
            (Some(w), None) => {
                let wt = self.worktrees().get(w)?;
                if wt.state == WorktreeState::Cleaned {
                    return Err(ApiError::conflict(format!(
                        "worktree {w} was cleaned; there is nothing to verify"
                    )));
                }
                wt.session_id
            }
            (None, Some(s)) => s.clone(),
            _ => {
                return Err(ApiError::validation(
                    "give exactly one of `worktree_id` and `session_id`",
                ))
            }
        };
        let session = self.session(&sid)?;
        session.journal()?;
        if session.state() == SessionState::Ended {
            return Err(ApiError::conflict(format!(
                "session {sid} has ended; verify runs in a lane of a live session"
            )));
        }
        let cancel = stop.child_token();
        let (out_tx, mut out_rx) = mpsc::channel::<String>(OUTPUT_QUEUE);
        let ctx = r1_engine::ToolContext {
            workdir: PathBuf::from(&session.workdir),
            cancel: cancel.clone(),
            output: Some(out_tx),
            protected: self.protected(),
        };
        let packages = p.packages.clone();
        let (ctx, plan) = tokio::task::spawn_blocking(move || {
            let plan = r1_engine::verify::plan(&ctx, step, &packages);
            (ctx, plan)
        })
        .await
        .map_err(|_| ApiError::internal("the verify planner failed"))?;
        let plan = plan.map_err(|e| ApiError::validation(e.to_string()))?;
        let lane = format!(
            "verify_{}",
            random_hex(5).map_err(|_| ApiError::internal("no randomness"))?
        );
        session
            .emit(Rec::new(
                &lane,
                LaneCreated {
                    lane: lane.clone(),
                    tool: format!("verify.{}", step.as_str()),
                    call_id: String::new(),
                },
                false,
            ))
            .await?;
        session.lane_started(&lane, cancel.clone()).await;
        // The context owns the output sender: it drops when the command ends, so the
        // forwarder sees the end of the output.
        let run = async move {
            let result = r1_engine::verify::run(&ctx, &plan, VERIFY_TIMEOUT).await;
            drop(ctx);
            result
        };
        let forward = async {
            while let Some(text) = out_rx.recv().await {
                let _ = session
                    .emit(Rec::new(
                        &lane,
                        LaneDelta {
                            lane: lane.clone(),
                            text,
                        },
                        false,
                    ))
                    .await;
            }
        };
        let (outcome, ()) = tokio::join!(run, forward);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                // The command could not start: the lane fails and says why.
                let _ = session
                    .emit(Rec::new(
                        &lane,
                        LaneStatusChanged {
                            lane: lane.clone(),
                            status: LaneStatus::Failed,
                            pinned: None,
                        },
                        false,
                    ))
                    .await;
                session.lane_ended(&lane).await;
                return Err(ApiError::internal(format!(
                    "the verify command could not start: {e}"
                )));
            }
        };
        let killed = cancel.is_cancelled() && !stop.is_cancelled();
        let status = if killed {
            LaneStatus::Killed
        } else if stop.is_cancelled() {
            LaneStatus::Cancelled
        } else if outcome.ok {
            LaneStatus::Done
        } else {
            LaneStatus::Failed
        };
        if killed {
            let _ = session
                .emit(Rec::new(&lane, LaneKilled { lane: lane.clone() }, false))
                .await;
        }
        let _ = session
            .emit(Rec::new(
                &lane,
                LaneStatusChanged {
                    lane: lane.clone(),
                    status,
                    pinned: None,
                },
                false,
            ))
            .await;
        let result = VerifyResult {
            session_id: sid,
            lane: lane.clone(),
            ..outcome
        };
        session.emit(Rec::new(&lane, result.clone(), true)).await?;
        session.lane_ended(&lane).await;
        Ok(result)
    }
}
