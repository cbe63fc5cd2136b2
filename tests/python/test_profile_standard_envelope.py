#!/usr/bin/python3
"""End-to-end test of the standard-envelope profile (seeds/000): the
request / response / event / error envelope at /ws/v1/ws, run as
examples/standard-envelope/config.json unchanged (development-mode auth), then
again with WSRELAY_JWT_SECRET set for the JWT checks.

    /usr/bin/python3 tests/python/test_profile_standard_envelope.py <wsrelay> <source-dir>

Prints one line per failed check and ends with "N passed, M failed".
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    Section, Checker, Server, clean_env, close_quietly, connect, expect_silence, recv_json, usage_args)

PATH = "/ws/v1/ws"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
SECRET = "test-secret-for-the-envelope"
SILENCE = 0.3
ACTIONS = ["auth", "heartbeat", "subscribe", "unsubscribe", "subscriptions", "publish"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims, secret=SECRET):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing = ("%s.%s" % (header, body)).encode()
    sig = b64url(hmac.new(secret.encode(), signing, hashlib.sha256).digest())
    return "%s.%s.%s" % (header, body, sig)


# ---- envelope checks --------------------------------------------------------------------


def check_timestamp(c, msg, what):
    c.check(isinstance(msg.get("timestamp"), str) and ISO.match(msg["timestamp"]) is not None,
            "%s: timestamp is ISO 8601 UTC with milliseconds" % what, msg.get("timestamp"))


def check_response(c, msg, rid, action, what):
    c.equal((msg.get("type"), msg.get("id"), msg.get("action"), msg.get("success")),
            ("response", rid, action, True), "%s: response envelope (type, id, action, success)" % what)
    c.check(isinstance(msg.get("payload"), dict), "%s: response payload is an object" % what, msg)
    check_timestamp(c, msg, what)
    return msg.get("payload") or {}


def check_error(c, msg, code, rid, what, field="-", action="-"):
    c.equal(msg.get("type"), "error", "%s: type error" % what)
    c.check("id" in msg, "%s: an error always carries id (null if unknown)" % what, msg)
    c.equal(msg.get("id"), rid, "%s: error id" % what)
    err = msg.get("error") or {}
    c.equal(err.get("code"), code, "%s: error.code" % what)
    c.check(isinstance(err.get("message"), str) and err["message"], "%s: error.message" % what, msg)
    c.check("details" in err, "%s: error.details present (object or null)" % what, msg)
    if field != "-":
        c.equal((err.get("details") or {}).get("field"), field, "%s: error.details.field" % what)
    if action != "-":
        c.equal(msg.get("action"), action, "%s: error.action" % what)
    check_timestamp(c, msg, what)


def check_event(c, msg, topic, payload, sender, what):
    c.equal((msg.get("type"), msg.get("event"), msg.get("payload"), msg.get("sender")),
            ("event", topic, payload, sender), "%s: event envelope (type, event, payload, sender)" % what)
    c.check(isinstance(msg.get("id"), str) and msg["id"].startswith("evt_"), "%s: event id" % what, msg)
    check_timestamp(c, msg, what)


async def request(ws, rid, action, payload=None, **extra):
    msg = {"type": "request", "id": rid, "action": action}
    if payload is not None:
        msg["payload"] = payload
    msg.update(extra)
    await ws.send(json.dumps(msg))
    return await recv_json(ws)


async def send_raw(ws, frame):
    await ws.send(frame)
    return await recv_json(ws)


async def open_client(c, url, what, mode="development"):
    ws = await connect(url)
    hello = await recv_json(ws)
    c.equal((hello.get("type"), hello.get("event")), ("event", "connected"), "%s: first frame: connected event" % what)
    p = hello.get("payload") or {}
    c.check(HEX16.match(str(p.get("session_id"))) is not None, "%s: connected.session_id" % what, p)
    c.equal((p.get("protocol"), p.get("authenticated"), p.get("auth_mode"), p.get("actions")),
            ("standard.v1", False, mode, ACTIONS), "%s: connected payload" % what)
    c.check(isinstance(p.get("heartbeat_interval"), int), "%s: connected.heartbeat_interval" % what, p)
    check_timestamp(c, hello, what + " connected")
    return ws


async def auth(c, ws, user, what):
    resp = await request(ws, "auth-" + user, "auth", {"token": user})
    p = check_response(c, resp, "auth-" + user, "auth", what)
    c.equal((p.get("user_id"), p.get("authenticated"), p.get("auth_mode"), p.get("expires_at")),
            (user, True, "development", None), "%s: auth payload" % what)


# ---- development mode -------------------------------------------------------------------


async def dev_mode(c, url):
    a = await open_client(c, url, "A")
    b = await open_client(c, url, "B")
    d = await open_client(c, url, "C")
    try:
        # Before auth: only auth and heartbeat.
        for action, payload in (("subscribe", {"topics": ["news"]}), ("unsubscribe", {"topic": "news"}),
                                ("publish", {"topic": "news", "data": {}}), ("subscriptions", None)):
            check_error(c, await request(a, "pre-" + action, action, payload), "authentication_required",
                        "pre-" + action, "%s before auth" % action, action=action)
        await a.send(json.dumps({"type": "event", "event": "news", "payload": {"x": 1}}))
        check_error(c, await recv_json(a), "authentication_required", None, "client event before auth")

        resp = await request(a, 7, "heartbeat", timestamp=1234.5)
        p = check_response(c, resp, 7, "heartbeat", "heartbeat before auth (integer id)")
        c.equal((p.get("status"), p.get("client_timestamp"), isinstance(p.get("interval"), int)),
                ("alive", 1234.5, True), "heartbeat payload: status, client_timestamp, interval")
        c.check(ISO.match(str(p.get("server_time"))) is not None, "heartbeat payload: server_time", p)

        check_error(c, await request(a, "t0", "auth", {}), "validation_error", "t0", "auth without token",
                    field="payload.token", action="auth")
        check_error(c, await request(a, "t1", "auth", {"token": ""}), "validation_error", "t1",
                    "auth with an empty token", field="payload.token")
        await auth(c, a, "alice", "A auth")
        await auth(c, b, "bob", "B auth")
        await auth(c, d, "carol", "C auth")

        # Subscriptions.
        p = check_response(c, await request(a, "s1", "subscribe", {"topics": ["news", "weather"]}),
                           "s1", "subscribe", "A subscribe")
        c.equal((p.get("topics"), p.get("subscriptions")), (["news", "weather"], ["news", "weather"]),
                "subscribe payload: topics and sorted subscriptions")
        p = check_response(c, await request(b, "s2", "subscribe", {"topic": "scores"}), "s2", "subscribe",
                           "B subscribe (single topic form)")
        c.equal(p.get("subscriptions"), ["scores"], "single-topic subscribe")
        p = check_response(c, await request(a, "s3", "subscribe", {"topic": "news"}), "s3", "subscribe",
                           "subscribing twice")
        c.equal(p.get("subscriptions"), ["news", "weather"], "subscribing twice is one subscription")
        for rid, payload, field in (
                ("v1", {}, "payload.topics"),
                ("v2", {"topics": []}, "payload.topics"),
                ("v3", {"topics": "news"}, "payload.topics"),
                ("v4", {"topics": ["ok", 5]}, "payload.topics[1]"),
                ("v5", {"topics": ["x" * 129]}, "payload.topics[0]"),
                ("v6", {"topics": ["t%d" % i for i in range(101)]}, "payload.topics"),
                ("v7", {"topic": ""}, "payload.topic")):
            check_error(c, await request(a, rid, "subscribe", payload), "validation_error", rid,
                        "subscribe %s" % json.dumps(payload)[:40], field=field, action="subscribe")

        # Selective broadcast: only subscribers of a topic get its events.
        data = {"headline": "hello", "n": [1, 2, {"deep": None}]}
        resp = await request(b, "p1", "publish", {"topic": "news", "data": data})
        p = check_response(c, resp, "p1", "publish", "B publishes to news")
        c.equal((p.get("topic"), p.get("delivered")), ("news", 1), "publish payload: topic, delivered")
        ev = await recv_json(a)
        check_event(c, ev, "news", data, "bob", "A gets the news event")
        c.equal(ev.get("id"), p.get("event_id"), "the event id is the one in the publish response")
        c.equal(await expect_silence(d, SILENCE), None, "C (no subscription) gets no news event")
        c.equal(await expect_silence(b, SILENCE), None, "B (publisher, not subscribed) gets no news event")

        # A subscriber publishing gets its own event first, then the response.
        await a.send(json.dumps({"type": "request", "id": "p2", "action": "publish",
                                 "payload": {"topic": "weather", "data": {"sky": "clear"}}}))
        ev = await recv_json(a)
        check_event(c, ev, "weather", {"sky": "clear"}, "alice", "subscribed publisher gets its event")
        check_response(c, await recv_json(a), "p2", "publish", "then its response")
        c.equal(await expect_silence(b, SILENCE), None, "B gets no weather event")

        # Client events: fire and forget, same broadcast.
        await a.send(json.dumps({"type": "event", "event": "scores", "payload": {"home": 2, "away": 1}}))
        ev = await recv_json(b)
        check_event(c, ev, "scores", {"home": 2, "away": 1}, "alice", "client event reaches B")
        c.equal(await expect_silence(a, SILENCE), None, "a client event gets no response")
        c.equal(await expect_silence(d, SILENCE), None, "C gets no scores event")
        await a.send(json.dumps({"type": "event", "id": "e1", "event": "scores"}))
        check_error(c, await recv_json(a), "validation_error", "e1", "client event without payload",
                    field="payload")
        await a.send(json.dumps({"type": "event", "id": "e2", "payload": {"x": 1}}))
        check_error(c, await recv_json(a), "validation_error", "e2", "client event without event name",
                    field="event")
        check_error(c, await request(a, "p3", "publish", {"topic": "news", "data": [1]}), "validation_error",
                    "p3", "publish with non-object data", field="payload.data", action="publish")
        check_error(c, await request(a, "p4", "publish", {"data": {}}), "validation_error", "p4",
                    "publish without topic", field="payload.topic")

        # Unsubscribe and the subscription list.
        p = check_response(c, await request(a, "u1", "unsubscribe", {"topics": ["news", "never"]}), "u1",
                           "unsubscribe", "A unsubscribes")
        c.equal((p.get("topics"), p.get("subscriptions")), (["news", "never"], ["weather"]),
                "unsubscribe payload (unknown topics are fine)")
        p = check_response(c, await request(a, "l1", "subscriptions"), "l1", "subscriptions", "subscriptions")
        c.equal(p.get("subscriptions"), ["weather"], "subscriptions lists the topics")
        resp = await request(b, "p5", "publish", {"topic": "news", "data": {"late": True}})
        c.equal((resp.get("payload") or {}).get("delivered"), 0, "after unsubscribing, news reaches nobody")
        c.equal(await expect_silence(a, SILENCE), None, "A no longer gets news")

        # Re-authentication replaces the user.
        await auth(c, d, "dave", "C re-auth")
        await request(d, "s9", "subscribe", {"topic": "weather"})
        await d.send(json.dumps({"type": "event", "event": "weather", "payload": {"t": 1}}))
        check_event(c, await recv_json(a), "weather", {"t": 1}, "dave", "after re-auth the sender is the new user")
        await recv_json(d)  # its own event (subscribed)

        # Envelope validation: every malformed message gets an error; the connection stays.
        cases = [
            ("not json", "invalid_json", None, None),
            ("[1,2]", "validation_error", None, None),
            ('"text"', "validation_error", None, None),
            (json.dumps({"id": "m1", "action": "auth"}), "validation_error", "m1", "type"),
            (json.dumps({"type": 5, "id": "m2"}), "validation_error", "m2", "type"),
            (json.dumps({"type": "response", "id": "m3"}), "unknown_message_type", "m3", "type"),
            (json.dumps({"type": "error", "id": "m4"}), "unknown_message_type", "m4", "type"),
            (json.dumps({"type": "on_open", "id": "m5"}), "unknown_message_type", "m5", "type"),
            (json.dumps({"type": "request", "action": "heartbeat"}), "validation_error", None, "id"),
            (json.dumps({"type": "request", "id": {"x": 1}, "action": "heartbeat"}), "validation_error", None, "id"),
            (json.dumps({"type": "request", "id": "", "action": "heartbeat"}), "validation_error", None, "id"),
            (json.dumps({"type": "request", "id": "m6"}), "validation_error", "m6", "action"),
            (json.dumps({"type": "request", "id": "m7", "action": 3}), "validation_error", "m7", "action"),
            (json.dumps({"type": "request", "id": "m8", "action": "heartbeat", "payload": [1]}),
             "validation_error", "m8", "payload"),
            (json.dumps({"type": "request", "id": "m9", "action": "heartbeat", "payload": "x"}),
             "validation_error", "m9", "payload"),
            (json.dumps({"type": "request", "id": "m10", "action": "heartbeat", "timestamp": True}),
             "validation_error", "m10", "timestamp"),
        ]
        for frame, code, rid, field in cases:
            msg = await send_raw(a, frame)
            check_error(c, msg, code, rid, "malformed %s" % frame[:50], field=field if field else "-")
            if field is None:
                c.equal((msg.get("error") or {}).get("details", "absent"), None,
                        "malformed %s: details null" % frame[:50])
        resp = await request(a, "m11", "fly")
        check_error(c, resp, "unknown_action", "m11", "unknown action", action="fly")
        c.equal((resp.get("error") or {}).get("details", {}).get("actions"), ACTIONS,
                "unknown_action lists the actions")
        check_error(c, await send_raw(a, b"\x01\x02"), "validation_error", None, "binary frame")
        check_response(c, await request(a, "alive", "heartbeat"), "alive", "heartbeat",
                       "the connection survived every error")

        # A subscriber that leaves no longer counts.
        await close_quietly(a)
        await asyncio.sleep(0.2)
        ev = await request(d, "p6", "publish", {"topic": "weather", "data": {}})
        c.equal(ev.get("type"), "event", "C gets its own weather event first")
        resp = await recv_json(d)
        c.equal((resp.get("payload") or {}).get("delivered"), 1,
                "a closed client's subscriptions are gone (only C's own remains)")

        # Too large: error, then close 1009.
        e = await open_client(c, url, "E")
        try:
            await e.send("x" * (1024 * 1024 + 1))
        except websockets.ConnectionClosed:
            pass
        msg = await recv_json(e)
        check_error(c, msg, "message_too_large", None, "a message over 1 MiB")
        try:
            await asyncio.wait_for(e.recv(), 3)
        except websockets.ConnectionClosed:
            pass
        c.equal(e.close_code, 1009, "too large: closed with 1009")
    finally:
        for ws in (a, b, d):
            await close_quietly(ws)


# ---- JWT mode -------------------------------------------------------------------------------


async def jwt_mode(c, url):
    ws = await open_client(c, url, "jwt client", mode="jwt")
    try:
        check_error(c, await request(ws, "j1", "auth", {"token": "alice"}), "authentication_failed", "j1",
                    "jwt: a plain name is not a token", action="auth")
        bad = make_jwt({"sub": "alice"}, secret="wrong")
        resp = await request(ws, "j2", "auth", {"token": bad})
        check_error(c, resp, "authentication_failed", "j2", "jwt: bad signature")
        c.check("bad signature" in (resp.get("error") or {}).get("message", ""), "jwt: the reason is given", resp)
        expired = make_jwt({"sub": "alice", "exp": int(time.time()) - 10})
        resp = await request(ws, "j3", "auth", {"token": expired})
        check_error(c, resp, "authentication_failed", "j3", "jwt: expired token")
        c.check("expired" in (resp.get("error") or {}).get("message", ""), "jwt: expired reason", resp)
        check_error(c, await request(ws, "j4", "auth", {"token": make_jwt({"exp": int(time.time()) + 60})}),
                    "authentication_failed", "j4", "jwt: token without sub")
        check_error(c, await request(ws, "j5", "subscribe", {"topic": "x"}), "authentication_required", "j5",
                    "jwt: failed auth leaves the client unauthenticated")

        exp = int(time.time()) + 2
        resp = await request(ws, "j6", "auth", {"token": make_jwt({"sub": "alice", "exp": exp})})
        p = check_response(c, resp, "j6", "auth", "jwt: a valid token")
        c.equal((p.get("user_id"), p.get("auth_mode"), p.get("expires_at")), ("alice", "jwt", exp),
                "jwt: auth payload (user from sub, expires_at from exp)")
        check_response(c, await request(ws, "j7", "subscribe", {"topic": "x"}), "j7", "subscribe",
                       "jwt: authenticated requests work")
        await asyncio.sleep(max(0.0, exp - time.time()) + 0.2)
        resp = await request(ws, "j8", "subscribe", {"topic": "y"})
        check_error(c, resp, "authentication_required", "j8", "jwt: after exp the session must re-authenticate")
        c.check("expired" in (resp.get("error") or {}).get("message", ""), "jwt: the error says expired", resp)
        resp = await request(ws, "j9", "auth", {"token": make_jwt({"sub": "bob", "exp": int(time.time()) + 60})})
        check_response(c, resp, "j9", "auth", "jwt: re-authentication after expiry")
        check_response(c, await request(ws, "j10", "subscriptions"), "j10", "subscriptions",
                       "jwt: works again after re-authentication")
    finally:
        await close_quietly(ws)


async def run(c, binary, source_dir):
    config = os.path.join(source_dir, "examples", "standard-envelope", "config.json")
    env = clean_env({"WSRELAY_HOST": "127.0.0.1"})
    with Server(binary, ["--config", config], env=env) as srv:
        async with Section(c, "development mode"):
            await dev_mode(c, srv.url(PATH))
        c.check(any("endpoints: /ws/v1/ws" in line for line in srv.stderr_lines),
                "the server listens with endpoint /ws/v1/ws")
    env = clean_env({"WSRELAY_HOST": "127.0.0.1", "WSRELAY_JWT_SECRET": SECRET}, remove=())
    with Server(binary, ["--config", config], env=env) as srv:
        async with Section(c, "jwt mode"):
            await jwt_mode(c, srv.url(PATH))
        c.check(SECRET not in srv.stderr_text(), "the JWT secret is in no log line")


def main():
    binary, source_dir = usage_args()
    c = Checker()
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(run(c, binary, source_dir), 55))
    except Exception as exc:  # noqa: BLE001
        c.error("the standard-envelope suite", exc)
    print("(%.1f s)" % (time.monotonic() - started))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
