"""Sessions through the SDK: send and read the reply, approvals, errors with their
codes, and `follow` across daemon restarts without a gap or a duplicate."""

import json
import os
import signal
import socket
import threading
import unittest

import r1client
from support import R1_BIN, WAIT, DaemonCase, SocketRelay, is_reply, pid_gone, r1, wait_for

#: A `/slow` message long enough to stream for several seconds (the echo engine sends
#: 8 characters per delta, 200 ms apart), so a restart lands in the middle of it.
SLOW = "/slow " + " ".join(f"word{i:02d}" for i in range(40))


class Sessions(DaemonCase):
    def test_send_and_read_the_reply(self) -> None:
        s = self.start_session(title="sdk")
        self.assertEqual(s["state"], "idle")
        self.assertEqual(s["engine"], "echo")
        sent = self.client.session_send(s["id"], text="hello there")
        self.assertFalse(sent["duplicate"])
        recs = self.records_until(s["id"], sent["seq"], is_reply)
        self.assertEqual(recs[0]["kind"], "session.message")
        self.assertEqual(recs[0]["data"]["text"], "hello there")
        self.assertEqual(recs[-1]["data"]["text"], "echo: hello there")
        deltas = "".join(r["data"]["text"] for r in recs if r["kind"] == "session.delta")
        self.assertEqual(deltas, "echo: hello there")
        self.assertEqual([r["seq"] for r in recs], list(range(sent["seq"], sent["seq"] + len(recs))))

    def test_send_is_idempotent_with_a_key(self) -> None:
        s = self.start_session()
        a = self.client.session_send(s["id"], text="once", client_message_id="k1")
        self.records_until(s["id"], a["seq"], is_reply)
        b = self.client.session_send(s["id"], text="once", client_message_id="k1")
        self.assertTrue(b["duplicate"])
        self.assertEqual(b["message_id"], a["message_id"])
        c = self.client.session_send(s["id"], text="twice", idempotency_key="k2")
        self.assertFalse(c["duplicate"])
        self.records_until(s["id"], c["seq"], lambda r: is_reply(r, "echo: twice"))
        d = self.client.session_send(s["id"], text="twice", idempotency_key="k2")
        self.assertEqual((d["duplicate"], d["message_id"]), (True, c["message_id"]))

    def test_approval_answered_through_the_sdk(self) -> None:
        s = self.start_session()
        sent = self.client.session_send(s["id"], text="/run echo approved-run")
        recs = self.records_until(s["id"], sent["seq"], lambda r: r["kind"] == "approval.requested")
        req = recs[-1]["data"]
        self.assertEqual(req["tool"], "run_command")
        self.assertEqual(req["args"], {"command": "echo approved-run"})
        view = wait_for(
            "the session to wait on approval",
            lambda: (v := self.client.session_get(s["id"]))["state"] == "waiting_on_approval" and v,
        )
        self.assertEqual(view["pending_approvals"], [req["approval_id"]])
        self.client.session_approve(s["id"], req["approval_id"], decision="allow")
        recs = self.records_until(s["id"], recs[-1]["seq"] + 1, is_reply)
        kinds = [r["kind"] for r in recs]
        self.assertIn("approval.resolved", kinds)
        done = next(r for r in recs if r["kind"] == "tool.completed")
        self.assertIn("approved-run", done["data"]["content"])
        self.assertIn("run_command returned", recs[-1]["data"]["text"])
        self.assertEqual(self.client.session_get(s["id"])["pending_approvals"], [])
        # The same decision again is ok (idempotent); the opposite one is a conflict.
        self.client.session_approve(s["id"], req["approval_id"], decision="allow")
        with self.assertRaises(r1client.ConflictError) as cm:
            self.client.session_approve(s["id"], req["approval_id"], decision="deny")
        self.assertEqual(cm.exception.status, 409)

    def test_denied_approval(self) -> None:
        s = self.start_session()
        sent = self.client.session_send(s["id"], text="/run echo never")
        recs = self.records_until(s["id"], sent["seq"], lambda r: r["kind"] == "approval.requested")
        self.client.session_approve(s["id"], recs[-1]["data"]["approval_id"], decision="deny")
        recs = self.records_until(s["id"], recs[-1]["seq"] + 1, is_reply)
        resolved = next(r for r in recs if r["kind"] == "approval.resolved")
        self.assertEqual(resolved["data"]["decision"], "deny")
        self.assertNotIn("lane.created", [r["kind"] for r in recs])

    def test_policy_allow_runs_without_approval(self) -> None:
        s = self.start_session(policy={"run_command": "allow"})
        sent = self.client.session_send(s["id"], text="/run echo allowed-run")
        recs = self.records_until(s["id"], sent["seq"], is_reply)
        kinds = [r["kind"] for r in recs]
        self.assertNotIn("approval.requested", kinds)
        self.assertIn("tool.completed", kinds)
        self.assertIn("allowed-run", recs[-1]["data"]["text"])

    def test_errors_carry_their_code_and_status(self) -> None:
        with self.assertRaises(r1client.NotFoundError) as cm:
            self.client.session_get("ses_0000000000000000")
        e = cm.exception
        self.assertIsInstance(e, r1client.R1Error)
        self.assertEqual((e.code, e.status), ("not_found", 404))
        self.assertIn("ses_0000000000000000", e.message)
        self.assertEqual(e.envelope["ok"], False)
        self.assertEqual(e.envelope["links"]["self"], "/v1/sessions/ses_0000000000000000")

        with self.assertRaises(r1client.ValidationError) as cm:
            self.client.session_start(workdir="not/absolute")
        self.assertEqual((cm.exception.code, cm.exception.status), ("validation", 400))
        self.assertIn("absolute", cm.exception.message)

        # A body with a field the operation does not have.
        with self.assertRaises(r1client.ValidationError) as cm:
            self.client.request("POST", "/v1/sessions", body={"workdir": str(self.workdir), "bogus": 1})
        self.assertIn("bogus", cm.exception.message)

        # A decision outside the enum.
        s = self.start_session()
        with self.assertRaises(r1client.ValidationError):
            self.client.session_approve(s["id"], "apr_x", decision="maybe")  # type: ignore[arg-type]

        # Following an unknown session is the daemon's not_found, not a retry loop.
        with self.assertRaises(r1client.NotFoundError):
            next(self.client.follow("ses_0000000000000000", timeout=WAIT))

    def test_conflict_sending_to_a_paused_session(self) -> None:
        s = self.start_session()
        self.assertEqual(self.client.session_pause(s["id"])["state"], "paused")
        with self.assertRaises(r1client.ConflictError) as cm:
            self.client.session_send(s["id"], text="hi")
        self.assertEqual((cm.exception.code, cm.exception.status), ("conflict", 409))
        self.assertEqual(self.client.session_resume(s["id"])["state"], "idle")

    def test_long_poll_tail_and_call_by_name(self) -> None:
        s = self.start_session()
        page = self.client.session_tail(s["id"], since_seq=2, wait_ms=100)
        self.assertEqual(page["records"], [])
        sent = self.client.call("session.send", session_id=s["id"], text="by name")
        page = self.client.session_tail(s["id"], since_seq=sent["seq"], wait_ms=5000)
        self.assertEqual(page["records"][0]["data"]["text"], "by name")
        self.assertEqual(self.client.call("session.get", session_id=s["id"])["id"], s["id"])
        with self.assertRaises(ValueError):
            self.client.call("session.nope")

    def test_follow_past_the_head_gets_a_resync_then_every_record(self) -> None:
        s = self.start_session()
        stream = self.client.follow(s["id"], 50, timeout=WAIT)
        first = next(stream)
        self.assertEqual(first["kind"], "session.resync")
        self.assertEqual(first["data"]["next_seq"], s["last_seq"] + 1)
        sent = self.client.session_send(s["id"], text="after resync")
        got = []
        for rec in stream:
            got.append(rec)
            if is_reply(rec):
                break
        stream.close()
        self.assertEqual(got[0]["seq"], sent["seq"])
        self.assertEqual([r["seq"] for r in got], list(range(sent["seq"], sent["seq"] + len(got))))
        self.assertEqual(got[-1]["data"]["text"], "echo: after resync")

    def test_read_operations_and_query_encoding(self) -> None:
        c = self.client
        s = self.start_session(title="needle session")
        sent = c.session_send(s["id"], text="a findable needle")
        self.records_until(s["id"], sent["seq"], is_reply)
        self.assertEqual(c.daemon_discover()["pid"], c.registration["pid"])
        self.assertNotIn((self.home / "token").read_text().strip(), json.dumps(c.daemon_discover()))
        self.assertIn("echo", [e["name"] for e in c.engines_list()["engines"]])
        self.assertGreaterEqual(c.daemon_status()["pid"], 1)
        self.assertIsInstance(c.hooks_list()["hooks"], list)
        self.assertIsInstance(c.mission_list()["missions"], list)
        self.assertIsInstance(c.worktree_list(session_id=s["id"])["worktrees"], list)
        self.assertEqual(c.lanes_list(s["id"])["lanes"][0]["lane"], "main")
        logs = c.daemon_logs(limit=5, level="info")
        self.assertLessEqual(len(logs["lines"]), 5)
        # A list goes comma-separated, a string with spaces and quotes percent-encoded.
        hits = wait_for(
            "the search index to catch up",
            lambda: c.search_query(q='"findable needle"', kind=["message", "tool"], session_id=s["id"])["hits"],
        )
        self.assertEqual(hits[0]["session_id"], s["id"])
        self.assertEqual(c.search_query(q="needle", kind=["approval"])["hits"], [])
        page = c.session_journal(s["id"], since_seq=1, limit=2)
        self.assertEqual([r["seq"] for r in page["records"]], [1, 2])

    def test_follow_times_out(self) -> None:
        s = self.start_session()
        with self.assertRaises(r1client.DeadlineError):
            for _ in self.client.follow(s["id"], 1, timeout=0.5):
                pass


class FollowAcrossRestarts(DaemonCase):
    """`follow` while a slow turn streams, through `r1 ctl restart` and through a
    SIGTERM followed by a fresh daemon: every seq once, in order."""

    def follow_through(self, restart, tcp: bool = False) -> None:
        client = r1client.connect(self.home, tcp=tcp)
        s = client.session_start(workdir=str(self.workdir), engine="echo")
        sent = client.session_send(s["id"], text=SLOW)
        got = []
        restarted = False
        resumed = None
        for rec in client.follow(s["id"], 0, timeout=WAIT * 3):
            got.append(rec)
            if rec["kind"] == "session.delta" and not restarted and sum(
                r["kind"] == "session.delta" for r in got
            ) >= 3:
                old = client.registration["pid"]
                restart()
                restarted = True
                new = r1client.connect(self.home)
                self.assertNotEqual(new.registration["pid"], old)
                # The cut-off turn comes back paused; resume it and ask again.
                wait_for("the session to come back paused", lambda c=new: c.session_get(s["id"])["state"] == "paused")
                new.session_resume(s["id"])
                resumed = new.session_send(s["id"], text="after the restart")
            if resumed and is_reply(rec, "echo: after the restart"):
                break
        self.assertTrue(restarted)
        self.assertGreaterEqual(client.reconnects, 1)
        seqs = [r["seq"] for r in got]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "a gap or a duplicate")
        last = r1client.connect(self.home).session_get(s["id"])["last_seq"]
        # Nothing the journal holds up to the reply was missed.
        self.assertGreaterEqual(last, seqs[-1])
        journal = r1client.connect(self.home).session_journal(s["id"], since_seq=1, limit=seqs[-1])
        self.assertEqual([r["seq"] for r in journal["records"]], seqs)
        kinds = [r["kind"] for r in got]
        self.assertIn("daemon.reloaded", kinds)
        self.assertLess(kinds.index("session.delta"), kinds.index("daemon.reloaded"))
        self.assertEqual(got[sent["seq"] - 1]["data"]["text"], SLOW)

    def test_follow_across_ctl_restart(self) -> None:
        def restart() -> None:
            proc = r1(self.home, "ctl", "--no-spawn", "restart")
            self.assertEqual(proc.returncode, 0, proc.stderr)

        self.follow_through(restart)

    def test_follow_across_sigterm_and_a_new_daemon_on_another_port_over_tcp(self) -> None:
        def restart() -> None:
            reg = r1client.connect(self.home).registration
            old_port = int(reg["url"].rsplit(":", 1)[1])
            os.kill(reg["pid"], signal.SIGTERM)
            wait_for(f"daemon {reg['pid']} to exit", lambda: pid_gone(reg["pid"]))
            wait_for("daemon.json to go", lambda: not (self.home / "daemon.json").exists())
            # Take the old port (connections to it are closed at once), so the new
            # daemon must listen on another one and the follower can find it only
            # through daemon.json.
            blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", old_port))
            blocker.listen(16)
            self.addCleanup(blocker.close)

            def refuse() -> None:
                while True:
                    try:
                        conn, _ = blocker.accept()
                    except OSError:
                        return
                    conn.close()

            threading.Thread(target=refuse, daemon=True).start()
            new = r1client.connect_or_spawn(self.home, r1_bin=R1_BIN, spawn_timeout=WAIT)
            self.assertNotEqual(int(new.registration["url"].rsplit(":", 1)[1]), old_port)

        self.follow_through(restart, tcp=True)


class FollowOverAForwardedSocket(DaemonCase):
    """`follow` through an explicit socket (as over `ssh -L`): a connection that is
    reset, and one that silently stops carrying anything (no heartbeat within the idle
    timeout), are both reconnected without a gap or a duplicate."""

    def test_reset_and_stalled_connections(self) -> None:
        reg = r1client.discover(self.home)
        relay = SocketRelay(self.tmp / "fwd-follow.sock", reg["sock"])
        self.addCleanup(relay.close)
        client = r1client.connect(self.home, sock=relay.path)
        s = client.session_start(workdir=str(self.workdir), engine="echo")
        client.session_send(s["id"], text=SLOW)
        got = []
        stream = client.follow(s["id"], 1, timeout=WAIT * 2, idle_timeout=1.0)
        for rec in stream:
            got.append(rec)
            deltas = sum(r["kind"] == "session.delta" for r in got)
            if deltas == 2 and client.reconnects == 0:
                relay.drop_all()
            if deltas == 5 and client.reconnects == 1:
                relay.stall_all()
            if is_reply(rec):
                break
        stream.close()
        self.assertGreaterEqual(client.reconnects, 2)
        self.assertEqual(got[-1]["data"]["text"], "echo: " + SLOW[len("/slow "):])
        seqs = [r["seq"] for r in got]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        text = "".join(r["data"]["text"] for r in got if r["kind"] == "session.delta")
        self.assertEqual(text, got[-1]["data"]["text"])


if __name__ == "__main__":
    unittest.main()
