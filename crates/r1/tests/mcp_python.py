"""Drive `r1 mcp serve` with the official MCP Python SDK (`mcp` from PyPI) over stdio:
initialize, list tools, start a session, send, tail until the echo reply, cancel.

Run by `crates/r1/tests/mcp.rs` as `python3 mcp_python.py <r1 binary> <workdir>` with
R1_HOME set; prints `reply: <text>` and exits 0 on success.
"""

import asyncio
import json
import os
import re
import sys
import time

try:
    from mcp import ClientSession, StdioServerParameters, stdio_client
except ImportError:
    sys.exit("the MCP Python SDK is missing: run `python3 -m pip install mcp`")

WIRE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def envelope(result):
    """The tool result's envelope, checked against its JSON text item."""
    env = result.structured_content
    assert env is not None, result
    assert json.loads(result.content[0].text) == env, result
    assert bool(result.is_error) == (env["ok"] is not True), env
    return env


async def main(r1, workdir):
    params = StdioServerParameters(
        command=r1,
        args=["mcp", "serve", "--caps", "write"],
        env={"R1_HOME": os.environ["R1_HOME"]},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "r1", init
            print("protocol:", init.protocol_version)

            tools = (await session.list_tools()).tools
            names = [t.name for t in tools]
            assert len(names) == 53, names
            assert all(WIRE_NAME.match(n) for n in names), names

            started = envelope(
                await session.call_tool("r1_session_start", {"workdir": workdir, "engine": "echo"})
            )
            assert started["ok"], started
            sid = started["data"]["id"]

            args = {"session_id": sid, "text": "hello from python", "client_message_id": "py-1"}
            sent = envelope(await session.call_tool("r1_session_send", args))
            again = envelope(await session.call_tool("r1_session_send", args))
            assert sent["ok"], sent
            assert sent["data"]["message_id"] == again["data"]["message_id"], (sent, again)

            since = sent["data"]["seq"] + 1
            deadline = time.monotonic() + 20
            reply = None
            while reply is None:
                assert time.monotonic() < deadline, "no assistant reply in time"
                page = envelope(
                    await session.call_tool(
                        "r1_bus_tail", {"session_id": sid, "since_seq": since, "wait_ms": 2000}
                    )
                )
                assert page["ok"], page
                since = page["data"]["next_seq"]
                for rec in page["data"]["records"]:
                    if rec["kind"] == "session.message" and rec["data"]["role"] == "assistant":
                        reply = rec["data"]["text"]
            print("reply:", reply)

            cancelled = envelope(await session.call_tool("r1_session_cancel", {"session_id": sid}))
            assert cancelled["ok"], cancelled
            got = envelope(await session.call_tool("r1.session.get", {"session_id": sid}))
            assert got["data"]["id"] == sid, got


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
