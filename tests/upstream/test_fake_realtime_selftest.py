#!/usr/bin/python3
"""Self-test of fake_realtime.py: runs it as a subprocess and talks to it with
python3-websockets 10.4 clients.

    /usr/bin/python3 tests/upstream/test_fake_realtime_selftest.py

Prints one line per check and a final "N passed, M failed"; exits 0 when
nothing failed, 1 otherwise.
"""

import asyncio
import atexit
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fake_realtime as fr  # noqa: E402
import websockets  # noqa: E402

TIMEOUT = 5.0
AUTH = "Bearer sk-test-selftest-123"
BETA = "realtime=v1"
PATH = "/v1/realtime?model=gpt-realtime"

passed = 0
failed = 0
running = []
tmp = tempfile.mkdtemp(prefix="fake_realtime_selftest_")


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print("ok   " + name, flush=True)
    else:
        failed += 1
        print("FAIL " + name + ("  -- " + str(detail) if detail != "" else ""), flush=True)
    return condition


def equal(name, actual, expected):
    return check(name, actual == expected, "got %r, expected %r" % (actual, expected))


def start(args):
    proc, url, cert = fr.start_fake(args)
    running.append(proc)
    return proc, url, cert


def stop(proc):
    rc = fr.stop_fake(proc)
    if proc in running:
        running.remove(proc)
    return rc


@atexit.register
def _cleanup():
    for proc in list(running):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def record_file(name):
    return os.path.join(tmp, name + ".jsonl")


# ---- client helpers -------------------------------------------------------

def connect(url, path=PATH, **kwargs):
    headers = kwargs.pop("extra_headers", {"Authorization": AUTH, "OpenAI-Beta": BETA})
    return websockets.connect(url + path, extra_headers=headers, open_timeout=TIMEOUT,
                              ping_interval=None, **kwargs)


async def recv_json(ws, timeout=TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send_json(ws, event):
    await ws.send(json.dumps(event))


def user_item(text):
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": text}]}}


async def recv_until_done(ws, timeout=TIMEOUT):
    """Events up to and including response.done (or an error event)."""
    events = []
    while True:
        event = await recv_json(ws, timeout)
        events.append(event)
        if event["type"] in ("response.done", "error"):
            return events


async def expect_closed(ws, timeout=TIMEOUT):
    """Receive until the connection closes; return (frames seen, ConnectionClosed)."""
    seen = []
    try:
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except websockets.ConnectionClosed as e:
        return seen, e


async def conversation(ws, text, label, deltas=3):
    """item.create + response.create and check the whole standard sequence."""
    await send_json(ws, user_item(text))
    created = await recv_json(ws)
    equal(label + ": conversation.item.created", created.get("type"), "conversation.item.created")
    item = created.get("item", {})
    check(label + ": item got an id", str(item.get("id", "")).startswith("item_"), item)
    equal(label + ": item text echoed", item.get("content", [{}])[0].get("text"), text)
    await send_json(ws, {"type": "response.create"})
    events = await recv_until_done(ws)
    types = [e["type"] for e in events]
    equal(label + ": response sequence", types,
          ["response.created"] + ["response.output_text.delta"] * deltas
          + ["response.output_text.done", "response.done"])
    if len(events) != deltas + 3:
        return events
    resp_id = events[0]["response"]["id"]
    item_ids = {e.get("item_id") for e in events[1:-1]}
    check(label + ": deltas carry response_id", all(e.get("response_id") == resp_id
                                                    for e in events[1:-1]), events[1:-1])
    check(label + ": deltas share one item_id", len(item_ids) == 1 and None not in item_ids,
          item_ids)
    check(label + ": output/content index 0", all(e.get("output_index") == 0 and
                                                  e.get("content_index") == 0
                                                  for e in events[1:-1]))
    joined = "".join(e["delta"] for e in events[1:1 + deltas])
    equal(label + ": deltas concatenate to the answer", joined, "echo: " + text)
    equal(label + ": output_text.done text", events[-2].get("text"), "echo: " + text)
    equal(label + ": response.done completed", events[-1]["response"].get("status"), "completed")
    equal(label + ": response.done id", events[-1]["response"].get("id"), resp_id)
    return events


# ---- scenarios ------------------------------------------------------------

async def test_basic_ws():
    rec = record_file("basic")
    proc, url, cert = start(["--record", rec])
    check("ws: READY url is ws://127.0.0.1:PORT", url.startswith("ws://127.0.0.1:"), url)
    equal("ws: no CERT line without --tls", cert, None)
    async with connect(url) as ws:
        hello = await recv_json(ws)
        equal("ws: session.created first", hello.get("type"), "session.created")
        session = hello.get("session", {})
        check("ws: session id", str(session.get("id", "")).startswith("sess_"), session)
        equal("ws: session object", session.get("object"), "realtime.session")
        equal("ws: session model", session.get("model"), "gpt-realtime")
        check("ws: event_id", str(hello.get("event_id", "")).startswith("evt_"), hello)
        await conversation(ws, "hello world", "ws")
        # a second response in the same conversation answers the same text
        await send_json(ws, {"type": "response.create"})
        events = await recv_until_done(ws)
        equal("ws: second response.create answers remembered text",
              "".join(e.get("delta", "") for e in events), "echo: hello world")
    records = fr.wait_records(rec, lambda rs: any(r["event"] == "close" for r in rs))
    opens = [r for r in records if r["event"] == "open"]
    recvs = [r for r in records if r["event"] == "recv"]
    closes = [r for r in records if r["event"] == "close"]
    equal("record: one open", len(opens), 1)
    if opens:
        equal("record: conn number", opens[0]["conn"], 1)
        equal("record: path with query", opens[0].get("path"), PATH)
        equal("record: Authorization header", opens[0]["headers"].get("Authorization"), AUTH)
        equal("record: OpenAI-Beta header", fr.header(opens[0], "openai-beta"), BETA)
    equal("record: recv types", [r.get("type") for r in recvs],
          ["conversation.item.create", "response.create", "response.create"])
    if recvs:
        equal("record: recv data is the frame text", json.loads(recvs[0]["data"]),
              user_item("hello world"))
    equal("record: close code from client", [(c.get("code"), c.get("by")) for c in closes],
          [(1000, "client")])
    equal("ws: SIGTERM exits 0", stop(proc), 0)


async def test_tls():
    cert_dir = os.path.join(tmp, "certs")
    proc, url, cert = start(["--tls", "--cert-dir", cert_dir])
    check("wss: READY url is wss://", url.startswith("wss://127.0.0.1:"), url)
    check("wss: CERT in --cert-dir", cert is not None and os.path.dirname(cert) == cert_dir
          and os.path.isfile(cert), cert)
    ctx = ssl.create_default_context(cafile=cert)
    async with connect(url, ssl=ctx) as ws:  # verifies the IP:127.0.0.1 SAN
        equal("wss: session.created", (await recv_json(ws)).get("type"), "session.created")
        await conversation(ws, "over tls", "wss")
    async with connect(url, ssl=ctx, server_hostname="localhost") as ws:  # DNS:localhost SAN
        equal("wss: DNS:localhost SAN accepted", (await recv_json(ws)).get("type"),
              "session.created")
    text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject", "-ext",
                           "subjectAltName"], capture_output=True, text=True).stdout
    check("wss: cert CN=localhost", "CN = localhost" in text or "CN=localhost" in text, text)
    equal("wss: SIGTERM exits 0", stop(proc), 0)
    # default cert dir: a temp dir, removed at exit
    proc, url, cert = start(["--tls"])
    check("wss: default cert exists while running", cert and os.path.isfile(cert), cert)
    equal("wss: SIGTERM exits 0 (temp cert)", stop(proc), 0)
    check("wss: temp cert dir removed at exit", not os.path.exists(cert), cert)


async def test_controls():
    rec = record_file("controls")
    proc, url, _ = start(["--record", rec, "--deltas", "5"])

    async with connect(url) as ws:
        await recv_json(ws)
        await conversation(ws, "five pieces", "--deltas 5", deltas=5)

    # !error, then the connection keeps working
    async with connect(url) as ws:
        await recv_json(ws)
        await send_json(ws, user_item("!error"))
        await recv_json(ws)
        await send_json(ws, {"type": "response.create", "event_id": "client_evt_1"})
        err = await recv_json(ws)
        equal("!error: error event", err.get("type"), "error")
        e = err.get("error", {})
        equal("!error: error fields", (e.get("type"), e.get("code"), e.get("message"),
                                       e.get("param")),
              ("invalid_request_error", "test_error", "requested error", None))
        check("!error: event_id", str(err.get("event_id", "")).startswith("evt_"), err)
        await conversation(ws, "after error", "!error then normal", deltas=5)

    # !close: response.created, then close 1011
    async with connect(url) as ws:
        await recv_json(ws)
        await send_json(ws, user_item("!close"))
        await recv_json(ws)
        await send_json(ws, {"type": "response.create"})
        seen, closed = await expect_closed(ws)
        equal("!close: frames before close", [s["type"] for s in seen], ["response.created"])
        rcvd = closed.rcvd
        equal("!close: close code and reason", (rcvd.code, rcvd.reason) if rcvd else None,
              (1011, "upstream going away"))

    # !drop: one delta, then TCP gone without a close frame
    async with connect(url) as ws:
        await recv_json(ws)
        await send_json(ws, user_item("!drop"))
        await recv_json(ws)
        await send_json(ws, {"type": "response.create"})
        seen, closed = await expect_closed(ws)
        equal("!drop: frames before drop", [s["type"] for s in seen],
              ["response.created", "response.output_text.delta"])
        check("!drop: no close frame (1006)", closed.rcvd is None and closed.code == 1006,
              closed)

    # invalid JSON, unknown types, binary frames, session.update
    async with connect(url) as ws:
        await recv_json(ws)
        await ws.send("this is not json")
        err = await recv_json(ws)
        equal("invalid json: error code", (err.get("type"), err.get("error", {}).get("code")),
              ("error", "invalid_json"))
        await send_json(ws, {"type": "input_audio_buffer.frobnicate", "x": 1})
        await ws.send(b"\x00\x01binary")
        await send_json(ws, {"type": "session.update", "session": {"instructions": "be brief"}})
        upd = await recv_json(ws)
        equal("session.update -> session.updated (unknown type and binary ignored)",
              upd.get("type"), "session.updated")
        equal("session.updated merges", upd.get("session", {}).get("instructions"), "be brief")
        await conversation(ws, "still open", "after invalid json", deltas=5)

    # !slow: 1 s between deltas; response.cancel cancels it
    async with connect(url) as ws:
        await recv_json(ws)
        await send_json(ws, user_item("!slow"))
        await recv_json(ws)
        await send_json(ws, {"type": "response.create"})
        first = [await recv_json(ws), await recv_json(ws)]
        equal("!slow: created + first delta", [f["type"] for f in first],
              ["response.created", "response.output_text.delta"])
        await send_json(ws, {"type": "response.create"})
        busy = await recv_json(ws)
        equal("second response.create while active -> error",
              busy.get("error", {}).get("code"), "conversation_already_has_active_response")
        t0 = time.monotonic()
        await send_json(ws, {"type": "response.cancel"})
        done = await recv_json(ws)
        equal("response.cancel -> response.done cancelled",
              (done.get("type"), done.get("response", {}).get("status")),
              ("response.done", "cancelled"))
        check("response.cancel is prompt", time.monotonic() - t0 < 0.9, time.monotonic() - t0)
        await send_json(ws, {"type": "response.cancel"})
        equal("response.cancel with nothing active -> error",
              (await recv_json(ws)).get("error", {}).get("code"), "response_cancel_not_active")

    # two connections at once: separate conversations
    async with connect(url) as a, connect(url) as b:
        await recv_json(a)
        await recv_json(b)
        await send_json(a, user_item("from a"))
        await send_json(b, user_item("from b"))
        await recv_json(a)
        await recv_json(b)
        await send_json(a, {"type": "response.create"})
        await send_json(b, {"type": "response.create"})
        ea, eb = await recv_until_done(a), await recv_until_done(b)
        equal("two connections: a's answer", ea[-1]["response"]["output"][0]["content"][0]["text"],
              "echo: from a")
        equal("two connections: b's answer", eb[-1]["response"]["output"][0]["content"][0]["text"],
              "echo: from b")

    # subprotocol negotiation like browser clients
    async with connect(url, subprotocols=["realtime", "openai-insecure-api-key.sk-x"]) as ws:
        equal("subprotocol realtime selected", ws.subprotocol, "realtime")

    records = fr.wait_records(rec, lambda rs: sum(r["event"] == "close" for r in rs) >= 9)
    equal("record: conn numbers 1..9", sorted({r["conn"] for r in records}), list(range(1, 10)))
    unknown = [r for r in records if r.get("type") == "input_audio_buffer.frobnicate"]
    equal("record: unknown type recorded", len(unknown), 1)
    binary = [r for r in records if r.get("binary")]
    check("record: binary frame recorded as base64",
          len(binary) == 1 and binary[0].get("data") == "AAFiaW5hcnk=", binary)
    bad = [r for r in records if r["event"] == "recv" and r.get("data") == "this is not json"]
    equal("record: invalid json recorded", len(bad), 1)
    closes = {r["conn"]: r for r in records if r["event"] == "close"}
    equal("record: !close closed by server with 1011", (closes[3].get("code"), closes[3].get("by")),
          (1011, "server"))
    equal("record: !drop closed by server, 1006", (closes[4].get("code"), closes[4].get("by")),
          (1006, "server"))
    equal("controls: SIGTERM exits 0", stop(proc), 0)


async def test_slow_and_delay():
    proc, url, _ = start(["--deltas", "2"])
    async with connect(url) as ws:
        await recv_json(ws)
        await send_json(ws, user_item("!slow"))
        await recv_json(ws)
        t0 = time.monotonic()
        await send_json(ws, {"type": "response.create"})
        events = await recv_until_done(ws)
        elapsed = time.monotonic() - t0
        equal("!slow: completes", events[-1]["response"]["status"], "completed")
        check("!slow: >= ~1 s for 2 deltas (%.2fs)" % elapsed, elapsed >= 0.9, elapsed)
    stop(proc)

    proc, url, _ = start(["--delay-ms", "100"])
    async with connect(url) as ws:
        await recv_json(ws)
        await send_json(ws, user_item("timed"))
        await recv_json(ws)
        t0 = time.monotonic()
        await send_json(ws, {"type": "response.create"})
        events = await recv_until_done(ws)
        elapsed = time.monotonic() - t0
        equal("--delay-ms: 3 deltas", sum(e["type"] == "response.output_text.delta"
                                          for e in events), 3)
        check("--delay-ms 100: >= 0.2 s (%.2fs)" % elapsed, elapsed >= 0.2, elapsed)
    stop(proc)


def raw_upgrade(url, path=PATH):
    """A hand-made upgrade request, to see the rejection's status and body."""
    host, port = url.split("://")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    conn.request("GET", path, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Authorization": AUTH})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), body


async def test_refuse():
    for args, status in ((["--refuse"], 503), (["--reject-status", "401"], 401),
                         (["--refuse", "--reject-status", "403"], 403)):
        rec = record_file("refuse%d" % status)
        proc, url, _ = start(args + ["--record", rec])
        label = " ".join(args)
        try:
            async with connect(url):
                pass
            check(label + ": handshake rejected", False, "handshake succeeded")
        except websockets.InvalidStatusCode as e:
            equal(label + ": handshake rejected with %d" % status, e.status_code, status)
        code, ctype, body = raw_upgrade(url)
        equal(label + ": raw status", code, status)
        try:
            err = json.loads(body)["error"]
        except (ValueError, KeyError):
            err = {}
        check(label + ": JSON error body", ctype == "application/json" and "code" in err, body)
        if status == 401:
            equal(label + ": invalid_api_key", err.get("code"), "invalid_api_key")
        records = fr.wait_records(rec, lambda rs: len(rs) >= 2)
        equal(label + ": rejects recorded", [(r["event"], r.get("status")) for r in records],
              [("reject", status), ("reject", status)])
        equal(label + ": reject records Authorization", fr.header(records[0], "Authorization"),
              AUTH)
        stop(proc)


async def test_drop_after():
    proc, url, _ = start(["--drop-after", "1"])
    async with connect(url) as ws:
        equal("--drop-after 1: session.created still sent", (await recv_json(ws))["type"],
              "session.created")
        await send_json(ws, user_item("x"))
        seen, closed = await expect_closed(ws)
        equal("--drop-after 1: nothing answered", seen, [])
        check("--drop-after 1: dropped without close frame", closed.rcvd is None and
              closed.code == 1006, closed)
    stop(proc)
    proc, url, _ = start(["--drop-after", "2"])
    async with connect(url) as ws:
        await recv_json(ws)
        await send_json(ws, user_item("x"))
        equal("--drop-after 2: first frame answered", (await recv_json(ws))["type"],
              "conversation.item.created")
        await send_json(ws, {"type": "response.create"})
        seen, closed = await expect_closed(ws)
        check("--drop-after 2: dropped at 2nd frame", seen == [] and closed.code == 1006,
              (seen, closed))
    stop(proc)


async def test_exit():
    # SIGTERM with a live connection: exit 0, client sees 1001
    proc, url, _ = start([])
    async with connect(url) as ws:
        await recv_json(ws)
        proc.send_signal(signal.SIGTERM)
        _, closed = await expect_closed(ws)
        equal("SIGTERM: open client gets 1001", closed.code, 1001)
    try:
        rc = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        rc = "still running"
    equal("SIGTERM with open connection exits 0", rc, 0)
    stop(proc)

    proc, url, _ = start([])
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        rc = "still running"
    equal("SIGINT exits 0", rc, 0)
    stop(proc)

    proc, url, _ = start([])
    proc.stdin.close()
    try:
        rc = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        rc = "still running"
    equal("stdin EOF exits 0", rc, 0)
    stop(proc)

    proc, url, _ = start(["--ignore-stdin"])
    proc.stdin.close()
    time.sleep(0.3)
    equal("--ignore-stdin: survives stdin EOF", proc.poll(), None)
    equal("--ignore-stdin: SIGTERM exits 0", stop(proc), 0)

    # a port already in use: start_fake reports the failure
    proc, url, _ = start([])
    port = url.rsplit(":", 1)[1]
    try:
        extra = fr.start_fake(["--port", port])
        running.append(extra[0])
        check("busy port: start_fake raises", False, extra)
    except RuntimeError as e:
        check("busy port: start_fake raises", "before READY" in str(e), e)
    stop(proc)


async def test_read_records():
    path = os.path.join(tmp, "partial.jsonl")
    with open(path, "w") as f:
        f.write('{"conn": 1, "event": "open"}\n{"conn": 1, "ev')
    equal("read_records skips an unfinished last line", fr.read_records(path),
          [{"conn": 1, "event": "open"}])
    equal("read_records of a missing file", fr.read_records(path + ".missing"), [])
    equal("split_text keeps every character",
          "".join(fr.split_text("echo: ab", 5)), "echo: ab")


def main():
    tests = [test_read_records, test_basic_ws, test_tls, test_controls, test_slow_and_delay,
             test_refuse, test_drop_after, test_exit]
    for test in tests:
        try:
            asyncio.run(asyncio.wait_for(test(), 60))
        except Exception:
            check(test.__name__ + " ran to the end", False, traceback.format_exc())
    _cleanup()
    if failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("records kept in " + tmp, flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
