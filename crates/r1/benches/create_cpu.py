#!/usr/bin/env python3
"""The daemon's own cost of a session create, apart from the disk and the machine's load:
creates 1,000 sessions on one keep-alive unix-socket connection (after 20 to warm up)
and prints, per daemon build, the median wall time and the daemon's CPU time
(utime + stime of all its threads) and context switches over those 1,000, which vary
far less than wall time on a loaded machine.

Usage: create_cpu.py BIN[,BIN...] STATE_PARENT REPS
  e.g. create_cpu.py /tmp/r1-before,target/release/r1 /dev/shm 7
The builds run alternately; STATE_PARENT is where each run's R1_HOME is made
(/dev/shm for no sync cost).
"""
import os, sys, json, socket, subprocess, time, tempfile, glob
def daemon_cpu(pid):
    tot=0; cs=0
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            f=open(t+"/stat").read().rsplit(")",1)[1].split()
            tot+=int(f[11])+int(f[12])
            st=open(t+"/status").read()
            for l in st.splitlines():
                if l.startswith(("voluntary_ctxt","nonvoluntary_ctxt")): cs+=int(l.split()[1])
        except Exception: pass
    return tot/os.sysconf("SC_CLK_TCK"), cs
def run(binp, base, n):
    home=tempfile.mkdtemp(dir=base)+"/h"; os.makedirs(home, mode=0o700)
    work=tempfile.mkdtemp()
    p=subprocess.Popen([binp,"serve","--log-level","warn"],env=dict(os.environ,R1_HOME=home),stdin=subprocess.DEVNULL,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    while True:
        try:
            v=json.load(open(home+"/daemon.json"))
            if v["pid"]==p.pid: break
        except Exception: pass
        time.sleep(0.002)
    tok=open(home+"/token").read().strip()
    s=socket.socket(socket.AF_UNIX); s.connect(v["sock"])
    body=json.dumps({"workdir":work}).encode()
    req=(f"POST /v1/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()+body
    buf=b""
    def one():
        nonlocal buf
        s.sendall(req)
        while True:
            i=buf.find(b"\r\n\r\n")
            if i>=0:
                h=buf[:i].lower(); cl=int(h.split(b"content-length:")[1].split(b"\r\n")[0])
                if len(buf)>=i+4+cl:
                    b=buf[i+4:i+4+cl]; buf=buf[i+4+cl:]; assert b'"id"' in b, b; return
            buf+=s.recv(65536)
    for _ in range(20): one()
    c0,cs0=daemon_cpu(p.pid); t=time.perf_counter()
    for _ in range(n): one()
    wall=time.perf_counter()-t; c1,cs1=daemon_cpu(p.pid)
    p.terminate(); p.wait()
    subprocess.run(["rm","-rf",os.path.dirname(home),work])
    return wall, c1-c0, cs1-cs0
bins=sys.argv[1].split(","); base=sys.argv[2]; reps=int(sys.argv[3]); n=1000
res={b:[] for b in bins}
for r in range(reps):
    for b in bins: res[b].append(run(b,base,n))
for b in bins:
    w=sorted(x[0] for x in res[b]); c=sorted(x[1] for x in res[b]); cs=sorted(x[2] for x in res[b])
    print(b, "wall med %.3f min %.3f | daemon cpu med %.3f | ctxsw med %d" % (w[len(w)//2], w[0], c[len(c)//2], cs[len(cs)//2]))
