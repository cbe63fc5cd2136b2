"""End-to-end test of examples/agent-chat (seeds/004: EdAgent's real-time chat).

Runs the real wsrelay binary with examples/agent-chat/config.json (as shipped;
only the port comes from --port 0 and the environment supplies the upstream
URL, the API key and the admin token) against the fake Realtime upstream in
tests/upstream/fake_realtime.py, and talks to it with python3-websockets.

    /usr/bin/python3 tests/python/test_profile_agent_chat.py <path-to-wsrelay> [<source-dir>]

Prints "N passed, M failed"; exits nonzero on any failure.
"""

import asyncio
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "upstream"))

import websockets  # noqa: E402

import fake_realtime as fr  # noqa: E402
import wsrelay_harness as h  # noqa: E402

API_KEY = "sk-test-agentchat-7f3a9c21e8b4d605"
ADMIN_TOKEN = "admin-token-5b2e8d17c9a04f36"
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ANSWER_PREFIX = "echo: "  # the fake answers "echo: <text>"


class Client:
    """A WebSocket client that keeps every frame it received."""

    def __init__(self, server, user_id):
        self.server = server
        self.user_id = user_id
        self.ws = None
        self.frames = []  # raw texts (or bytes), in order
        self.sent = 0     # frames sent: the server's message_count

    async def open(self):
        self.ws = await h.connect(self.server.url("/api/v1/ws/" + self.user_id))
        return self

    async def send(self, obj):
        self.sent += 1
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def recv(self, timeout=h.DEFAULT_TIMEOUT):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        self.frames.append(raw)
        return json.loads(raw)

    async def recv_until(self, predicate, timeout=h.DEFAULT_TIMEOUT):
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError("no matching frame within %.1f s (skipped %r)" % (timeout, skipped))
            msg = await self.recv(left)
            if predicate(msg):
                return msg, skipped
            skipped.append(msg)

    async def silence(self, seconds=0.3):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return None
        self.frames.append(raw)
        return raw

    async def close(self):
        await h.close_quietly(self.ws)


def is_final(msg):
    return msg.get("type") == "ai_response" and msg.get("done") is True


def is_typing(value):
    return lambda m: m.get("type") == "typing" and m.get("is_typing") is value


async def ask(c, client, text, what):
    """Sends a message and checks typing -> streamed chunks -> final -> typing
    off. Returns the final ai_response (or None)."""
    await client.send({"message": text})
    first = await client.recv()
    c.check(first.get("type") == "typing" and first.get("is_typing") is True,
            "%s: typing true comes first" % what, first)
    chunks = []
    final = None
    while True:
        msg = await client.recv()
        if msg.get("type") == "ai_response" and msg.get("streaming") is True:
            chunks.append(msg)
            continue
        final = msg
        break
    expected = ANSWER_PREFIX + text
    c.check(len(chunks) >= 1, "%s: at least one streamed ai_response chunk" % what, chunks)
    c.equal("".join(m.get("content", "") for m in chunks), expected, "%s: the chunks concatenate to the answer" % what)
    c.check(all(m.get("done") is False and m.get("user_id") == client.user_id for m in chunks),
            "%s: chunks are done=false and carry the user id" % what, chunks)
    c.check(is_final(final), "%s: a final ai_response follows the chunks" % what, final)
    if is_final(final):
        c.equal(final.get("content"), expected, "%s: final content is the whole answer" % what)
        c.equal(final.get("streaming"), False, "%s: final streaming=false" % what)
        c.equal(final.get("status"), "completed", "%s: final status" % what)
        c.check(bool(ISO_RE.match(final.get("timestamp", ""))), "%s: final has an ISO timestamp" % what, final)
        c.check(all(m.get("message_id") == final.get("message_id") for m in chunks) and final.get("message_id"),
                "%s: chunks and final share a message_id" % what, final)
    off = await client.recv()
    c.check(off.get("type") == "typing" and off.get("is_typing") is False,
            "%s: typing false after the final answer" % what, off)
    return final


def http(server, method, path, body=None, headers=None):
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    import http.client
    conn = http.client.HTTPConnection(server.connect_host(), server.port, timeout=5)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
    finally:
        conn.close()


def records_of(rec):
    return fr.read_records(rec)


def recv_events(records, conn):
    out = []
    for r in records:
        if r.get("conn") == conn and r.get("event") == "recv" and not r.get("binary"):
            try:
                out.append(json.loads(r["data"]))
            except ValueError:
                pass
    return out


def conn_with_text(records, text):
    """The fake's connection number that received an input_text == text."""
    for r in records:
        if r.get("event") != "recv" or r.get("type") != "conversation.item.create":
            continue
        event = json.loads(r["data"])
        for part in event.get("item", {}).get("content", []):
            if part.get("type") == "input_text" and part.get("text") == text:
                return r["conn"]
    return None


async def body(c, server, rec, clients):
    # ---- connection message, lazy upstream ------------------------------------
    alice = await Client(server, "alice").open()
    clients.append(alice)
    hello = await alice.recv()
    c.equal(hello.get("type"), "connection", "connection message on connect")
    c.equal(hello.get("user_id"), "alice", "connection carries the user id from the path")
    c.equal(hello.get("message"), "Connected to EdAgent", "connection message text")
    c.check(bool(ISO_RE.match(hello.get("timestamp", ""))), "connection has an ISO timestamp", hello)
    c.check(re.match(r"^[0-9a-f]{16}$", hello.get("session_id", "")) is not None, "connection has the session id", hello)

    await asyncio.sleep(0.3)
    c.check(not any(r["event"] == "open" for r in records_of(rec)),
            "lazy upstream: nothing connects upstream before the first message")
    status, _, text = http(server, "GET", "/api/v1/ws/status")
    doc = json.loads(text) if status == 200 else {}
    c.equal([x.get("upstream") for x in doc.get("connections", [])], ["idle"], "status shows the idle upstream")

    # ---- a conversation turn ---------------------------------------------------------
    await ask(c, alice, "How do I learn Python?", "alice turn 1")
    records = fr.wait_records(rec, lambda rs: sum(1 for r in rs if r.get("event") == "recv") >= 2)
    opens = [r for r in records if r["event"] == "open"]
    c.equal(len(opens), 1, "one upstream connection after the first message")
    if opens:
        c.equal(fr.header(opens[0], "authorization"), "Bearer " + API_KEY, "the upstream gets the API key")
        c.check(opens[0]["path"].startswith("/v1/realtime"), "the upstream path from OPENAI_REALTIME_URL", opens[0]["path"])
        events = recv_events(records, opens[0]["conn"])
        types = [e.get("type") for e in events]
        c.equal(types[:2], ["conversation.item.create", "response.create"], "item.create then response.create")
        if len(events) >= 2:
            item = events[0].get("item", {})
            c.equal((item.get("type"), item.get("role")), ("message", "user"), "a user message item")
            c.equal(item.get("content"), [{"type": "input_text", "text": "How do I learn Python?"}],
                    "the item carries the text as input_text")
            response = events[1].get("response", {})
            c.equal(response.get("output_modalities"), ["text"], "response.create asks for text output")
            c.check(isinstance(response.get("instructions"), str) and "EdAgent" in response["instructions"],
                    "response.create carries the tutor's instructions", response)

    # ---- validation errors: the connection stays open ------------------------------------
    for frame, code, what in [
        ("this is not json", "invalid_json", "invalid JSON"),
        ({"text": "hi"}, "validation_error", "missing message"),
        ({"message": ""}, "validation_error", "empty message"),
        ({"message": "   \n"}, "validation_error", "blank message"),
        ({"message": 42}, "validation_error", "non-string message"),
        ("[1, 2]", "validation_error", "a JSON array"),
        (b"\x00\x01", "validation_error", "a binary frame"),
        ({"message": "x" * 4001}, "validation_error", "a message over max_message_chars"),
    ]:
        await alice.send(frame)
        msg = await alice.recv()
        c.equal((msg.get("type"), msg.get("code")), ("error", code), "%s -> error %s" % (what, code))
        c.check(isinstance(msg.get("message"), str) and msg["message"], "%s: the error has a message" % what, msg)
    c.equal(await alice.silence(0.2), None, "validation errors start no turn (no typing, no answer)")

    # ---- an upstream error event -----------------------------------------------------------
    await alice.send({"message": "!error"})
    first = await alice.recv()
    c.check(first.get("type") == "typing" and first.get("is_typing") is True, "!error: typing true first", first)
    err = await alice.recv()
    c.equal((err.get("type"), err.get("code")), ("error", "upstream_error"), "!error: upstream error -> error type")
    c.equal(err.get("message"), "requested error", "!error: the upstream's message")
    c.equal((err.get("details") or {}).get("code"), "test_error", "!error: the upstream's error in details")
    off = await alice.recv()
    c.check(off.get("type") == "typing" and off.get("is_typing") is False, "!error: typing false after the error", off)
    await ask(c, alice, "still there?", "alice after the error")

    # ---- two users are isolated -------------------------------------------------------------
    bob = await Client(server, "bob").open()
    clients.append(bob)
    bob_hello = await bob.recv()
    c.equal((bob_hello.get("type"), bob_hello.get("user_id")), ("connection", "bob"), "bob's connection message")
    fa, fb = await asyncio.gather(ask(c, alice, "alpha question about fractions", "alice concurrent"),
                                  ask(c, bob, "beta question about verbs", "bob concurrent"))
    c.check(not any("beta question" in str(f) for f in alice.frames), "alice never sees bob's answer")
    c.check(not any("alpha question" in str(f) for f in bob.frames), "bob never sees alice's answer")
    records = records_of(rec)
    ca = conn_with_text(records, "alpha question about fractions")
    cb = conn_with_text(records, "beta question about verbs")
    c.check(ca is not None and cb is not None and ca != cb, "each user has their own upstream connection", (ca, cb))

    # ---- GET /api/v1/ws/status ------------------------------------------------------------------
    status, headers, text = http(server, "GET", "/api/v1/ws/status")
    c.equal(status, 200, "GET status: 200")
    c.check(headers.get("content-type", "").startswith("application/json"), "GET status: JSON", headers)
    doc = json.loads(text) if status == 200 else {}
    c.equal(doc.get("active_connections"), 2, "status: two active connections")
    conns = {x.get("user_id"): x for x in doc.get("connections", [])}
    c.equal(sorted(conns), ["alice", "bob"], "status lists both users")
    c.equal((conns.get("alice") or {}).get("message_count"), alice.sent, "status: alice's message count")
    c.equal((conns.get("bob") or {}).get("message_count"), bob.sent, "status: bob's message count")
    for user, entry in conns.items():
        c.check(ISO_RE.match(entry.get("connected_at", "")) and ISO_RE.match(entry.get("last_activity", "")),
                "status: %s has connected_at and last_activity" % user, entry)
        c.equal(entry.get("upstream"), "open", "status: %s's upstream is open" % user)
    status, _, _ = http(server, "HEAD", "/api/v1/ws/status")
    c.equal(status, 200, "HEAD status: 200")

    # ---- POST /api/v1/ws/broadcast ----------------------------------------------------------------
    for hdrs, what in [({}, "no token"), ({"Authorization": "Bearer wrong-token"}, "a wrong token"),
                       ({"Authorization": "Bearer " + ADMIN_TOKEN + "x"}, "a longer token"),
                       ({"Authorization": ADMIN_TOKEN}, "the token without 'Bearer'")]:
        status, headers, text = http(server, "POST", "/api/v1/ws/broadcast", {"message": "nope"}, hdrs)
        c.equal(status, 401, "broadcast with %s: 401" % what)
        c.check("bearer" in headers.get("www-authenticate", "").lower(), "401 has WWW-Authenticate: Bearer", headers)
    c.equal(await alice.silence(0.2), None, "a refused broadcast reaches nobody (alice)")
    c.equal(await bob.silence(0.05), None, "a refused broadcast reaches nobody (bob)")
    auth = {"Authorization": "Bearer " + ADMIN_TOKEN}
    status, _, text = http(server, "POST", "/api/v1/ws/broadcast", "not json", auth)
    c.equal(status, 400, "broadcast with a body that is not JSON: 400")
    status, _, text = http(server, "POST", "/api/v1/ws/broadcast", {"message": ""}, auth)
    c.equal(status, 400, "broadcast with an empty message: 400")
    status, _, text = http(server, "POST", "/api/v1/ws/broadcast", {"message": "Maintenance at 18:00"}, auth)
    c.equal(status, 200, "broadcast with the token: 200")
    c.equal((json.loads(text) if status == 200 else {}).get("recipients"), 2, "broadcast: two recipients")
    for client in (alice, bob):
        msg = await client.recv()
        c.equal((msg.get("type"), msg.get("message")), ("broadcast", "Maintenance at 18:00"),
                "%s receives the broadcast" % client.user_id)
        c.check(bool(ISO_RE.match(msg.get("timestamp", ""))), "broadcast has a timestamp", msg)

    # ---- rate limit: 10 per 60 s by default ----------------------------------------------------------
    carol = await Client(server, "carol").open()
    clients.append(carol)
    await carol.recv()
    for i in range(11):
        await carol.send({"message": "question %d" % i})
    finals, limited = [], []
    deadline = time.monotonic() + 10
    while (len(finals) < 10 or not limited) and time.monotonic() < deadline:
        msg = await carol.recv(max(0.1, deadline - time.monotonic()))
        if is_final(msg):
            finals.append(msg)
        elif msg.get("type") == "error":
            limited.append(msg)
    c.equal(len(limited), 1, "rate limit: exactly one message of 11 refused")
    if limited:
        c.equal(limited[0].get("code"), "rate_limited", "rate limit: error code rate_limited")
        c.check(isinstance(limited[0].get("retry_after"), int) and limited[0]["retry_after"] >= 1,
                "rate limit: retry_after in seconds", limited[0])
    c.equal([m.get("content") for m in finals], [ANSWER_PREFIX + "question %d" % i for i in range(10)],
            "rate limit: the 10 accepted messages are answered in order")
    msg, _ = await carol.recv_until(is_typing(False))
    await carol.send({"message": "one more"})
    msg = await carol.recv()
    c.equal(msg.get("code"), "rate_limited", "rate limit: still limited right after")

    # ---- the upstream closes mid-answer: error, the client stays, the next message reconnects ------------
    dave = await Client(server, "dave").open()
    clients.append(dave)
    await dave.recv()
    await dave.send({"message": "!close"})
    err, skipped = await dave.recv_until(lambda m: m.get("type") == "error")
    c.equal(err.get("code"), "upstream_closed", "!close: error upstream_closed")
    off = await dave.recv()
    c.check(off.get("type") == "typing" and off.get("is_typing") is False, "!close: typing false", off)
    await ask(c, dave, "after the close", "dave after the upstream closed")
    records = records_of(rec)
    c1 = conn_with_text(records, "!close")
    c2 = conn_with_text(records, "after the close")
    c.check(c1 is not None and c2 is not None and c1 != c2, "the next message opened a new upstream", (c1, c2))

    # ---- a newer connection of the same user replaces the older ----------------------------------------
    eve1 = await Client(server, "eve").open()
    clients.append(eve1)
    await eve1.recv()
    eve2 = await Client(server, "eve").open()
    clients.append(eve2)
    hello2 = await eve2.recv()
    c.equal(hello2.get("type"), "connection", "the second eve connection is greeted")
    bye = await eve1.recv()
    c.equal((bye.get("type"), bye.get("reason")), ("disconnection", "replaced"), "the first eve gets disconnection")
    try:
        await asyncio.wait_for(eve1.ws.wait_closed(), 3)
    except asyncio.TimeoutError:
        pass
    c.equal(eve1.ws.close_code, 4000, "the replaced connection is closed with 4000")
    status, _, text = http(server, "GET", "/api/v1/ws/status")
    users = [x.get("user_id") for x in json.loads(text).get("connections", [])]
    c.equal(users.count("eve"), 1, "status lists eve once")

    # ---- an invalid user id --------------------------------------------------------------------------------
    bad = await Client(server, "x" * 200).open()
    msg = await bad.recv()
    c.equal((msg.get("type"), msg.get("code")), ("error", "invalid_user_id"), "a too-long user id -> error")
    try:
        await asyncio.wait_for(bad.ws.wait_closed(), 3)
    except asyncio.TimeoutError:
        pass
    c.equal(bad.ws.close_code, 1008, "a too-long user id is closed with 1008")
    clients.append(bad)

    # ---- a frame over max_message_size (64 KiB) ----------------------------------------------------------
    big = await Client(server, "grace").open()
    clients.append(big)
    await big.recv()
    await big.send({"message": "y" * 70000})
    msg = await big.recv()
    c.equal((msg.get("type"), msg.get("code")), ("error", "message_too_large"), "a 70 KB frame -> message_too_large")
    try:
        await asyncio.wait_for(big.ws.wait_closed(), 3)
    except asyncio.TimeoutError:
        pass
    c.equal(big.ws.close_code, 1009, "a 70 KB frame closes with 1009")

    # ---- the relay's own routes still answer -----------------------------------------------------------
    status, _, text = http(server, "GET", "/healthz")
    c.equal((status, text), (200, "ok"), "/healthz still answers")
    status, _, text = http(server, "GET", "/api/v1/ws/nothing")
    c.equal(status, 404, "an unknown path is 404")


async def empty_token(c, binary, source, fake_url):
    """With WSRELAY_ADMIN_TOKEN unset, every broadcast is refused. The
    upstream here refuses every handshake with 401 (a wrong API key)."""
    env = h.clean_env({"OPENAI_REALTIME_URL": fake_url, "OPENAI_API_KEY": API_KEY, "WSRELAY_HOST": "127.0.0.1"},
                      remove=("WSRELAY_JWT_SECRET", "WSRELAY_ADMIN_TOKEN"))
    server = h.Server(binary, ["--config", os.path.join(source, "examples/agent-chat/config.json")], env=env)
    server.start()
    try:
        client = await Client(server, "frank").open()
        await client.recv()
        for hdrs in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"},
                     {"Authorization": "Bearer " + ADMIN_TOKEN}):
            status, _, _ = http(server, "POST", "/api/v1/ws/broadcast", {"message": "hi"}, hdrs)
            c.equal(status, 401, "no admin token configured: broadcast refused (%r)" % hdrs)
        c.equal(await client.silence(0.2), None, "no admin token configured: nobody receives")
        await client.send({"message": "anyone there?"})
        first = await client.recv()
        c.check(first.get("type") == "typing" and first.get("is_typing") is True,
                "upstream refused: typing true first", first)
        err = await client.recv()
        c.equal((err.get("type"), err.get("code")), ("error", "upstream_unavailable"),
                "upstream refused (401): error upstream_unavailable")
        off = await client.recv()
        c.check(off.get("type") == "typing" and off.get("is_typing") is False, "upstream refused: typing false", off)
        await client.send({"message": "again?"})
        msgs = [await client.recv() for _ in range(3)]
        c.equal([m.get("code") or m.get("type") for m in msgs], ["typing", "upstream_unavailable", "typing"],
                "upstream refused: the connection stays and the next message tries again")
        status, _, text = http(server, "GET", "/api/v1/ws/status")
        c.equal([x.get("upstream") for x in json.loads(text).get("connections", [])], ["closed"],
                "upstream refused: status shows the closed upstream")
        leaked = [f for f in client.frames if API_KEY[3:] in (f if isinstance(f, str) else "")]
        c.equal(leaked, [], "upstream refused: the API key is in no client frame")
        await client.close()
    finally:
        server.stop()
    c.check(any("no admin_token configured" in line for line in server.stderr_lines),
            "no admin token configured: a warning at start", server.stderr_text()[-500:])
    leaked = [line for line in server.stderr_lines if API_KEY[3:] in line]
    c.equal(leaked, [], "upstream refused: the API key is in no log line")


def main():
    binary, source = h.usage_args()
    c = h.Checker()
    tmp = tempfile.mkdtemp(prefix="wsrelay-agent-chat-")
    rec = os.path.join(tmp, "record.jsonl")
    proc, url, _ = fr.start_fake(["--record", rec])
    fake_url = url + "/v1/realtime?model=gpt-realtime"
    env = h.clean_env({"OPENAI_REALTIME_URL": fake_url, "OPENAI_API_KEY": API_KEY,
                       "WSRELAY_ADMIN_TOKEN": ADMIN_TOKEN, "WSRELAY_HOST": "127.0.0.1"})
    server = h.Server(binary, ["--config", os.path.join(source, "examples/agent-chat/config.json")], env=env)
    clients = []

    async def run(checker):
        try:
            await body(checker, server, rec, clients)
        finally:
            for client in clients:
                await client.close()
        proc401, url401, _ = fr.start_fake(["--reject-status", "401"])
        try:
            await empty_token(checker, binary, source, url401 + "/v1/realtime?model=gpt-realtime")
        finally:
            fr.stop_fake(proc401)

    try:
        server.start()
        h.run_async_main(run, _NoReport(c))
    except Exception as exc:  # noqa: BLE001
        c.error("starting the servers", exc)
    finally:
        server.stop()
        fr.stop_fake(proc)

    # ---- secrets: the API key in no client frame and no log line ---------------------------------------
    frames = [f if isinstance(f, str) else f.decode("utf-8", "replace") for cl in clients for f in cl.frames]
    c.check(len(frames) > 20, "frames were collected", len(frames))
    c.check(not any(API_KEY in f or API_KEY[3:] in f for f in frames), "the API key is in no client frame")
    lines = server.stderr_lines
    c.check(len(lines) > 5, "log lines were collected", len(lines))
    leaked = [line for line in lines if API_KEY in line or API_KEY[3:] in line]
    c.equal(leaked, [], "the API key is in no log line")
    leaked = [line for line in lines if ADMIN_TOKEN in line]
    c.equal(leaked, [], "the admin token is in no log line")
    c.check(not any("ERROR" in line for line in lines), "no ERROR log lines",
            [line for line in lines if "ERROR" in line])
    sys.exit(c.report())


class _NoReport:
    """Lets run_async_main record failures without printing the report twice."""

    def __init__(self, checker):
        self.checker = checker

    def __getattr__(self, name):
        return getattr(self.checker, name)

    def report(self):
        return 0


if __name__ == "__main__":
    main()
