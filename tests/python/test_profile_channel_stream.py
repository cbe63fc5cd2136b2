#!/usr/bin/python3
"""End-to-end test of the channel-stream profile (seeds/003, "Server-Side
Expectations"): {channel, payload} messages, subscribe/unsubscribe via the
"subscription" channel, byte-for-byte broadcast to the other subscribers,
ping/pong and the document's error payload; run as
examples/channel-stream/config.json unchanged.

    /usr/bin/python3 tests/python/test_profile_channel_stream.py <wsrelay> <source-dir>

Prints one line per failed check and ends with "N passed, M failed".
"""

import asyncio
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    Checker, Server, clean_env, close_quietly, connect, expect_silence, recv_json, usage_args)

SILENCE = 0.3
CHANNEL = "user_session_abc123"


class Section:
    def __init__(self, checker, name):
        self.checker = checker
        self.name = name

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            self.checker.error("section '%s'" % self.name, exc)
            return True
        return False


def now_close(ts):
    return isinstance(ts, (int, float)) and not isinstance(ts, bool) and abs(ts - time.time()) < 30


async def subscribe(c, ws, channel, action="subscribe", changed=True, what=""):
    await ws.send(json.dumps({"channel": "subscription", "payload": {"action": action, "channel": channel}}))
    ack = await recv_json(ws)
    p = ack.get("payload") or {}
    status = "subscribed" if action == "subscribe" else "unsubscribed"
    c.equal((ack.get("channel"), p.get("status"), p.get("type"), p.get("action"), p.get("channel"),
             p.get("changed")),
            ("subscription", status, "subscription", action, channel, changed),
            "%s %s %s: acknowledgement" % (what, action, channel))
    c.check(isinstance(p.get("message"), str) and now_close(p.get("timestamp")),
            "%s %s: ack has message and timestamp" % (what, action), p)
    return ack


def check_error(c, msg, channel, code, what, message_id=None, thread_id=None):
    p = msg.get("payload") or {}
    c.equal((msg.get("channel"), p.get("status"), p.get("type"), p.get("code")),
            (channel, "error", "error", code), "%s: error envelope (channel, status, type, code)" % what)
    c.check(isinstance(p.get("message"), str) and p["message"] and isinstance(p.get("error_details"), str)
            and p["error_details"], "%s: message and error_details are strings" % what, p)
    c.check(now_close(p.get("timestamp")), "%s: timestamp (unix seconds)" % what, p)
    c.check("message_id" in p and "thread_id" in p, "%s: message_id and thread_id present" % what, p)
    c.equal((p.get("message_id"), p.get("thread_id")), (message_id, thread_id), "%s: ids echoed" % what)


def status_frames():
    """The document's message sequence, each written with its own spacing and
    key order, as a Python client's json.dumps would."""
    base = {"message_id": "unique-message-id", "thread_id": "thread_abc123"}
    seq = [
        {"message": "Assistant is processing your request...", "status": "started", "type": "status",
         "final_message": False},
        {"message": "Executing weather check for Makati", "status": "processing", "type": "tool",
         "final_message": False},
        {"message": "Assistant is responding...", "status": "responding", "type": "status",
         "final_message": False},
        {"message": "Current weather in Makati... \u2600 30\u00b0C", "status": "in_progress", "type": "response",
         "final_message": False},
        {"message": "Complete response...", "status": "completed", "type": "response", "final_message": True},
        {"message": "Error description", "status": "error", "type": "error",
         "error_details": "Detailed error information"},
    ]
    frames = []
    for i, p in enumerate(seq):
        payload = dict(p, timestamp=1683042123.456 + i, **base)
        if i % 2:
            frames.append(json.dumps({"channel": CHANNEL, "payload": payload}))
        else:
            frames.append(json.dumps({"payload": payload, "channel": CHANNEL}, ensure_ascii=False, indent=1))
    return frames


async def run_checks(c, url):
    front = await connect(url)      # the frontend watching the stream
    assistant = await connect(url)  # the AI assistant's WebSocketService
    other = await connect(url)      # watching another session
    try:
        c.equal(await expect_silence(front, SILENCE), None, "nothing is sent on connect")

        await subscribe(c, front, CHANNEL, what="front")
        await subscribe(c, front, CHANNEL, changed=False, what="front again")
        await subscribe(c, assistant, CHANNEL, what="assistant")  # as the document's service does
        await subscribe(c, other, "user_session_other", what="other")

        # The status stream reaches the other subscribers byte for byte.
        frames = status_frames()
        for frame in frames:
            await assistant.send(frame)
        got = []
        for _ in frames:
            got.append(await asyncio.wait_for(front.recv(), 5))
        c.equal(got, frames, "the subscriber gets every status/tool/response/error message unchanged, in order")
        c.equal(await expect_silence(assistant, SILENCE), None, "the sender does not get its own messages back")
        c.equal(await expect_silence(other, SILENCE), None, "a subscriber of another channel gets nothing")

        # A publisher need not be subscribed; extra top-level fields pass too.
        frame = '{"channel":"user_session_other","payload":{"status":"started","type":"status"},"extra":[1]}'
        await front.send(frame)
        c.equal(await asyncio.wait_for(other.recv(), 5), frame, "an unsubscribed publisher reaches the channel")
        c.equal(await expect_silence(front, SILENCE), None, "publishing gets no acknowledgement")

        # Nobody subscribed: silently dropped.
        await front.send(json.dumps({"channel": "nobody_here", "payload": {"status": "started"}}))
        c.equal(await expect_silence(front, SILENCE), None, "a channel without subscribers: no reply, no error")

        # Unsubscribe stops the stream.
        await subscribe(c, front, CHANNEL, action="unsubscribe", what="front")
        await subscribe(c, front, CHANNEL, action="unsubscribe", changed=False, what="front again")
        await assistant.send(frames[0])
        c.equal(await expect_silence(front, SILENCE), None, "after unsubscribing nothing arrives")

        # Ping / pong: application level and WebSocket level.
        await front.send(json.dumps({"channel": "ping"}))
        pong = await recv_json(front)
        p = pong.get("payload") or {}
        c.equal((pong.get("channel"), p.get("type"), p.get("status")), ("pong", "pong", "ok"), "ping -> pong")
        c.check(now_close(p.get("timestamp")), "pong timestamp", p)
        await front.send(json.dumps({"channel": "ping", "payload": {"timestamp": 12.5}}))
        c.equal((await recv_json(front)).get("payload", {}).get("client_timestamp"), 12.5,
                "pong echoes the ping's timestamp")
        waiter = await front.ping()
        await asyncio.wait_for(waiter, 5)
        c.check(True, "a WebSocket ping is answered with a pong")

        # Errors in the document's error payload shape.
        errors = [
            ("not json", "error", "invalid_json", None, None),
            ("[1, 2]", "error", "invalid_message", None, None),
            ('"just text"', "error", "invalid_message", None, None),
            (json.dumps({"payload": {"status": "started"}}), "error", "invalid_channel", None, None),
            (json.dumps({"channel": 5, "payload": {}}), "error", "invalid_channel", None, None),
            (json.dumps({"channel": "", "payload": {}}), "error", "invalid_channel", None, None),
            (json.dumps({"channel": "c" * 129, "payload": {}}), "error", "invalid_channel", None, None),
            (json.dumps({"channel": CHANNEL}), CHANNEL, "invalid_payload", None, None),
            (json.dumps({"channel": CHANNEL, "payload": "text"}), CHANNEL, "invalid_payload", None, None),
            (json.dumps({"channel": CHANNEL, "payload": [1]}), CHANNEL, "invalid_payload", None, None),
            (json.dumps({"channel": "subscription"}), "subscription", "invalid_subscription", None, None),
            (json.dumps({"channel": "subscription", "payload": {"action": "join", "channel": "x",
                                                                "message_id": "m1", "thread_id": "t1"}}),
             "subscription", "invalid_subscription", "m1", "t1"),
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe"}}),
             "subscription", "invalid_subscription", None, None),
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": 7}}),
             "subscription", "invalid_subscription", None, None),
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": "ping"}}),
             "subscription", "reserved_channel", None, None),
            (json.dumps({"channel": "pong", "payload": {}}), "pong", "reserved_channel", None, None),
            (json.dumps({"channel": "error", "payload": {}}), "error", "reserved_channel", None, None),
        ]
        for frame, channel, code, mid, tid in errors:
            await front.send(frame)
            check_error(c, await recv_json(front), channel, code, "malformed %s" % frame[:48], mid, tid)
        await front.send(b"\x00binary")
        check_error(c, await recv_json(front), "error", "invalid_message", "binary frame")
        await front.send(json.dumps({"channel": "ping"}))
        c.equal((await recv_json(front)).get("channel"), "pong", "the connection survived every error")

        # A subscriber that leaves is cleaned up; the stream goes on for the others.
        await subscribe(c, front, CHANNEL, what="front (again)")
        watcher = await connect(url)
        await subscribe(c, watcher, CHANNEL, what="watcher")
        await close_quietly(watcher)
        await asyncio.sleep(0.2)
        await assistant.send(frames[1])
        c.equal(await asyncio.wait_for(front.recv(), 5), frames[1], "the stream goes on after a subscriber left")

        # Too large: error, then close 1009.
        big = await connect(url)
        try:
            await big.send(json.dumps({"channel": CHANNEL, "payload": {"message": "x" * (1024 * 1024)}}))
        except websockets.ConnectionClosed:
            pass
        msg = await recv_json(big)
        check_error(c, msg, "error", "too_large", "a message over 1 MiB")
        try:
            await asyncio.wait_for(big.recv(), 3)
        except websockets.ConnectionClosed:
            pass
        c.equal(big.close_code, 1009, "too large: closed with 1009")
        c.equal(await expect_silence(front, SILENCE), None, "the oversized message was not broadcast")
    finally:
        for ws in (front, assistant, other):
            await close_quietly(ws)


async def run(c, binary, source_dir):
    config = os.path.join(source_dir, "examples", "channel-stream", "config.json")
    with Server(binary, ["--config", config], env=clean_env({"WSRELAY_HOST": "127.0.0.1"})) as srv:
        async with Section(c, "channel stream"):
            await run_checks(c, srv.url("/ws"))


def main():
    binary, source_dir = usage_args()
    c = Checker()
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(run(c, binary, source_dir), 55))
    except Exception as exc:  # noqa: BLE001
        c.error("the channel-stream suite", exc)
    print("(%.1f s)" % (time.monotonic() - started))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
