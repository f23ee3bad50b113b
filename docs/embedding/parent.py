#!/usr/bin/env python3
"""A minimal parent process for r1's sidecar mode (docs/EMBEDDING.md).

It does what a desktop shell does when it bundles r1: start `r1 serve --emit-port-stdout`,
read the one `daemon.listening` line from the child's stdout, call the API at the URL it
names, and stop the daemon when done. The r1 test suite runs it against the built binary.

    python3 docs/embedding/parent.py [PATH_TO_R1]

The daemon uses $R1_HOME when it is set; otherwise this script gives it a fresh
temporary state directory (so it never meets a daemon you already run).
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import urllib.request

LINE_TIMEOUT_S = 20


def call(url, token, method, path, body=None):
    """One API call with the bearer token; returns the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.load(resp)


def main():
    r1 = sys.argv[1] if len(sys.argv) > 1 else "r1"
    env = dict(os.environ)
    tmp = None
    if not env.get("R1_HOME"):
        tmp = tempfile.TemporaryDirectory(prefix="r1-parent-")
        env["R1_HOME"] = os.path.join(tmp.name, "home")
    home = env["R1_HOME"]

    # stdout is the contract; stderr is the daemon's log, left to the terminal here.
    child = subprocess.Popen(
        [r1, "serve", "--emit-port-stdout"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], LINE_TIMEOUT_S)
        if not ready:
            sys.exit(f"no daemon.listening line within {LINE_TIMEOUT_S}s")
        line = child.stdout.readline()
        if not line:
            # The daemon exited before listening; its stderr says why.
            sys.exit(f"r1 serve exited with {child.wait()} before listening")
        event = json.loads(line)
        assert event["event"] == "daemon.listening", event
        assert event["pid"] == child.pid, (event, child.pid)
        url = event["url"]
        print(f"daemon {event['pid']} listening at {url} (port {event['port']}), "
              f"socket {event['sock']}, {event['protocol']} {event['version']}")

        # The token is not on the line: it is in the state directory, readable only by
        # the user (a parent that wants its own passes --token-file instead).
        with open(os.path.join(home, "token")) as f:
            token = f.read().strip()

        health = call(url, token, "GET", "/v1/health")
        assert health["status"] == "ok", health
        print(f"health: {health['status']}, {health['sessions']} sessions")
        found = call(url, token, "GET", "/v1/discover")
        assert found["url"] == url and found["token"] == "<redacted>", found
        assert token not in json.dumps(found)

        call(url, token, "POST", "/v1/shutdown", {})
        code = child.wait(timeout=30)
        rest = child.stdout.read()
        assert rest == b"", f"more on stdout after the line: {rest!r}"
        print(f"daemon stopped with exit code {code}; stdout held exactly one line")
        return 0 if code == 0 else 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
