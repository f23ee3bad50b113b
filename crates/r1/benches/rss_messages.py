#!/usr/bin/env python3
"""RSS of the daemon over many messages (issue "Session core": flat within 10 %).

Starts `r1 serve` on a fresh R1_HOME, creates 4 echo sessions and sends N messages
spread over them from 4 threads through the unix socket (waiting out 429 backpressure),
printing the daemon's VmRSS every N/10 messages, then a JSON summary.

    cargo build --release -p r1
    python3 crates/r1/benches/rss_messages.py target/release/r1 100000
"""
import json, os, socket, subprocess, sys, tempfile, threading, time, http.client
BIN = sys.argv[1]; N = int(sys.argv[2]); S = 4
home = tempfile.mkdtemp() + "/h"
os.makedirs(home, mode=0o700)
env = dict(os.environ, R1_HOME=home)
p = subprocess.Popen([BIN, "serve", "--log-level", "warn"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    try:
        reg = json.load(open(home + "/daemon.json"))
        if reg["pid"] == p.pid: break
    except Exception: pass
    time.sleep(0.01)
tok = open(home + "/token").read().strip()
class UConn(http.client.HTTPConnection):
    def __init__(self, path): super().__init__("localhost"); self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(self.path)
def call(c, m, path, body=None):
    c.request(m, path, body=json.dumps(body) if body is not None else None, headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    r = c.getresponse(); d = r.read(); return r.status, d
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
c = UConn(reg["sock"])
work = tempfile.mkdtemp()
ids = [json.loads(call(c, "POST", "/v1/sessions", {"workdir": work})[1])["id"] for _ in range(S)]
sent = [0]; lock = threading.Lock(); marks = {}
def worker(sid):
    cc = UConn(reg["sock"])
    while True:
        with lock:
            if sent[0] >= N: return
            sent[0] += 1; n = sent[0]
        while True:
            st, d = call(cc, "POST", f"/v1/sessions/{sid}/messages", {"text": f"message {n}"})
            if st == 202: break
            time.sleep(0.01)
        if n % (N // 10) == 0:
            marks[n] = rss()
            print(n, marks[n], flush=True)
ts = [threading.Thread(target=worker, args=(i,)) for i in ids]
t0 = time.time(); [t.start() for t in ts]; [t.join() for t in ts]
time.sleep(2)
print(json.dumps({"messages": N, "secs": round(time.time() - t0, 1), "rss_kb_by_messages": dict(sorted(marks.items())), "rss_end_kb": rss()}))
p.terminate(); p.wait()
