//! Running a [`Call`] against any [`Api`]: the one executor both hosts share, so the
//! terminal client (through `r1-client`) and the daemon's headless TUIs (through the
//! hub itself) turn each call into the same [`Msg`].

use r1_proto::{Api, ApiError, EmptyParams, ListSessionsParams};

use crate::model::DaemonInfo;
use crate::update::{Call, Msg};

/// Runs `call` on `api` and returns the message that answers it: `None` for calls the
/// model needs no answer to (a send, an approval, a kill: their effect arrives as
/// records), [`Msg::Failed`] when the call failed.
pub async fn run_call<A: Api + ?Sized>(api: &A, call: Call) -> Option<Msg> {
    let method = call.method();
    match call_once(api, call).await {
        Ok(msg) => msg,
        Err(e) => Some(Msg::Failed {
            method,
            message: e.message,
        }),
    }
}

async fn call_once<A: Api + ?Sized>(api: &A, call: Call) -> Result<Option<Msg>, ApiError> {
    Ok(match call {
        Call::Handshake => {
            let h = api.handshake(EmptyParams {}).await?;
            Some(Msg::Daemon(DaemonInfo {
                version: h.version,
                pid: h.pid,
            }))
        }
        Call::ListSessions => Some(Msg::Sessions(
            api.session_list(ListSessionsParams::default())
                .await?
                .sessions,
        )),
        Call::GetSession(p) => Some(Msg::Session(api.session_get(p).await?)),
        Call::StartSession(p) => Some(Msg::Started(api.session_start(p).await?)),
        Call::Send(p) => {
            api.session_send(p).await?;
            None
        }
        Call::Cancel(p) => Some(Msg::Session(api.session_cancel(p).await?)),
        Call::Pause(p) => Some(Msg::Session(api.session_pause(p).await?)),
        Call::Resume(p) => Some(Msg::Session(api.session_resume(p).await?)),
        Call::Approve(p) => {
            api.session_approve(p).await?;
            None
        }
        Call::KillLane(p) => {
            api.lanes_kill(p).await?;
            None
        }
        Call::Search(p) => {
            let query = p.q.clone();
            let hits = api.search(p).await?.hits;
            Some(Msg::SearchResults { query, hits })
        }
    })
}
