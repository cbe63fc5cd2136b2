#!/usr/bin/python3
"""The demo's assistant in the built-in config (a plain `wsrelay`, no
--config), against the fake OpenAI upstream (tests/upstream/fake_realtime.py).

    /usr/bin/python3 tests/python/test_demo_assistant.py <wsrelay> <source-dir>

- without OPENAI_API_KEY: no /assistant endpoint (GET /status, the upgrade is
  404) and one log line saying how to turn it on;
- with OPENAI_API_KEY and WSRELAY_ASSISTANT_URL pointing at the fake:
  /status lists /assistant (realtime.lua); the page's own origin may open it,
  another origin and a client without Origin are refused (403); plain text
  goes to the fake as a user item plus response.create asking for text, the
  fake's streamed answer comes back; the key reaches the upstream handshake
  and no log line;
- a bad WSRELAY_ASSISTANT_URL stops the start with an error naming it.
Prints "N passed, M failed".
"""

import asyncio
import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "upstream"))

import websockets  # noqa: E402

import fake_realtime as fr  # noqa: E402
from wsrelay_harness import (Checker, Server, clean_env, connect, http_get, recv_until,  # noqa: E402
                             run_async_main, run_binary)

KEY = "sk-demo-assistant-test-key-0123456789"
UPSTREAM_PATH = "/v1/realtime?model=gpt-realtime"
NO_KEY = ("OPENAI_API_KEY", "WSRELAY_ASSISTANT_URL", "WSRELAY_JWT_SECRET")


def status_paths(server):
    status, _, body = http_get(server.connect_host(), server.port, "/status")
    if status != 200:
        return {}
    return {ep["path"]: ep["script"] for ep in json.loads(body)["endpoints"]}


async def refused_status(url, **kwargs):
    """The HTTP status an upgrade is refused with, or None if it opens."""
    try:
        ws = await connect(url, **kwargs)
    except websockets.exceptions.InvalidStatusCode as exc:
        return exc.status_code
    await ws.close()
    return None


async def without_key(c, binary):
    with Server(binary, env=clean_env(remove=NO_KEY)) as server:
        c.equal(status_paths(server), {"/ws": "standard.lua"}, "without OPENAI_API_KEY: only /ws")
        c.equal(await refused_status(server.url("/assistant")), 404, "without the key /assistant is 404")
        # Printed after the listening line that start() waits for: the
        # reader thread may not have taken it yet.
        said = await asyncio.to_thread(server.wait_for_stderr,
                                       lambda lines: any("set OPENAI_API_KEY" in line for line in lines))
        c.check(said, "the start log says how to turn the assistant on", server.stderr_text())


async def with_key(c, binary, folder):
    record = os.path.join(folder, "fake.jsonl")
    fake, fake_url, _ = fr.start_fake(["--port", "0", "--record", record])
    try:
        env = clean_env({"OPENAI_API_KEY": KEY, "WSRELAY_ASSISTANT_URL": fake_url + UPSTREAM_PATH}, remove=NO_KEY)
        with Server(binary, env=env) as server:
            c.equal(status_paths(server), {"/ws": "standard.lua", "/assistant": "realtime.lua"},
                    "with OPENAI_API_KEY: /ws and /assistant (realtime.lua)")
            c.check(any(" /assistant (" in line and "listening on" in line for line in server.stderr_lines),
                    "the start line lists /assistant", server.stderr_text())
            page_origin = "http://%s:%d" % (server.connect_host(), server.port)
            url = server.url("/assistant")
            c.equal(await refused_status(url, origin="http://evil.example"), 403,
                    "another site's page may not open /assistant (403)")
            c.equal(await refused_status(url), 403, "a client without Origin may not either")

            ws = await connect(url, origin=page_origin)
            created, _ = await recv_until(ws, lambda m: m.get("type") == "session.created", timeout=10)
            c.check(created, "the page's origin opens it; the upstream says session.created")
            await ws.send("what is wsrelay?")
            deltas = []

            def collect(m):
                if m.get("type") in ("response.output_text.delta", "response.text.delta"):
                    deltas.append(m.get("delta", ""))
                return m.get("type") == "response.done"
            await recv_until(ws, collect, timeout=10)
            c.equal("".join(deltas), fr.answer_for("what is wsrelay?"), "the streamed answer arrives in deltas")
            c.check(len(deltas) > 1, "in more than one delta", deltas)
            await ws.close()

            records = fr.wait_records(record, lambda rs: sum(r["event"] == "recv" for r in rs) >= 2, timeout=10)
            opened = [r for r in records if r["event"] == "open"]
            c.check(opened and fr.header(opened[0], "Authorization") == "Bearer " + KEY,
                    "the key goes to the upstream as Authorization: Bearer", opened[:1])
            c.check(opened and opened[0].get("path") == UPSTREAM_PATH, "at WSRELAY_ASSISTANT_URL's path",
                    opened[:1])
            sent = [json.loads(r["data"]) for r in records if r["event"] == "recv"]
            c.equal([m.get("type") for m in sent[:2]], ["conversation.item.create", "response.create"],
                    "one user turn: the item, then response.create")
            c.equal(sent[0]["item"]["content"][0]["text"] if sent else None, "what is wsrelay?",
                    "the item holds the text")
            c.equal(sent[1].get("response") if len(sent) > 1 else None, {"output_modalities": ["text"]},
                    "response.create asks for text only")
            c.check(KEY not in server.stderr_text(), "the key is in no log line")
    finally:
        fr.stop_fake(fake)


def bad_url(c, binary):
    env = clean_env({"OPENAI_API_KEY": KEY, "WSRELAY_ASSISTANT_URL": "http://not-a-websocket"}, remove=NO_KEY)
    code, _, err = run_binary(binary, ["--port", "0"], env=env)
    c.equal(code, 1, "a bad WSRELAY_ASSISTANT_URL stops the start (exit 1)")
    c.check("<built-in assistant>" in err and "upstream.url" in err, "with an error naming the URL", err)
    c.check(KEY not in err, "the error does not show the key", err)


async def main(c):
    folder = tempfile.mkdtemp(prefix="wsrelay-assistant-")
    try:
        await without_key(c, sys.argv[1])
        await with_key(c, sys.argv[1], folder)
        bad_url(c, sys.argv[1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
