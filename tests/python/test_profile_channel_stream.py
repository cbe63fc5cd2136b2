#!/usr/bin/python3
"""End-to-end test of the channel-stream profile (seeds/003, "Server-Side
Expectations"): {channel, payload} messages, subscribe/unsubscribe via the
"subscription" channel, byte-for-byte broadcast to the other subscribers,
ping/pong and the document's error payload; run as
examples/channel-stream/config.json unchanged. The user_session_* channels
keep history: their broadcasts carry the relay's "seq" (spliced in as the last
member), the ack its epoch, and a resubscription with "since" after a dropped
connection gets what was missed ("Resubscribe to channels after
reconnection"); client.py watch does that by itself, across an admin
disconnect and a relay restart.

    /usr/bin/python3 tests/python/test_profile_channel_stream.py <wsrelay> <source-dir>

Prints one line per failed check and ends with "N passed, M failed".
"""

import asyncio
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    free_port, Section, Checker, Server, clean_env, close_quietly, connect, expect_silence, http_get, recv_json, usage_args)

SILENCE = 0.3
CHANNEL = "user_session_abc123"   # a history channel (channel_options: user_session_*)
PLAIN = "dashboard"               # no channel_options rule: no history, verbatim as before
HISTORY_SIZE = 100                # config.json's history_size for user_session_*
ADMIN_TOKEN = "channel-stream-test-admin-token"
EPOCH = re.compile(r"^[0-9a-f]{12}$")


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
    if action == "subscribe" and channel.startswith("user_session_"):
        c.check(isinstance(p.get("epoch"), str) and EPOCH.match(p["epoch"]) and isinstance(p.get("seq"), int)
                and "recovered" not in p, "%s subscribe %s: a history channel's ack has epoch and seq" % (what, channel),
                p)
    else:
        c.check(not {"epoch", "seq", "recovered"} & set(p), "%s %s %s: no position in the ack" % (what, action, channel),
                p)
    return ack


def with_seq(frame, seq):
    """A frame as a subscriber of a history channel gets it: the sender's text
    with ,"seq":N spliced in before its closing brace (trailing whitespace
    dropped), as the engine writes it."""
    body = frame.rstrip(" \n\r\t")
    assert body.endswith("}")
    return body[:-1] + ',"seq":%d}' % seq


def status_frame(i, channel=CHANNEL):
    return json.dumps({"channel": channel, "payload": {
        "message": "update %d" % i, "timestamp": time.time(), "status": "in_progress", "type": "response",
        "final_message": False, "message_id": "unique-message-id", "thread_id": "thread_abc123"}})


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

        ack = await subscribe(c, front, CHANNEL, what="front")
        seq = ack["payload"].get("seq", 0)  # 0: nothing published yet on this relay
        c.equal(seq, 0, "a fresh channel's stream starts at seq 0")
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
        c.equal(got, [with_seq(f, seq + 1 + i) for i, f in enumerate(frames)],
                "the subscriber gets every status/tool/response/error message unchanged (plus the relay's seq, "
                "1, 2, ...), in order")
        seq += len(frames)
        c.check(all(json.loads(g)["payload"] == json.loads(f)["payload"] and json.loads(g)["channel"] == CHANNEL
                    for g, f in zip(got, frames)), "channel and payload as sent (the document's client reads those)")
        c.equal(await expect_silence(assistant, SILENCE), None, "the sender does not get its own messages back")
        c.equal(await expect_silence(other, SILENCE), None, "a subscriber of another channel gets nothing")

        # A publisher need not be subscribed; extra top-level fields pass too.
        frame = '{"channel":"user_session_other","payload":{"status":"started","type":"status"},"extra":[1]}'
        await front.send(frame)
        c.equal(await asyncio.wait_for(other.recv(), 5), with_seq(frame, 1),
                "an unsubscribed publisher reaches the channel (its own stream: seq 1)")
        c.equal(await expect_silence(front, SILENCE), None, "publishing gets no acknowledgement")

        # A channel without history: byte for byte, no seq, since ignored; a
        # top-level "seq" of the sender's passes as any other field.
        dash = await connect(url)
        try:
            await subscribe(c, dash, PLAIN, what="dash")
            frame = '{"channel": "%s", "payload": {"status": "started"}, "seq": "mine"}  ' % PLAIN
            await front.send(frame)
            c.equal(await asyncio.wait_for(dash.recv(), 5), frame, "a channel without history: verbatim, no seq added")
            await dash.send(json.dumps({"channel": "subscription", "payload": {
                "action": "subscribe", "channel": PLAIN, "since": {"seq": 3, "epoch": "0123456789ab"}}}))
            p = (await recv_json(dash)).get("payload") or {}
            c.equal((p.get("status"), p.get("changed"), "recovered" in p, "epoch" in p), ("subscribed", False, False, False),
                    "since in a channel without history: ignored (no recovered, no epoch)")
        finally:
            await close_quietly(dash)

        # Nobody subscribed: silently dropped.
        await front.send(json.dumps({"channel": "nobody_here", "payload": {"status": "started"}}))
        c.equal(await expect_silence(front, SILENCE), None, "a channel without subscribers: no reply, no error")

        # Unsubscribe stops the stream.
        await subscribe(c, front, CHANNEL, action="unsubscribe", what="front")
        await subscribe(c, front, CHANNEL, action="unsubscribe", changed=False, what="front again")
        await assistant.send(frames[0])
        seq += 1  # kept in the history all the same
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
            # A history channel's "seq" is the relay's.
            (json.dumps({"channel": CHANNEL, "payload": {"message_id": "m2"}, "seq": 99}), CHANNEL, "reserved_field",
             "m2", None),
            (json.dumps({"channel": CHANNEL, "payload": {}, "seq": None}), CHANNEL, "reserved_field", None, None),
            # since: {"seq": <integer >= 0>, "epoch": <string>}
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": CHANNEL,
                                                                "since": 5, "thread_id": "t2"}}),
             "subscription", "invalid_subscription", None, "t2"),
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": CHANNEL,
                                                                "since": [1, "e"]}}),
             "subscription", "invalid_subscription", None, None),
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": CHANNEL,
                                                                "since": {"seq": -1, "epoch": "e"}}}),
             "subscription", "invalid_subscription", None, None),
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": CHANNEL,
                                                                "since": {"seq": 1.5, "epoch": "e"}}}),
             "subscription", "invalid_subscription", None, None),
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": PLAIN,
                                                                "since": {"seq": 1}}}),
             "subscription", "invalid_subscription", None, None),
            # A name the relay refuses is an error, not a "subscribed" that did nothing.
            (json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": "user\u0001x"}}),
             "subscription", "invalid_subscription", None, None),
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
        seq += 1
        c.equal(await asyncio.wait_for(front.recv(), 5), with_seq(frames[1], seq),
                "the stream goes on after a subscriber left (seq counted on while nobody listened)")

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


async def sub_since(ws, channel, since):
    await ws.send(json.dumps({"channel": "subscription", "payload": {
        "action": "subscribe", "channel": channel, "since": since}}))
    return (await recv_json(ws)).get("payload") or {}


async def settled(ws):
    """Every message ws sent before has been handled: the relay answers one
    connection's messages in order, so its pong comes after them (a slow
    relay, under a sanitizer, is still publishing otherwise)."""
    await ws.send(json.dumps({"channel": "ping"}))
    while (json.loads(await asyncio.wait_for(ws.recv(), 10)).get("channel")) != "pong":
        pass


async def recv_frames(ws, n):
    return [await asyncio.wait_for(ws.recv(), 5) for _ in range(n)]


async def run_recovery(c, url):
    """The document's "resubscribe to channels after reconnection": a watcher
    whose socket drops comes back with since and gets exactly what it missed."""
    channel = "user_session_recover"
    assistant = await connect(url)
    watcher = await connect(url)
    back = None
    try:
        ack = await subscribe(c, watcher, channel, what="watcher")
        epoch, seq = ack["payload"]["epoch"], ack["payload"]["seq"]
        sent = [status_frame(i, channel) for i in range(1, 8)]
        for frame in sent[:3]:
            await assistant.send(frame)
        got = await recv_frames(watcher, 3)
        c.equal(got, [with_seq(f, seq + 1 + i) for i, f in enumerate(sent[:3])], "recovery: the first 3 arrive live")
        last = json.loads(got[-1])["seq"]

        watcher.transport.abort()  # dropped: no close frame
        await asyncio.sleep(0.2)
        for frame in sent[3:]:
            await assistant.send(frame)
        await settled(assistant)

        back = await connect(url)
        p = await sub_since(back, channel, {"seq": last, "epoch": epoch})
        c.equal((p.get("status"), p.get("changed"), p.get("recovered"), p.get("epoch"), p.get("seq")),
                ("subscribed", True, True, epoch, last + 4),
                "recovery: the ack says recovered, same epoch, the latest seq")
        missed = await recv_frames(back, 4)
        c.equal(missed, [with_seq(f, last + 1 + i) for i, f in enumerate(sent[3:])],
                "recovery: exactly the 4 missed messages follow the ack, in order, as subscribers got them")
        c.equal(await expect_silence(back, SILENCE), None, "recovery: nothing more (no duplicates)")
        live = status_frame(8, channel)
        await assistant.send(live)
        c.equal(await asyncio.wait_for(back.recv(), 5), with_seq(live, last + 5), "recovery: then live ones")
        await close_quietly(back)

        # Caught up: recovered with nothing to replay.
        back = await connect(url)
        p = await sub_since(back, channel, {"seq": last + 5, "epoch": epoch})
        c.equal((p.get("recovered"), p.get("seq")), (True, last + 5), "recovery from the latest seq: recovered")
        c.equal(await expect_silence(back, SILENCE), None, "recovery from the latest seq: nothing replayed")
        await close_quietly(back)

        # Positions that cannot be continued: recovered false, no replay.
        cases = [({"seq": last, "epoch": "0123456789ab"}, "another epoch (a restarted relay)"),
                 ({"seq": last + 50, "epoch": epoch}, "a seq ahead of the stream")]
        back = await connect(url)
        for since, what in cases:
            p = await sub_since(back, channel, since)
            c.equal((p.get("status"), p.get("recovered"), p.get("epoch"), p.get("seq")),
                    ("subscribed", False, epoch, last + 5), "since %s: recovered false, the current position" % what)
            c.equal(await expect_silence(back, SILENCE), None, "since %s: nothing replayed" % what)
        await close_quietly(back)
        top = last + 5
        for i in range(HISTORY_SIZE + 1):
            await assistant.send(status_frame(100 + i, channel))
        await settled(assistant)
        back = await connect(url)
        p = await sub_since(back, channel, {"seq": top - 1, "epoch": epoch})
        c.equal((p.get("recovered"), p.get("seq")), (False, top + HISTORY_SIZE + 1),
                "since further back than history_size (%d): recovered false" % HISTORY_SIZE)
        c.equal(await expect_silence(back, SILENCE), None, "too far back: nothing replayed")
        p = await sub_since(back, "user_session_fresh", {"seq": 0, "epoch": "0123456789ab"})
        c.equal((p.get("recovered"), p.get("seq")), (False, 0), "since in a channel nobody published to: recovered false")
    finally:
        for ws in (assistant, watcher, back):
            await close_quietly(ws)


class Watch:
    """client.py watch as a subprocess; its stdout lines read by a thread."""

    def __init__(self, source_dir, url, channel):
        script = os.path.join(source_dir, "examples", "channel-stream", "client.py")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", script, "--url", url, "watch", channel, "--retries", "30", "--retry-delay", "1.0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    async def until(self, pattern, timeout=10):
        """The first new line matching pattern (a regex), or None; the lines read are kept in seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def admin(srv, method, path, body=None):
    headers = {"Authorization": "Bearer " + ADMIN_TOKEN}
    if body is not None:
        headers["Content-Type"] = "application/json"
    status, _, text = http_get("127.0.0.1", srv.port, path, method=method, headers=headers,
                               body=json.dumps(body) if body is not None else None)
    return status, json.loads(text) if text.startswith("{") else text


async def run_client(c, binary, config, source_dir, env):
    """client.py watch: cut off by an admin disconnect, it resubscribes with
    since and shows what it missed; after a relay restart it says it could not."""
    channel = "user_session_client"
    port = free_port()
    args = ["--config", config, "--port", str(port)]
    url = "ws://127.0.0.1:%d/ws" % port
    srv = Server(binary, args, env=env, port_zero=False).start()
    watch = Watch(source_dir, url, channel)
    assistant = None
    try:
        c.check(await watch.until(r"^<- \[subscription\] subscribed"), "client.py: subscribed", watch.seen)
        assistant = await connect(url)  # publishes without subscribing: the watcher is the only subscriber
        for i in range(1, 4):
            await assistant.send(status_frame(i, channel))
        for i in range(1, 4):
            c.check(await watch.until(r"^<- \[%s\] #%d .*update %d$" % (channel, i, i)),
                    "client.py shows update %d with its seq" % i, watch.seen[-5:])

        status, body = admin(srv, "GET", "/admin/sessions")
        ids = [s["id"] for s in body.get("sessions", []) if channel in s.get("subscriptions", [])] \
            if isinstance(body, dict) else []
        c.equal((status, len(ids)), (200, 1), "admin: one session subscribed (client.py)")
        if ids:
            c.equal(admin(srv, "POST", "/admin/disconnect", {"session": ids[0], "reason": "test"})[0], 200,
                    "admin: disconnect client.py")
        c.check(await watch.until(r"^!! connection lost.*reconnecting"), "client.py notices the lost connection",
                watch.seen[-3:])
        for i in range(4, 8):  # while it waits to reconnect (--retry-delay 1.0)
            await assistant.send(status_frame(i, channel))
        c.check(await watch.until(r"^!! \[%s\] recovered: 4 missed" % channel), "client.py: recovered, 4 missed",
                watch.seen[-3:])
        for i in range(4, 8):
            c.check(await watch.until(r"^<- \[%s\] #%d .*update %d$" % (channel, i, i), 5),
                    "client.py shows missed update %d" % i, watch.seen[-3:])
        await assistant.send(status_frame(8, channel))
        c.check(await watch.until(r"^<- \[%s\] #8 .*update 8$" % channel), "client.py: then live ones",
                watch.seen[-3:])

        # Relay restart: a new epoch; what was kept is gone.
        await close_quietly(assistant)
        srv.stop()
        srv = Server(binary, args, env=env, port_zero=False).start()
        c.check(await watch.until(r"^!! \[%s\] could not recover" % channel, 15),
                "client.py after a relay restart: says it could not recover", watch.seen[-4:])
        assistant = await connect(url)
        await assistant.send(status_frame(9, channel))
        c.check(await watch.until(r"^<- \[%s\] #1 .*update 9$" % channel), "client.py: the new stream, from seq 1",
                watch.seen[-3:])

        # The same for a plain client: its old position is not recovered.
        w = await connect(url)
        p = await sub_since(w, channel, {"seq": 8, "epoch": "0123456789ab"})
        c.check(p.get("recovered") is False and p.get("seq") == 1 and EPOCH.match(str(p.get("epoch"))),
                "after a relay restart: recovered false, the new stream's position", p)
        c.equal(await expect_silence(w, SILENCE), None, "after a relay restart: nothing replayed")
        await close_quietly(w)
        c.check(watch.proc.poll() is None, "client.py is still watching", watch.seen[-5:])
    finally:
        await close_quietly(assistant)
        watch.stop()
        srv.stop()


async def run(c, binary, source_dir):
    config = os.path.join(source_dir, "examples", "channel-stream", "config.json")
    env = clean_env({"WSRELAY_HOST": "127.0.0.1"})
    with Server(binary, ["--config", config], env=env) as srv:
        async with Section(c, "channel stream"):
            await run_checks(c, srv.url("/ws"))
        async with Section(c, "recovery after a dropped connection"):
            await run_recovery(c, srv.url("/ws"))
    async with Section(c, "client.py reconnects and recovers"):
        await run_client(c, binary, config, source_dir, clean_env({"WSRELAY_HOST": "127.0.0.1",
                                                                   "WSRELAY_ADMIN_TOKEN": ADMIN_TOKEN}))


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
