#!/usr/bin/python3
"""End-to-end test of the realtime-relay profile (seeds/002): the per-client
relay to OpenAI's Realtime API, run as examples/realtime-relay/config.json
unchanged, against the fake upstream (tests/upstream/fake_realtime.py).

    /usr/bin/python3 tests/python/test_profile_realtime_relay.py <wsrelay> <source-dir>

The suite itself (run_openai_suite) is shared with test_profile_unity_text.py,
which imports this file: both profiles relay plain text to the same upstream
and differ only in how an upstream event reaches the client (unchanged here,
wrapped in {source, timestamp, data} there). Prints "N passed, M failed".
"""

import asyncio
import copy
import json
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "upstream"))

import websockets  # noqa: E402

import fake_realtime as fr  # noqa: E402
from wsrelay_harness import (  # noqa: E402
    Section, Checker, Server, clean_env, close_quietly, connect, http_get, run_binary, usage_args)

TEST_KEY = "sk-test-0123456789abcdefSECRET"
UPSTREAM_PATH = "/v1/realtime?model=gpt-realtime"


def canonical_dump(text):
    """The fake writes every event with Python's json.dumps defaults: text
    that still reads back identically was not re-encoded on the way."""
    return json.dumps(json.loads(text))


# ---- the profile under test -----------------------------------------------------


class RealtimeRelayProfile:
    """Upstream events reach the client unchanged; relay errors are Realtime
    error events with error.type "relay_error"."""

    name = "realtime-relay"
    example = "realtime-relay"
    path = "/ws"
    response_create = {"type": "response.create"}
    max_message_size = 16 * 1024 * 1024  # the document: no limit of the server's own
    big_message = 2 * 1024 * 1024         # over the server default (1 MiB)

    def parse(self, text):
        """(source, event dict, data text) of a frame the client got; source
        is "openai" for an upstream event, "relay" for the relay's own."""
        event = json.loads(text)
        is_relay = (event.get("type") == "error" and isinstance(event.get("error"), dict)
                    and event["error"].get("type") == "relay_error")
        return ("relay" if is_relay else "openai"), event, text

    def check_frame(self, c, text, what):
        """Checks the envelope of one frame; returns (source, event)."""
        source, event, data_text = self.parse(text)
        if source == "openai":
            c.equal(data_text, canonical_dump(data_text), "%s: upstream event forwarded byte for byte" % what)
        else:
            c.check(isinstance(event.get("event_id"), str) and isinstance(event["error"].get("code"), str)
                    and isinstance(event["error"].get("message"), str),
                    "%s: relay error is a Realtime error event (event_id, error.code, error.message)" % what,
                    event)
        return source, event


# ---- client helpers ---------------------------------------------------------------


class Client:
    """One WebSocket client that checks and keeps every frame it gets."""

    def __init__(self, c, profile, all_frames, name):
        self.c = c
        self.profile = profile
        self.all_frames = all_frames
        self.name = name
        self.ws = None

    async def open(self, url):
        self.ws = await connect(url)
        return self

    async def next(self, timeout=5.0):
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        self.all_frames.append(text if isinstance(text, str) else repr(text))
        return self.profile.check_frame(self.c, text, self.name)

    async def until(self, predicate, timeout=5.0):
        """Reads until predicate(source, event); returns (event, skipped events)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError("%s: no matching frame within %.1f s; got %r"
                                           % (self.name, timeout, skipped))
            source, event = await self.next(left)
            if predicate(source, event):
                return event, skipped
            skipped.append((source, event))

    async def reply_to(self, text, timeout=5.0):
        """Sends text, reads up to response.done; returns the openai events."""
        await self.ws.send(text)
        done, skipped = await self.until(lambda s, e: s == "openai" and e.get("type") == "response.done",
                                         timeout)
        return [e for s, e in skipped if s == "openai"] + [done], [e for s, e in skipped if s == "relay"]

    async def close_and_code(self, timeout=5.0):
        """Waits for the server's close; returns (code, reason, frames before it)."""
        frames = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                frames.append(await self.next(deadline - time.monotonic()))
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason, frames


def deltas_text(events):
    return "".join(e.get("delta", "") for e in events if e.get("type") == "response.output_text.delta")


def records_of(rec, conn, event=None):
    return [r for r in fr.read_records(rec) if r.get("conn") == conn and (event is None or r["event"] == event)]


# ---- the suite ---------------------------------------------------------------------


def write_config(source_dir, profile, tmp, tls_insecure=None):
    """A copy of the example's config with the script path made absolute
    (and upstream.tls_insecure set if asked); returns its path."""
    example_dir = os.path.join(source_dir, "examples", profile.example)
    with open(os.path.join(example_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg = copy.deepcopy(cfg)
    for ep in cfg["endpoints"]:
        if "script" in ep and not os.path.isabs(ep["script"]):
            ep["script"] = os.path.join(example_dir, ep["script"])
        if tls_insecure is not None and "upstream" in ep:
            ep["upstream"]["tls_insecure"] = tls_insecure
    path = os.path.join(tmp, "config-%s-%s.json" % (profile.name, "insecure" if tls_insecure else "plain"))
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def env_for(upstream_url, key=TEST_KEY):
    extra = {"OPENAI_REALTIME_URL": upstream_url + UPSTREAM_PATH, "WSRELAY_HOST": "127.0.0.1"}
    if key is not None:
        extra["OPENAI_API_KEY"] = key
    return clean_env(extra, remove=("WSRELAY_JWT_SECRET", "OPENAI_API_KEY", "OPENAI_REALTIME_URL"))


def check_missing_key(c, binary, config_path, profile):
    env = clean_env({"OPENAI_REALTIME_URL": "ws://127.0.0.1:9/x"},
                    remove=("WSRELAY_JWT_SECRET", "OPENAI_API_KEY"))
    for args in (["--config", config_path], ["--check", "--config", config_path]):
        rc, out, err = run_binary(binary, args, env=env, timeout=15)
        what = "%s: %s without OPENAI_API_KEY" % (profile.name, " ".join(a for a in args if a.startswith("--")))
        c.equal(rc, 1, what + ": exit code 1")
        lines = [line for line in err.splitlines() if line.strip()]
        naming = [line for line in lines if "OPENAI_API_KEY" in line]
        c.equal(len(naming), 1, what + ": exactly one line names OPENAI_API_KEY")
        if naming:
            c.check("endpoints[0].upstream.headers.Authorization" in naming[0]
                    and "is not set" in naming[0],
                    what + ": the line names the key path and says it is not set", naming[0])
        c.check(not any("listening on" in line for line in lines), what + ": it never listens", err)


async def check_conversation(c, profile, url, rec, all_frames):
    a = await Client(c, profile, all_frames, "client A").open(url)
    try:
        source, first = await a.next()
        c.equal((source, first.get("type")), ("openai", "session.created"),
                "%s: first frame is the upstream's session.created" % profile.name)
        events, relay_errors = await a.reply_to("hello there")
        types = [e.get("type") for e in events]
        c.equal(relay_errors, [], "%s: no relay error during a normal reply" % profile.name)
        c.equal(types[:2], ["conversation.item.created", "response.created"],
                "%s: the reply starts with item.created, response.created" % profile.name)
        c.equal(types[-2:], ["response.output_text.done", "response.done"],
                "%s: the reply ends with output_text.done, response.done" % profile.name)
        c.equal(deltas_text(events), "echo: hello there", "%s: the deltas carry the answer" % profile.name)
        created = events[0]
        c.equal(created.get("item", {}).get("content"), [{"type": "input_text", "text": "hello there"}],
                "%s: the upstream saw the text as one input_text part" % profile.name)

        recs = fr.wait_records(rec, lambda rs: sum(1 for r in rs if r["event"] == "recv") >= 2)
        opens = [r for r in recs if r["event"] == "open"]
        c.equal(len(opens), 1, "%s: one upstream handshake for one client" % profile.name)
        conn = opens[0]["conn"] if opens else None
        c.equal(opens[0]["path"] if opens else None, UPSTREAM_PATH,
                "%s: the upstream URL path and query from OPENAI_REALTIME_URL" % profile.name)
        c.equal(fr.header(opens[0], "authorization") if opens else None, "Bearer " + TEST_KEY,
                "%s: the key is in the upstream handshake (Authorization: Bearer)" % profile.name)
        c.equal(fr.header(opens[0], "openai-beta") if opens else "x", None,
                "%s: no retired OpenAI-Beta header in the handshake" % profile.name)
        recvs = [json.loads(r["data"]) for r in records_of(rec, conn, "recv")]
        c.equal(recvs[:2], [
            {"type": "conversation.item.create",
             "item": {"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": "hello there"}]}},
            profile.response_create,
        ], "%s: text -> conversation.item.create + response.create at the upstream" % profile.name)

        # An upstream error event reaches the client like any event.
        await a.ws.send("!error")
        err, skipped = await a.until(lambda s, e: e.get("type") == "error")
        source = profile.parse(all_frames[-1])[0]
        c.equal(source, "openai", "%s: the upstream's error event is relayed as an upstream event" % profile.name)
        c.equal((err.get("error") or {}).get("code"), "test_error",
                "%s: the upstream error event arrives unchanged" % profile.name)

        # Relay-side validation: empty text and binary frames; the connection stays.
        await a.ws.send("   ")
        source, ev = await a.next()
        c.equal((source, ev.get("type"), (ev.get("error") or {}).get("code")),
                ("relay", "error", "empty_message"), "%s: blank text -> relay error empty_message" % profile.name)
        await a.ws.send(b"\x00\x01")
        source, ev = await a.next()
        c.equal((source, ev.get("type"), (ev.get("error") or {}).get("code")),
                ("relay", "error", "bad_request"), "%s: binary frame -> relay error bad_request" % profile.name)

        # A big message within the endpoint's max_message_size goes through.
        big = "x" * profile.big_message
        await a.ws.send(big)
        ev, skipped = await a.until(lambda s, e: e.get("type") == "conversation.item.created", 10)
        c.check(not [s for s, e in skipped if s == "relay"],
                "%s: a %d-byte message is relayed" % (profile.name, len(big)), skipped)
        await a.until(lambda s, e: e.get("type") == "response.done", 10)

        # Slow upstream: 1 s between deltas; everything still arrives in order.
        t0 = time.monotonic()
        events, relay_errors = await a.reply_to("!slow", timeout=10)
        c.check(time.monotonic() - t0 >= 1.5, "%s: !slow took its time" % profile.name)
        c.equal(deltas_text(events), "echo: !slow", "%s: slow upstream: all deltas, in order" % profile.name)
        c.equal(relay_errors, [], "%s: slow upstream: no relay error" % profile.name)
    finally:
        await close_quietly(a.ws)
    recs = fr.wait_records(rec, lambda rs: any(r["event"] == "close" and r["conn"] == conn for r in rs))
    close = [r for r in recs if r["event"] == "close" and r["conn"] == conn][0]
    c.equal((close.get("by"), close.get("code")), ("client", 1000),
            "%s: client close -> its upstream is closed with 1000" % profile.name)


async def check_too_large(c, profile, url, all_frames):
    a = await Client(c, profile, all_frames, "client too large").open(url)
    try:
        await a.next()
        try:
            await a.ws.send("y" * (profile.max_message_size + 1))
        except websockets.ConnectionClosed:
            pass  # the server stops reading at the limit and closes; its error is queued
        code, reason, frames = await a.close_and_code(8)
        relay_errors = [e for s, e in frames if s == "relay"]
        c.check(len(relay_errors) == 1 and relay_errors[0]["error"]["code"] == "too_large",
                "%s: a message over %d bytes -> relay error too_large" % (profile.name, profile.max_message_size),
                frames)
        c.equal(code, 1009, "%s: ... then close 1009" % profile.name)
    finally:
        await close_quietly(a.ws)


async def check_isolation(c, profile, url, rec, all_frames):
    before = len([r for r in fr.read_records(rec) if r["event"] == "open"])
    a = await Client(c, profile, all_frames, "client A").open(url)
    b = await Client(c, profile, all_frames, "client B").open(url)
    try:
        await a.next()
        await b.next()
        ra, rb = await asyncio.gather(a.reply_to("from A only"), b.reply_to("from B only"))
        c.equal(deltas_text(ra[0]), "echo: from A only", "%s: isolation: A gets its own answer" % profile.name)
        c.equal(deltas_text(rb[0]), "echo: from B only", "%s: isolation: B gets its own answer" % profile.name)
        a_text = json.dumps(ra[0])
        b_text = json.dumps(rb[0])
        c.check("from B" not in a_text and "from A" not in b_text,
                "%s: isolation: no event crosses between clients" % profile.name)
        recs = fr.read_records(rec)
        opens = [r for r in recs if r["event"] == "open"][before:]
        c.equal(len(opens), 2, "%s: isolation: two clients -> two upstream connections" % profile.name)
        texts = {}
        for o in opens:
            for r in records_of(rec, o["conn"], "recv"):
                if r.get("type") == "conversation.item.create":
                    texts.setdefault(o["conn"], []).append(
                        json.loads(r["data"])["item"]["content"][0]["text"])
        c.equal(sorted(texts.values()), [["from A only"], ["from B only"]],
                "%s: isolation: each upstream saw only its own client's text" % profile.name)
        # One client leaving does not disturb the other.
        await close_quietly(a.ws)
        rb2 = await b.reply_to("still here")
        c.equal(deltas_text(rb2[0]), "echo: still here",
                "%s: isolation: B carries on after A disconnected" % profile.name)
    finally:
        await close_quietly(a.ws)
        await close_quietly(b.ws)


async def check_quick_leavers(c, profile, srv, rec):
    """Clients that leave while their upstream is still connecting: every
    upstream link still ends (a link left open would be an OpenAI session with
    nobody behind it). lws reports such a link's end as the HTTP client's
    close, which the relay once missed."""
    url = srv.url(profile.path)
    # Links of the earlier scenarios may still be closing (their close record
    # can land while this one runs): count by link, not by event totals.
    earlier = {r["conn"] for r in fr.read_records(rec) if r["event"] == "open"}

    def new_links(records, event):
        return {r["conn"] for r in records if r["event"] == event and r["conn"] not in earlier}

    async def one(i):
        ws = await connect(url)
        if i % 3:
            await asyncio.sleep(0.002 * i)
        await close_quietly(ws)

    await asyncio.gather(*[one(i) for i in range(24)])
    links = None
    for _ in range(100):
        status, _, body = http_get(srv.connect_host(), srv.port, "/status")
        links = json.loads(body).get("upstream_links") if status == 200 else None
        if links == 0:
            break
        await asyncio.sleep(0.05)
    c.equal(links, 0, "%s: 24 clients that left mid-connect leave no upstream link open" % profile.name)
    try:
        recs = fr.wait_records(rec, lambda r: new_links(r, "open") <= new_links(r, "close"), timeout=5.0)
    except TimeoutError:
        recs = fr.read_records(rec)
    opened, closed = new_links(recs, "open"), new_links(recs, "close")
    c.equal(sorted(opened - closed), [], "%s: the fake upstream saw every link it accepted closed (%d)"
            % (profile.name, len(opened)))


async def check_upstream_failures(c, profile, url, all_frames):
    """!drop and !close on the main fake."""
    a = await Client(c, profile, all_frames, "client drop").open(url)
    try:
        await a.next()
        await a.ws.send("!drop")
        code, reason, frames = await a.close_and_code(8)
        types = [(s, e.get("type")) for s, e in frames]
        c.check(("openai", "response.created") in types,
                "%s: !drop: the reply had started" % profile.name, types)
        relay_errors = [e for s, e in frames if s == "relay"]
        c.check(len(relay_errors) == 1 and relay_errors[0]["error"]["code"] == "upstream_unavailable",
                "%s: !drop: one relay error upstream_unavailable before the close" % profile.name, frames)
        c.check(types and types[-1][0] == "relay", "%s: !drop: the error is the last frame" % profile.name, types)
        c.equal((code, reason), (1014, "upstream unavailable"), "%s: !drop: client closed 1014" % profile.name)
    finally:
        await close_quietly(a.ws)

    a = await Client(c, profile, all_frames, "client close").open(url)
    try:
        await a.next()
        await a.ws.send("!close")
        code, reason, frames = await a.close_and_code(8)
        relay_errors = [e for s, e in frames if s == "relay"]
        c.check(len(relay_errors) == 1 and relay_errors[0]["error"]["code"] == "upstream_closed"
                and "1011" in relay_errors[0]["error"]["message"],
                "%s: upstream close 1011: one relay error upstream_closed naming the code" % profile.name, frames)
        c.equal((code, reason), (1011, "upstream going away"),
                "%s: upstream close 1011: client closed with the upstream's code and reason" % profile.name)
    finally:
        await close_quietly(a.ws)


async def check_refused(c, profile, binary, config_path, fake_args, all_frames, tmp):
    proc, up_url, _ = fr.start_fake(fake_args)
    try:
        env = env_for(up_url)
        with Server(binary, ["--config", config_path, "--host", "127.0.0.1"], env=env) as srv:
            a = await Client(c, profile, all_frames, "client refused").open(srv.url(profile.path))
            try:
                code, reason, frames = await a.close_and_code(8)
                what = "%s: upstream %s" % (profile.name, " ".join(fake_args))
                relay_errors = [e for s, e in frames if s == "relay"]
                c.check(len(frames) == 1 and len(relay_errors) == 1
                        and relay_errors[0]["error"]["code"] == "upstream_unavailable",
                        what + ": the client gets one relay error", frames)
                c.equal((code, reason), (1014, "upstream unavailable"), what + ": then a close 1014")
            finally:
                await close_quietly(a.ws)
            c.check(TEST_KEY not in srv.stderr_text(), "%s: refused: the key is in no log line" % profile.name)
    finally:
        fr.stop_fake(proc)


async def check_tls(c, profile, binary, source_dir, all_frames, tmp):
    proc, up_url, cert = fr.start_fake(["--tls", "--record", os.path.join(tmp, "tls.jsonl")])
    try:
        c.check(up_url.startswith("wss://"), "%s: the TLS fake serves wss://" % profile.name, up_url)
        env = env_for(up_url)
        insecure = write_config(source_dir, profile, tmp, tls_insecure=True)
        with Server(binary, ["--config", insecure], env=env) as srv:
            a = await Client(c, profile, all_frames, "client wss").open(srv.url(profile.path))
            try:
                source, first = await a.next()
                c.equal(first.get("type"), "session.created",
                        "%s: wss upstream with a self-signed cert works with tls_insecure" % profile.name)
                events, _ = await a.reply_to("over tls")
                c.equal(deltas_text(events), "echo: over tls", "%s: wss: a full reply" % profile.name)
            finally:
                await close_quietly(a.ws)
        plain = os.path.join(source_dir, "examples", profile.example, "config.json")
        with Server(binary, ["--config", plain], env=env) as srv:
            a = await Client(c, profile, all_frames, "client wss strict").open(srv.url(profile.path))
            try:
                code, reason, frames = await a.close_and_code(8)
                relay_errors = [e for s, e in frames if s == "relay"]
                c.check(len(frames) == 1 and len(relay_errors) == 1,
                        "%s: wss without tls_insecure: the self-signed cert is refused (one relay error)"
                        % profile.name, frames)
                c.equal(code, 1014, "%s: wss without tls_insecure: client closed 1014" % profile.name)
            finally:
                await close_quietly(a.ws)
    finally:
        fr.stop_fake(proc)


async def run_openai_suite(c, profile, binary, source_dir):
    config_path = os.path.join(source_dir, "examples", profile.example, "config.json")
    tmp = tempfile.mkdtemp(prefix="wsrelay-%s-" % profile.name)
    all_frames = []
    try:
        check_missing_key(c, binary, config_path, profile)

        rc, out, err = run_binary(binary, ["--check", "--config", config_path],
                                  env=env_for("ws://127.0.0.1:9"), timeout=15)
        c.equal(rc, 0, "%s: --check passes with the key set" % profile.name, )

        rec = os.path.join(tmp, "main.jsonl")
        proc, up_url, _ = fr.start_fake(["--record", rec])
        try:
            # The example config unchanged (host from WSRELAY_HOST, port overridden
            # by the harness's --port 0), logging at debug to catch any key leak.
            srv = Server(binary, ["--config", config_path, "--log-level", "debug"], env=env_for(up_url))
            with srv:
                url = srv.url(profile.path)
                async with Section(c, "conversation"):
                    await check_conversation(c, profile, url, rec, all_frames)
                async with Section(c, "isolation"):
                    await check_isolation(c, profile, url, rec, all_frames)
                async with Section(c, "too large"):
                    await check_too_large(c, profile, url, all_frames)
                async with Section(c, "upstream failures"):
                    await check_upstream_failures(c, profile, url, all_frames)
                async with Section(c, "clients leaving mid-connect"):
                    await check_quick_leavers(c, profile, srv, rec)
            log = srv.stderr_text()
            c.check(TEST_KEY not in log, "%s: the key is in no wsrelay log line (debug level)" % profile.name,
                    [line for line in log.splitlines() if TEST_KEY in line][:3])
            c.check("upstream open" in log, "%s: the log shows the upstream link" % profile.name)
        finally:
            fr.stop_fake(proc)

        async with Section(c, "refused"):
            await check_refused(c, profile, binary, config_path, ["--refuse"], all_frames, tmp)
        async with Section(c, "rejected 401"):
            await check_refused(c, profile, binary, config_path, ["--reject-status", "401"], all_frames, tmp)
        async with Section(c, "tls"):
            await check_tls(c, profile, binary, source_dir, all_frames, tmp)

        c.check(all_frames, "%s: frames were received" % profile.name)
        c.check(not any(TEST_KEY in f for f in all_frames),
                "%s: the key is in no client frame" % profile.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(profile):
    binary, source_dir = usage_args()
    c = Checker()
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(run_openai_suite(c, profile, binary, source_dir), 55))
    except Exception as exc:  # noqa: BLE001
        c.error("the %s suite" % profile.name, exc)
    print("(%.1f s)" % (time.monotonic() - started))
    return c.report()


if __name__ == "__main__":
    sys.exit(main(RealtimeRelayProfile()))
