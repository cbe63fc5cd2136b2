#!/usr/bin/python3
"""End-to-end test of the wsrelay.v1 protocol (scripts/standard.lua) with an
independent client: Debian's python3-websockets against the real binary.

    /usr/bin/python3 tests/python/test_standard_protocol.py <wsrelay> <source-dir>

Starts the server with the built-in default config (no --config, development
mode auth: WSRELAY_JWT_SECRET removed from the environment), then a second
instance with WSRELAY_JWT_SECRET set for the HS256 checks. Prints one line per
failed check and ends with "N passed, M failed"; exit code 0 only if all pass.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    Section, OP_CLOSE, OP_CONT, OP_TEXT, Checker, Server, ServerError, clean_env, close_quietly, connect,
    expect_silence, http_get, raw_ws_session, recv_json, recv_until, request, run_async_main,
    send_json, usage_args, ws_frame)

HEX16 = re.compile(r"^[0-9a-f]{16}$")
CHANNEL = "room-1"
SILENCE = 0.3  # how long "receives nothing" waits


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def now_ms():
    return int(time.time() * 1000)


# ---- protocol checks -----------------------------------------------------------


def check_welcome(c, msg, who):
    c.equal(msg.get("type"), "welcome", "%s: first frame is a welcome" % who)
    c.check(isinstance(msg.get("session"), str) and HEX16.match(msg["session"]) is not None,
            "%s: welcome.session is a 16-hex string" % who, "got %r" % (msg.get("session"),))
    c.equal(msg.get("protocol"), "wsrelay.v1", "%s: welcome.protocol" % who)
    c.check(is_int(msg.get("heartbeat")), "%s: welcome.heartbeat is an int" % who,
            "got %r" % (msg.get("heartbeat"),))


NO_ID = object()  # check_error: the reply must carry no "id" at all


def check_error(c, msg, code, what, req_id=None):
    """An error reply with the given code. req_id: the id it must echo, or
    NO_ID if it must carry none."""
    ok = c.equal(msg.get("type"), "error", "%s: reply type is error" % what)
    ok = c.equal(msg.get("code"), code, "%s: error code" % what) and ok
    ok = c.check(isinstance(msg.get("message"), str) and msg.get("message") != "",
                 "%s: error has a non-empty message" % what, "got %r" % (msg,)) and ok
    if req_id is NO_ID:
        ok = c.check("id" not in msg, "%s: error carries no id" % what, "got %r" % (msg,)) and ok
    elif req_id is not None:
        ok = c.equal(msg.get("id"), req_id, "%s: error echoes the request id" % what) and ok
    return ok


async def still_works(c, ws, what, hb_id):
    """A heartbeat round trip on ws: the connection is still usable."""
    try:
        reply = await request(ws, {"type": "heartbeat", "id": hb_id})
    except Exception as exc:  # noqa: BLE001
        c.check(False, "%s: connection still works (heartbeat)" % what, repr(exc))
        return False
    return c.check(reply.get("type") == "heartbeat" and reply.get("id") == hb_id,
                   "%s: connection still works (heartbeat)" % what, "got %r" % (reply,))


async def open_client(c, server, who):
    ws = await connect(server.url("/ws"))
    welcome = await recv_json(ws)
    check_welcome(c, welcome, who)
    return ws, welcome


async def auth(c, ws, user, req_id, who):
    reply = await request(ws, {"type": "auth", "id": req_id, "token": user})
    c.equal(reply.get("type"), "auth.ok", "%s: auth -> auth.ok" % who)
    c.equal(reply.get("id"), req_id, "%s: auth.ok echoes id" % who)
    c.equal(reply.get("user"), user, "%s: auth.ok user" % who)
    return reply


async def subscribe(c, ws, channel, req_id, who):
    reply = await request(ws, {"type": "subscribe", "id": req_id, "channel": channel})
    c.equal(reply.get("type"), "subscribe.ok", "%s: subscribe -> subscribe.ok" % who)
    c.equal(reply.get("id"), req_id, "%s: subscribe.ok echoes id" % who)
    c.equal(reply.get("channel"), channel, "%s: subscribe.ok channel" % who)
    return reply


async def read_chat_and_ok(ws, req_id, c=None, timeout=5.0):
    """A subscribed sender gets its chat broadcast, then chat.ok (the
    broadcast is queued first, docs/protocol.md). Returns (chat, ok). With a
    checker c, the order and the id are checked too."""
    first = await recv_json(ws, timeout)
    second = await recv_json(ws, timeout)
    frames = {m.get("type"): m for m in (first, second)}
    if set(frames) != {"chat", "chat.ok"}:
        raise AssertionError("expected a chat and a chat.ok, got %r, %r" % (first, second))
    if c is not None:
        c.check(first.get("type") == "chat", "the sender sees its broadcast before chat.ok",
                "got %r then %r" % (first.get("type"), second.get("type")))
        c.equal(frames["chat.ok"].get("id"), req_id, "chat.ok echoes id %r" % (req_id,))
    return frames["chat"], frames["chat.ok"]


async def oversize(c, server, payload, who):
    """Opens a client, sends payload (one str, sent as one frame), and
    checks: one too_large error (no id), then close 1009 "message too large".
    Returns the (closed) client."""
    d, _ = await open_client(c, server, who)
    # The server stops reading once it sees the size: sending may block, so
    # it runs beside the reader.
    sender = asyncio.ensure_future(d.send(payload))
    frames = []
    closed = None
    try:
        while True:
            frames.append(await recv_json(d, 10))
    except websockets.ConnectionClosed as exc:
        closed = exc.rcvd
    except asyncio.TimeoutError:
        c.check(False, "%s: the connection closes after an oversized message" % who, "still open after 10 s")
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
    c.equal(len(frames), 1, "%s: exactly one frame (the error) before the close" % who)
    if frames:
        check_error(c, frames[0], "too_large", who, NO_ID)
    c.equal(closed.code if closed else None, 1009, "%s: close code" % who)
    c.equal(closed.reason if closed else None, "message too large", "%s: close reason" % who)
    return d


async def test_protocol(c, server):
    a = b = cc = d = e = None
    try:
        # -- welcome, auth, subscribe ------------------------------------------------
        async with Section(c, "welcome/auth/subscribe"):
            a, wa = await open_client(c, server, "A")
            b, wb = await open_client(c, server, "B")
            c.check(wa.get("session") != wb.get("session"), "A and B get different session ids",
                    "%r vs %r" % (wa.get("session"), wb.get("session")))
            await auth(c, a, "alice", "a-auth", "A")
            await auth(c, b, "bob", 7, "B")
            await subscribe(c, a, CHANNEL, "a-sub", "A")
            await subscribe(c, b, CHANNEL, "b-sub", "B")

        # -- chat ------------------------------------------------------------------------
        data = {
            "text": "h\u00e9llo \u4e16\u754c \U0001F600 \"quoted\" \\ back\nslash",
            "list": [1, 2.5, -3, None, True, False, "x", [], {}],
            "nested": {"deep": {"deeper": [{"k": None}, 1e-3, 12345678.25]}},
            "nothing": None,
            "pi": 3.14159,
            "neg": -0.5,
            "empty": "",
        }
        seq1 = None
        async with Section(c, "chat"):
            before = now_ms()
            await send_json(a, {"type": "chat", "id": "c1", "channel": CHANNEL, "data": data})
            got_b = await recv_json(b)
            after = now_ms()
            c.equal(got_b.get("type"), "chat", "B receives a chat")
            c.equal(got_b.get("channel"), CHANNEL, "chat.channel")
            c.equal(got_b.get("from"), "alice", "chat.from is the sender's user")
            c.equal(got_b.get("data"), data, "chat.data round-trips the nested JSON value")
            c.check(is_int(got_b.get("seq")), "chat.seq is an int", "got %r" % (got_b.get("seq"),))
            ts = got_b.get("ts")
            c.check(is_int(ts) and before - 60000 <= ts <= after + 60000,
                    "chat.ts is ms within +-60 s of now", "ts=%r now=%d" % (ts, after))
            chat_a, ok_a = await read_chat_and_ok(a, "c1", c)
            c.equal(chat_a, got_b, "A (subscribed) receives the same chat as B")
            c.equal(ok_a.get("id"), "c1", "chat.ok echoes id")
            c.equal(ok_a.get("seq"), got_b.get("seq"), "chat.ok.seq equals the broadcast seq")
            seq1 = got_b.get("seq")

            await send_json(a, {"type": "chat", "id": "c2", "channel": CHANNEL, "data": "second"})
            got_b2 = await recv_json(b)
            c.equal(got_b2.get("data"), "second", "second chat data")
            if is_int(seq1):
                c.equal(got_b2.get("seq"), seq1 + 1, "second chat seq increments by 1")
            chat_a2, ok_a2 = await read_chat_and_ok(a, "c2")
            c.equal(ok_a2.get("seq"), got_b2.get("seq"), "second chat.ok.seq")
            # B sends on the same channel: same counter, from "bob".
            await send_json(b, {"type": "chat", "id": "c3", "channel": CHANNEL, "data": [1]})
            got_a3 = await recv_json(a)
            c.equal(got_a3.get("from"), "bob", "chat from B reaches A with from=bob")
            if is_int(seq1):
                c.equal(got_a3.get("seq"), seq1 + 2, "the channel's seq is shared by all senders")
            await read_chat_and_ok(b, "c3")

        # -- more data shapes round-trip unchanged --------------------------------------
        async with Section(c, "data shapes"):
            shapes = [{}, [], [None], {"1": "a", "2": "b"}, 0, False, "", 1e300, -2.5e-7,
                      9007199254740991, {"type": "not-a-chat", "id": "inner"},
                      {"a": {"b": {"c": [[[[]]]]}}}, "\u001f control \u0001 chars \u007f"]
            for i, shape in enumerate(shapes):
                rid = "shape-%d" % i
                await send_json(a, {"type": "chat", "id": rid, "channel": CHANNEL, "data": shape})
                got = await recv_json(b)
                c.check(got.get("type") == "chat" and got.get("data") == shape
                        and type(got.get("data")) is type(shape),
                        "chat data %r round-trips" % (shape,), "got %r" % (got.get("data"),))
                await read_chat_and_ok(a, rid)

            # JSON allows \u0000 in a string, but the relay would have to cut
            # the string there: it refuses the message instead (bad_json), and
            # nothing reaches the channel.
            await a.send('{"type":"chat","id":"nul","channel":"%s","data":"before\\u0000after"}' % CHANNEL)
            check_error(c, await recv_json(a), "bad_json", "a string with \\u0000", NO_ID)
            extra = await expect_silence(b, SILENCE)
            c.check(extra is None, "a refused \\u0000 chat reaches no subscriber", "got %r" % (extra,))

        # -- typing --------------------------------------------------------------------
        async with Section(c, "typing"):
            await send_json(a, {"type": "typing", "id": "t1", "channel": CHANNEL, "typing": True})
            got = await recv_json(b)
            c.equal(got.get("type"), "typing", "B receives typing")
            c.equal(got.get("from"), "alice", "typing.from")
            c.equal(got.get("typing"), True, "typing.typing")
            c.equal(got.get("channel"), CHANNEL, "typing.channel")
            extra = await expect_silence(a, SILENCE)
            c.check(extra is None, "the typing sender (A) receives nothing back", "got %r" % (extra,))

        # -- heartbeat ---------------------------------------------------------------------
        async with Section(c, "heartbeat"):
            before = now_ms()
            hb = await request(a, {"type": "heartbeat", "id": "hb1"})
            c.equal(hb.get("type"), "heartbeat", "heartbeat -> heartbeat")
            c.equal(hb.get("id"), "hb1", "heartbeat echoes id")
            c.check(is_int(hb.get("ts")) and abs(hb["ts"] - before) <= 60000,
                    "heartbeat.ts is ms near now", "got %r" % (hb.get("ts"),))

        # -- errors (on A; each must leave A usable and B unaffected) --------------------------
        # Every error echoes the request's id when the request was a JSON object
        # with one -- including a missing/non-string type and unknown_type, which
        # are found before any handler runs. (NB: the first draft of
        # docs/protocol.md "The id rule" said those carry no id; the server now
        # passes the decoded message to on_error, so they do.) Errors about
        # frames that are not a JSON object (bad_json, binary, arrays) cannot
        # carry one.
        async with Section(c, "errors"):
            await a.send("not json")
            check_error(c, await recv_json(a), "bad_json", "text 'not json'", NO_ID)
            await still_works(c, a, "after bad_json", "hb-e1")

            await a.send('{"type":"heartbeat","id":"trail"} x')
            check_error(c, await recv_json(a), "bad_json", "JSON with trailing garbage", NO_ID)

            await a.send("[1, 2, 3]")
            check_error(c, await recv_json(a), "bad_request", "a JSON array", NO_ID)
            await still_works(c, a, "after array", "hb-e2")

            await a.send('"just a string"')
            check_error(c, await recv_json(a), "bad_request", "a JSON string", NO_ID)

            r = await request(a, {"id": "no-type", "channel": CHANNEL})
            check_error(c, r, "bad_request", "an object with no type", "no-type")
            await still_works(c, a, "after missing type", "hb-e3")

            r = await request(a, {"type": 42, "id": "num-type"})
            check_error(c, r, "bad_request", "type not a string", "num-type")
            await still_works(c, a, "after non-string type", "hb-e4")

            r = await request(a, {"type": "chat", "id": "no-chan", "data": "x"})
            check_error(c, r, "bad_request", "chat without channel", "no-chan")
            await still_works(c, a, "after chat without channel", "hb-e5")

            r = await request(a, {"type": "chat", "id": 9, "channel": CHANNEL})
            check_error(c, r, "bad_request", "chat without data", 9)
            r = await request(a, {"type": "chat", "id": "empty-chan", "channel": "", "data": 1})
            check_error(c, r, "bad_request", "chat with an empty channel", "empty-chan")
            r = await request(a, {"type": "subscribe", "id": "long", "channel": "c" * 129})
            check_error(c, r, "bad_request", "subscribe to a 129-byte channel", "long")
            r = await request(a, {"type": "subscribe", "id": [1, {"x": None}], "channel": 5})
            check_error(c, r, "bad_request", "subscribe with a non-string channel (and a structured id)",
                        [1, {"x": None}])
            r = await request(a, {"type": "typing", "id": "tb", "channel": CHANNEL, "typing": "yes"})
            check_error(c, r, "bad_request", "typing with a non-boolean typing", "tb")
            r = await request(a, {"type": "auth", "id": "notok", "token": ""})
            check_error(c, r, "bad_request", "auth with an empty token", "notok")
            r = await request(a, {"type": "auth", "id": "notok2"})
            check_error(c, r, "bad_request", "auth without a token", "notok2")
            # The failed auths left A's user in place.
            await send_json(a, {"type": "chat", "id": "still-alice", "channel": CHANNEL, "data": "me"})
            got = await recv_json(b)
            c.equal(got.get("from"), "alice", "a failed auth leaves the previous user in place")
            await read_chat_and_ok(a, "still-alice")

            r = await request(a, {"type": "frobnicate", "id": "unk"})
            check_error(c, r, "unknown_type", "unknown type", "unk")
            await still_works(c, a, "after unknown_type", "hb-e6")

            r = await request(a, {"type": "on_open", "id": "hook"})
            check_error(c, r, "unknown_type", "a lifecycle hook name as type", "hook")

            await a.send(b"\x00\x01binary")
            check_error(c, await recv_json(a), "bad_request", "a binary frame", NO_ID)
            await still_works(c, a, "after a binary frame", "hb-bin")

            deep = "[" * 5000 + "]" * 5000
            await a.send(deep)
            r = await recv_json(a)
            check_error(c, r, "bad_json", "JSON nested 5000 deep", NO_ID)
            await still_works(c, a, "after 5000-deep JSON", "hb-e7")
            deep_obj = '{"type":"chat","id":"deep","channel":"%s","data":%s}' % (
                CHANNEL, '{"a":' * 5000 + "1" + "}" * 5000)
            await a.send(deep_obj)
            r = await recv_json(a)
            c.equal(r.get("type"), "error", "a chat whose data is 5000 deep is an error")
            await still_works(c, a, "after 5000-deep chat data", "hb-e8")
            # B did not get any of this.
            extra = await expect_silence(b, SILENCE)
            c.check(extra is None, "B is unaffected by A's errors", "got %r" % (extra,))

        # -- unauthorized -----------------------------------------------------------------
        async with Section(c, "unauthorized"):
            cc, _ = await open_client(c, server, "C")
            r = await request(cc, {"type": "subscribe", "id": "u1", "channel": CHANNEL})
            check_error(c, r, "unauthorized", "subscribe before auth", "u1")
            r = await request(cc, {"type": "chat", "id": "u2", "channel": CHANNEL, "data": "x"})
            check_error(c, r, "unauthorized", "chat before auth", "u2")
            r = await request(cc, {"type": "typing", "id": "u3", "channel": CHANNEL, "typing": True})
            check_error(c, r, "unauthorized", "typing before auth", "u3")
            r = await request(cc, {"type": "unsubscribe", "id": "u4", "channel": CHANNEL})
            check_error(c, r, "unauthorized", "unsubscribe before auth", "u4")
            await still_works(c, cc, "C after unauthorized errors", "hb-c")
            # Nothing C tried may have reached the channel.
            for who, ws in (("A", a), ("B", b)):
                extra = await expect_silence(ws, SILENCE)
                c.check(extra is None, "%s got nothing from unauthorized C" % who, "got %r" % (extra,))
            # C may still authenticate afterwards and then talk.
            await auth(c, cc, "carol", "c-auth", "C")
            await send_json(cc, {"type": "chat", "id": "cc1", "channel": CHANNEL, "data": "hi from C"})
            r = await recv_json(cc)
            c.equal(r.get("type"), "chat.ok", "C (not subscribed) gets chat.ok after auth")
            got = await recv_json(b)
            c.check(got.get("type") == "chat" and got.get("from") == "carol",
                    "B receives C's chat after C authenticated", "got %r" % (got,))
            await recv_until(a, lambda m: m.get("type") == "chat" and m.get("from") == "carol")

        # -- too_large: 2 MiB frame -> error too_large, then close 1009 --------------------
        async with Section(c, "too_large"):
            big = json.dumps({"type": "chat", "id": "big", "channel": CHANNEL, "data": "x" * (2 << 20)})
            d = await oversize(c, server, big, "D (one 2 MiB frame)")
            await close_quietly(d)
            # The limit applies after reassembly: two 700 KiB fragments. Sent
            # with the raw client (see wsrelay_harness.raw_ws_session).
            part = "y" * (700 << 10)
            outgoing = (ws_frame(OP_TEXT, '{"type":"chat","id":"frag-big","channel":"%s","data":"' % CHANNEL,
                                 fin=False)
                        + ws_frame(OP_CONT, part, fin=False) + ws_frame(OP_CONT, part, fin=False)
                        + ws_frame(OP_CONT, '"}'))
            frames, end = await asyncio.to_thread(
                raw_ws_session, server.connect_host(), server.port, "/ws", outgoing, 10.0)
            who = "D2 (1.4 MiB in fragments)"
            kinds = [(op, json.loads(p).get("type") if op == OP_TEXT else None) for _, op, p in frames]
            c.check(len(frames) == 3 and kinds[0] == (OP_TEXT, "welcome"),
                    "%s: welcome, error, close -- nothing else" % who, "frames=%r end=%r" % (kinds, end))
            if len(frames) >= 2 and frames[1][1] == OP_TEXT:
                check_error(c, json.loads(frames[1][2]), "too_large", who, NO_ID)
            close = next((p for _, op, p in frames if op == OP_CLOSE), None)
            c.check(close is not None and len(close) >= 2 and struct.unpack("!H", close[:2])[0] == 1009,
                    "%s: close frame with 1009" % who, "close payload %r, end %r" % (close, end))
            if close is not None:
                c.equal(close[2:].decode("utf-8", "replace"), "message too large", "%s: close reason" % who)
            await still_works(c, a, "A after D's too_large", "hb-big-a")
            extra = await expect_silence(b, SILENCE)
            c.check(extra is None, "B is unaffected by D's too_large", "got %r" % (extra,))

        # -- fragmentation, query string, subprotocol ------------------------------------------
        async with Section(c, "transport"):
            await a.send(['{"type":"heart', 'beat","id":', '"frag"}'])
            r = await recv_json(a)
            c.check(r.get("type") == "heartbeat" and r.get("id") == "frag",
                    "a fragmented message is reassembled", "got %r" % (r,))
            e = await connect(server.url("/ws?x=1&y=2"))
            try:
                w = await recv_json(e)
                c.equal(w.get("type"), "welcome", "/ws?x=1 reaches /ws (query string ignored)")
            finally:
                await close_quietly(e)
            e = await connect(server.url("/ws"), subprotocols=["wsrelay"])
            try:
                w = await recv_json(e)
                c.equal(w.get("type"), "welcome", "subprotocol 'wsrelay' is accepted")
                c.equal(e.subprotocol, "wsrelay", "subprotocol 'wsrelay' is negotiated")
            finally:
                await close_quietly(e)
            refused = False
            try:
                e = await connect(server.url("/ws"), subprotocols=["not-wsrelay"])
                await recv_json(e, 2)
            except (websockets.InvalidHandshake, websockets.ConnectionClosed, OSError,
                    asyncio.TimeoutError):
                refused = True
            finally:
                await close_quietly(e)
            c.check(refused, "any other subprotocol is refused")

        # -- seq, idempotent (un)subscribe ---------------------------------------------------
        async with Section(c, "seq"):
            ch = "seq-%d" % os.getpid()
            await subscribe(c, a, ch, "s1", "A")
            await subscribe(c, a, ch, "s1-again", "A (twice)")
            await send_json(a, {"type": "chat", "id": "q1", "channel": ch, "data": None})
            chat, ok = await read_chat_and_ok(a, "q1", c)
            c.equal(chat.get("seq"), 1, "the first chat on a fresh channel has seq 1")
            c.check("data" in chat and chat["data"] is None, "data null is accepted and relayed",
                    "got %r" % (chat,))
            extra = await expect_silence(a, SILENCE)
            c.check(extra is None, "subscribing twice delivers each chat once", "got %r" % (extra,))
            await send_json(a, {"type": "chat", "id": "q2", "channel": ch, "data": 2})
            chat, _ = await read_chat_and_ok(a, "q2")
            c.equal(chat.get("seq"), 2, "the second chat has seq 2")
            r = await request(a, {"type": "unsubscribe", "id": "us1", "channel": ch})
            c.equal(r.get("type"), "unsubscribe.ok", "unsubscribe (last subscriber leaves)")
            r = await request(a, {"type": "unsubscribe", "id": "us2", "channel": ch})
            c.equal(r.get("type"), "unsubscribe.ok", "unsubscribing from a channel not in -> unsubscribe.ok")
            c.equal(r.get("id"), "us2", "unsubscribe.ok (not subscribed) echoes id")
            await subscribe(c, a, ch, "s2", "A (again)")
            await send_json(a, {"type": "chat", "id": "q3", "channel": ch, "data": 3})
            chat, _ = await read_chat_and_ok(a, "q3")
            c.equal(chat.get("seq"), 1, "after the last subscriber left, seq starts again at 1")
            r = await request(a, {"type": "unsubscribe", "id": "us3", "channel": ch})
            c.equal(r.get("type"), "unsubscribe.ok", "unsubscribe from the seq channel")
            # A chat with no subscribers at all still gets chat.ok and a seq.
            r = await request(a, {"type": "chat", "id": "q4", "channel": ch + "-empty", "data": 4})
            c.check(r.get("type") == "chat.ok" and r.get("id") == "q4" and is_int(r.get("seq")),
                    "chat to a channel without subscribers -> chat.ok", "got %r" % (r,))

        # -- unsubscribe ----------------------------------------------------------------------
        async with Section(c, "unsubscribe"):
            r = await request(b, {"type": "unsubscribe", "id": "unsub", "channel": CHANNEL})
            c.equal(r.get("type"), "unsubscribe.ok", "unsubscribe -> unsubscribe.ok")
            c.equal(r.get("id"), "unsub", "unsubscribe.ok echoes id")
            c.equal(r.get("channel"), CHANNEL, "unsubscribe.ok channel")
            await send_json(a, {"type": "chat", "id": "after-unsub", "channel": CHANNEL, "data": 1})
            await read_chat_and_ok(a, "after-unsub")
            extra = await expect_silence(b, SILENCE)
            c.check(extra is None, "B gets no chat after unsubscribing", "got %r" % (extra,))

        # -- personal channels: user:<name> is <name>'s alone to read -----------------------
        async with Section(c, "personal channels"):
            r = await request(b, {"type": "subscribe", "id": "pc-1", "channel": "user:alice"})
            check_error(c, r, "forbidden", "bob subscribing to user:alice", "pc-1")
            r = await request(a, {"type": "subscribe", "id": "pc-2", "channel": "user:alice"})
            c.equal(r.get("type"), "subscribe.ok", "alice subscribes to her own user:alice")
            await send_json(b, {"type": "chat", "id": "pc-3", "channel": "user:alice", "data": "dm"})
            r = await recv_json(b)
            c.equal((r.get("type"), r.get("id")), ("chat.ok", "pc-3"), "bob may still publish to alice's inbox")
            got = await recv_json(a)
            c.equal((got.get("type"), got.get("from"), got.get("data")), ("chat", "bob", "dm"),
                    "alice receives bob's message in her inbox")
            r = await request(a, {"type": "unsubscribe", "id": "pc-4", "channel": "user:alice"})
            c.equal(r.get("type"), "unsubscribe.ok", "alice leaves her inbox again")
            await still_works(c, b, "B after forbidden", "hb-pc")

        # -- HTTP ---------------------------------------------------------------------------
        async with Section(c, "http"):
            host = server.connect_host()

            async def get(path, method="GET"):
                """(status, headers, body); on an exception a failed check and
                (None, {}, "")."""
                try:
                    return await asyncio.to_thread(http_get, host, server.port, path, 5.0, method)
                except Exception as exc:  # noqa: BLE001
                    c.check(False, "%s %s answers completely" % (method, path), repr(exc))
                    return None, {}, ""

            status, headers, body = await get("/healthz")
            c.equal(status, 200, "GET /healthz status")
            c.equal(body, "ok", "GET /healthz body")
            c.check(headers.get("content-type", "").startswith("text/plain"),
                    "GET /healthz is text/plain", repr(headers.get("content-type")))
            c.equal(headers.get("cache-control"), "no-store", "GET /healthz Cache-Control")
            status, headers, body = await get("/healthz", "HEAD")
            c.equal((status, body), (200, ""), "HEAD /healthz: 200 without a body")
            # http.client sends "Content-Length: 0" with a body-less POST, like
            # most clients do.
            for method, path in (("POST", "/healthz"), ("PUT", "/status"), ("DELETE", "/status")):
                status, _, body = await get(path, method)
                if status is None:
                    continue
                c.equal(status, 405, "%s %s -> 405" % (method, path))
                c.check("method not allowed" in body, "%s %s: 405 body says method not allowed"
                        % (method, path), repr(body))
            status, _, body = await get("/nope")
            c.equal(status, 404, "GET /nope -> 404")
            c.check("not found" in body, "404 body says not found", repr(body))

            status, headers, body = await get("/status")
            c.equal(status, 200, "GET /status status")
            c.check(headers.get("content-type", "").startswith("application/json"),
                    "GET /status is application/json", repr(headers.get("content-type")))
            c.equal(headers.get("cache-control"), "no-store", "GET /status Cache-Control")
            try:
                st = json.loads(body)
            except ValueError as exc:
                c.check(False, "GET /status body is JSON", "%s: %r" % (exc, body[:200]))
                st = {}
            c.check(isinstance(st, dict), "GET /status body is a JSON object", body[:200])
            if not isinstance(st, dict):
                st = {}
            for field in ("connections", "channels", "messages_in", "messages_out", "uptime_s",
                          "connections_total", "subscriptions", "bytes_in", "bytes_out",
                          "deliveries", "errors_sent", "script_errors", "slow_consumer_closes"):
                c.check(is_int(st.get(field)), "/status.%s is an integer" % field,
                        "got %r" % (st.get(field),))
            c.check(isinstance(st.get("version"), str) and st.get("version"),
                    "/status.version is a string", repr(st.get("version")))

            def at_least(field, n, why):
                if is_int(st.get(field)):
                    c.check(st[field] >= n, "/status.%s >= %d (%s)" % (field, n, why),
                            "got %r" % st[field])

            # Open now: A, B, C. D and D2 were closed by too_large.
            if is_int(st.get("connections")):
                c.equal(st["connections"], 3, "/status.connections counts the open A, B, C")
            at_least("connections_total", 7, "A, B, C, D, D2, two transport clients")
            # B has unsubscribed by now; A is still in CHANNEL.
            if is_int(st.get("channels")):
                c.equal(st["channels"], 1, "/status.channels: only %s has subscribers" % CHANNEL)
            if is_int(st.get("subscriptions")):
                c.equal(st["subscriptions"], 1, "/status.subscriptions: A in %s" % CHANNEL)
            at_least("messages_in", 50, "our requests")
            at_least("messages_out", 50, "replies and broadcasts")
            at_least("deliveries", 10, "chat broadcasts")
            at_least("errors_sent", 20, "the error checks above")
            eps = st.get("endpoints")
            c.check(isinstance(eps, list) and len(eps) == 1 and isinstance(eps[0], dict)
                    and eps[0].get("path") == "/ws" and eps[0].get("connections") == 3,
                    "/status.endpoints lists /ws with its 3 connections", repr(eps))

        # -- a WebSocket upgrade on an unknown path is refused --------------------------
        async with Section(c, "unknown path"):
            host = server.connect_host()
            refused = False
            try:
                ws = await connect(server.url("/not-an-endpoint"))
                await close_quietly(ws)
            except (websockets.InvalidHandshake, OSError):
                # websockets 10.4 cannot read the 404 itself: libwebsockets
                # answers a refused upgrade with an "HTTP/1.0" status line.
                refused = True
            c.check(refused, "upgrade to an unknown path is refused", "it was accepted")
            status, _, _ = await asyncio.to_thread(
                http_get, host, server.port, "/not-an-endpoint", 5.0, "GET",
                {"Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
            c.equal(status, 404, "upgrade request to an unknown path -> HTTP 404")

        # -- the server is still healthy --------------------------------------------------
        async with Section(c, "final"):
            await still_works(c, a, "A at the end", "hb-end-a")
            await still_works(c, b, "B at the end", "hb-end-b")
            c.check(server.alive(), "the server is still running at the end")
    finally:
        for ws in (a, b, cc, d, e):
            await close_quietly(ws)


# ---- JWT (HS256) -------------------------------------------------------------------


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_jwt(claims, secret, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = ("%s.%s" % (h, p)).encode("ascii")
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64url(sig))


async def test_jwt(c, server, secret):
    now = int(time.time())
    ws = None
    try:
        async with Section(c, "jwt"):
            ws, _ = await open_client(c, server, "JWT client")
            good = make_jwt({"sub": "jwt-user", "exp": now + 3600, "nbf": now - 10}, secret)
            h, _, sig = good.split(".")
            tampered = "%s.%s.%s" % (h, b64url(json.dumps({"sub": "admin", "exp": now + 3600}).encode()), sig)
            alg_none = make_jwt({"sub": "none"}, secret, {"alg": "none", "typ": "JWT"}).rsplit(".", 1)[0] + "."
            # (what, token, the reason docs/protocol.md gives in "invalid token: <reason>")
            cases = [
                ("wrong signature", make_jwt({"sub": "mallory", "exp": now + 3600}, secret + "x"), "bad signature"),
                ("expired exp", make_jwt({"sub": "old", "exp": now - 3600}, secret), "token expired"),
                ("nbf in the future", make_jwt({"sub": "early", "nbf": now + 3600, "exp": now + 7200}, secret),
                 "token not yet valid"),
                ("alg none", alg_none, "unsupported alg"),
                ("HS512 header", make_jwt({"sub": "x"}, secret, {"alg": "HS512", "typ": "JWT"}), "unsupported alg"),
                ("a user name as token (dev-mode style)", "alice", "malformed token"),
                ("tampered payload", tampered, "bad signature"),
                ("no sub", make_jwt({"exp": now + 3600}, secret), "no subject"),
                ("empty sub", make_jwt({"sub": "", "exp": now + 3600}, secret), "no subject"),
                ("sub not a string", make_jwt({"sub": 42}, secret), "malformed token"),
                ("a token over 8192 bytes", make_jwt({"sub": "big", "pad": "p" * 9000}, secret), "token too long"),
            ]
            for i, (what, token, reason) in enumerate(cases):
                rid = "jwt-bad-%d" % i
                r = await request(ws, {"type": "auth", "id": rid, "token": token})
                check_error(c, r, "unauthorized", "JWT auth with %s" % what, rid)
                c.check(reason in str(r.get("message")), "JWT auth with %s: message gives '%s'" % (what, reason),
                        "message %r" % (r.get("message"),))
            # Still not authenticated after the failures.
            r = await request(ws, {"type": "subscribe", "id": "jwt-sub0", "channel": "j"})
            check_error(c, r, "unauthorized", "subscribe after failed JWT auths", "jwt-sub0")

            r = await request(ws, {"type": "auth", "id": "jwt-ok", "token": good})
            c.equal(r.get("type"), "auth.ok", "valid HS256 token -> auth.ok")
            c.equal(r.get("id"), "jwt-ok", "JWT auth.ok echoes id")
            c.equal(r.get("user"), "jwt-user", "JWT auth.ok user is the token's sub")
            r = await request(ws, {"type": "subscribe", "id": "jwt-sub", "channel": "j"})
            c.equal(r.get("type"), "subscribe.ok", "subscribe after JWT auth")
            await send_json(ws, {"type": "chat", "id": "jwt-chat", "channel": "j", "data": "hi"})
            chat, _ = await read_chat_and_ok(ws, "jwt-chat")
            c.equal(chat.get("from"), "jwt-user", "chat.from is the JWT sub")

            # A failed auth leaves the user; a new valid one replaces it.
            r = await request(ws, {"type": "auth", "id": "jwt-bad-again", "token": cases[0][1]})
            check_error(c, r, "unauthorized", "a bad token after a good one", "jwt-bad-again")
            await send_json(ws, {"type": "chat", "id": "jwt-chat2", "channel": "j", "data": 2})
            chat, _ = await read_chat_and_ok(ws, "jwt-chat2")
            c.equal(chat.get("from"), "jwt-user", "a failed auth keeps the previous JWT user")
            other = make_jwt({"sub": "second-user", "exp": now + 60}, secret)
            r = await request(ws, {"type": "auth", "id": "jwt-re", "token": other})
            c.equal(r.get("user"), "second-user", "re-auth with another valid token -> auth.ok with its sub")
            await send_json(ws, {"type": "chat", "id": "jwt-chat3", "channel": "j", "data": 3})
            chat, _ = await read_chat_and_ok(ws, "jwt-chat3")
            c.equal(chat.get("from"), "second-user", "re-auth replaces the user")

            # Channel permissions (docs/protocol.md#channel-permissions).
            limited = make_jwt({"sub": "bob", "exp": now + 60, "channels": ["news.*", "lobby"]}, secret)
            r = await request(ws, {"type": "auth", "id": "jwt-ch", "token": limited})
            c.equal(r.get("user"), "bob", "a token with a channels claim authenticates")
            for rid, channel in (("ch-ok1", "news.sport"), ("ch-ok2", "lobby"), ("ch-ok3", "user:bob")):
                r = await request(ws, {"type": "subscribe", "id": rid, "channel": channel})
                c.equal((r.get("type"), r.get("id")), ("subscribe.ok", rid), "channels claim grants %s" % channel)
            for rid, channel, reason in (("ch-no1", "admin", "does not grant channel 'admin'"),
                                         ("ch-no2", "news", "does not grant channel 'news'"),
                                         ("ch-no3", "lobby2", "does not grant"),
                                         ("ch-no4", "user:alice", "belongs to another user")):
                r = await request(ws, {"type": "subscribe", "id": rid, "channel": channel})
                check_error(c, r, "forbidden", "subscribe to %s outside the grant" % channel, rid)
                c.check(reason in str(r.get("message")), "forbidden for %s says '%s'" % (channel, reason), r)
            bad_claim = make_jwt({"sub": "eve", "exp": now + 60, "channels": "news.*"}, secret)
            r = await request(ws, {"type": "auth", "id": "jwt-badch", "token": bad_claim})
            check_error(c, r, "unauthorized", "a channels claim that is not an array", "jwt-badch")
            c.check("'channels' must be an array of strings" in str(r.get("message")), "and says why", r)
            # A token without the claim lifts the restriction again.
            r = await request(ws, {"type": "auth", "id": "jwt-open", "token": other})
            r = await request(ws, {"type": "subscribe", "id": "ch-open", "channel": "admin"})
            c.equal(r.get("type"), "subscribe.ok", "re-auth without a channels claim opens the channel again")
    finally:
        await close_quietly(ws)


async def check_shutdown_drops_clients(c, server):
    """On SIGTERM a connected client's connection ends promptly: either a
    close frame 1001 (going away; the graceful drain being added to
    core/server/server.cpp) or, as the first draft of docs/protocol.md says,
    no close frame (1006). Stops the server."""
    ws = None
    try:
        ws, _ = await open_client(c, server, "F (shutdown)")
    except Exception as exc:  # noqa: BLE001
        c.check(False, "a client connects before the shutdown", repr(exc))
    rc = await asyncio.to_thread(server.stop)
    if ws is not None:
        try:
            frame = await recv_json(ws, 5)
            c.check(False, "a client sees the connection end at shutdown", "got %r" % (frame,))
        except websockets.ConnectionClosed as exc:
            c.check(exc.code in (1001, 1006), "a client connected at shutdown sees 1001 or 1006",
                    "got %r %r" % (exc.code, exc.reason))
            print("note: close at shutdown: code %r reason %r" % (exc.code, exc.reason))
        except asyncio.TimeoutError:
            c.check(False, "a client sees the connection end at shutdown", "still open 5 s after SIGTERM")
        await close_quietly(ws)
    return rc


async def main(c):
    binary, _source = usage_args()

    # Instance 1: built-in default config, development-mode auth.
    server = Server(binary, env=clean_env())
    try:
        server.start()
    except ServerError as exc:
        c.check(False, "start wsrelay (default config)", str(exc))
        return
    try:
        c.check(any("/ws" in l and "listening on" in l for l in server.stderr_lines),
                "the listening line names endpoint /ws", server.stderr_text()[-500:])
        c.check(any("development mode" in l for l in server.stderr_lines),
                "without WSRELAY_JWT_SECRET the server warns about development mode")
        await test_protocol(c, server)
        rc = await check_shutdown_drops_clients(c, server)
        c.check(rc == 0, "wsrelay (default config) exits 0 on SIGTERM", "exit code %r" % (rc,))
    finally:
        await asyncio.to_thread(server.stop)
        if c.failed:
            print("---- server stderr (default config), last lines ----\n%s\n----"
                  % "\n".join(server.stderr_lines[-40:]))

    # Instance 2: HS256 tokens.
    secret = "test-secret-\u00e9-0123456789"
    jwt_server = Server(binary, env=clean_env({"WSRELAY_JWT_SECRET": secret}))
    try:
        jwt_server.start()
    except ServerError as exc:
        c.check(False, "start wsrelay with WSRELAY_JWT_SECRET", str(exc))
        return
    try:
        c.check(not any("development mode" in l for l in jwt_server.stderr_lines),
                "no development-mode warning when WSRELAY_JWT_SECRET is set")
        await test_jwt(c, jwt_server, secret)
    finally:
        rc = await asyncio.to_thread(jwt_server.stop)
        c.check(rc == 0, "wsrelay (JWT) exits 0 on SIGTERM", "exit code %r" % (rc,))


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
