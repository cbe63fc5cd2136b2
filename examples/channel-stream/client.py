#!/usr/bin/python3
"""A small client for the channel-stream profile (seeds/003).

    # watch channels (the frontend side): subscribe and print the stream;
    # reconnect and recover what was missed when the connection drops
    /usr/bin/python3 examples/channel-stream/client.py watch user_session_abc123

    # act as the AI assistant's WebSocketService: subscribe, then send the
    # document's status sequence (started, tool, responding, in_progress..., completed)
    /usr/bin/python3 examples/channel-stream/client.py simulate user_session_abc123

    # send one payload to a channel
    /usr/bin/python3 examples/channel-stream/client.py send user_session_abc123 '{"status":"started","type":"status","message":"hi"}'

    --url ws://HOST:8080/ws (default ws://localhost:8080/ws)

Like the document's client it uses WebSocket ping/pong every 30 s for health
checks (python3-websockets does that by itself); `watch --app-ping N` also sends
the app-level {"channel": "ping"} every N seconds.

`watch` reconnects when the connection is lost (as the document asks:
"automatic reconnection", "resubscribe to channels after reconnection"): it
remembers, per channel, the epoch of the subscription ack and the "seq" of the
last broadcast it saw, and resubscribes with
"since": {"seq": ..., "epoch": ...}. The ack then says "recovered": true (the
missed broadcasts follow, in order) or false (they are gone: the relay
restarted, or the history no longer reaches back). --retries N failed
connection attempts in a row (default 3, the document's max_retries) end it,
--retry-delay seconds apart (default 1.0).
"""

import argparse
import asyncio
import json
import sys
import time
import uuid

import websockets


def show(frame):
    try:
        msg = json.loads(frame)
    except ValueError:
        print("<- (not JSON) %r" % frame, flush=True)
        return
    p = msg.get("payload") or {}
    if isinstance(p, dict) and p.get("status") == "error":
        print("<- [%s] ERROR %s: %s (%s)" % (msg.get("channel"), p.get("code", ""), p.get("message"),
                                           p.get("error_details")), flush=True)
    elif isinstance(p, dict) and "status" in p:
        print("<- [%s]%s %-11s %-12s %s%s" % (msg.get("channel"), " #%s" % msg["seq"] if "seq" in msg else "",
                                             p.get("status"), p.get("type"), p.get("message"),
                                             "  (final)" if p.get("final_message") else ""),
              flush=True)
    else:
        print("<- %s" % frame, flush=True)


class Positions:
    """Where this client is in each history channel's stream: {channel:
    {"epoch": ..., "seq": ...}}, from the subscription acks (epoch, seq) and
    the "seq" the relay adds to each broadcast of a history channel."""

    def __init__(self):
        self.at = {}

    def since(self, channel):
        return dict(self.at[channel]) if channel in self.at else None

    def acked(self, payload):
        channel = payload["channel"]
        if payload.get("recovered") is True:
            return  # the missed broadcasts follow and move the position on
        if isinstance(payload.get("epoch"), str) and isinstance(payload.get("seq"), int):
            self.at[channel] = {"epoch": payload["epoch"], "seq": payload["seq"]}
        else:
            self.at.pop(channel, None)  # a channel without history

    def seen(self, frame):
        try:
            msg = json.loads(frame)
        except ValueError:
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("seq"), int):
            return
        pos = self.at.get(msg.get("channel"))
        if pos is None:
            return
        if msg["seq"] < pos["seq"]:
            # The stream started afresh while we were subscribed (kept history
            # expired): its epoch is unknown until the next ack.
            del self.at[msg["channel"]]
            return
        pos["seq"] = msg["seq"]


async def subscribe(ws, channel, since=None, on_frame=show):
    """Subscribes and returns the ack's payload. Frames that arrive before the
    ack (other channels' broadcasts) go to on_frame."""
    payload = {"action": "subscribe", "channel": channel}
    if since is not None:
        payload["since"] = since
    await ws.send(json.dumps({"channel": "subscription", "payload": payload}))
    deadline = time.monotonic() + 5
    while True:
        frame = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        msg = json.loads(frame)
        p = msg.get("payload") or {}
        if msg.get("channel") == "subscription" and p.get("channel", channel) == channel:
            break
        on_frame(frame)
    show(frame)
    if p.get("status") != "subscribed":
        raise RuntimeError("subscription failed: %s" % msg)
    return p


async def watch_once(ws, args, positions, connected):
    def on_frame(frame):
        positions.seen(frame)
        show(frame)

    for channel in args.channel:
        since = positions.since(channel)
        p = await subscribe(ws, channel, since, on_frame)
        if p.get("recovered") is False:
            print("!! [%s] could not recover what was sent while disconnected (since %s); "
                  "the stream goes on after seq %s" % (channel, since, p.get("seq")), flush=True)
        elif p.get("recovered") is True:
            print("!! [%s] recovered: %d missed message(s) follow" % (channel, p["seq"] - since["seq"]), flush=True)
        positions.acked(p)
    connected()

    async def app_ping():
        while True:
            await asyncio.sleep(args.app_ping)
            await ws.send(json.dumps({"channel": "ping", "payload": {"timestamp": time.time()}}))

    pinger = asyncio.create_task(app_ping()) if args.app_ping else None
    try:
        async for frame in ws:
            on_frame(frame)
    finally:
        if pinger:
            pinger.cancel()


async def watch(args):
    """Connects, subscribes, prints; on a lost connection reconnects and
    resubscribes with since. Ends after --retries failed attempts in a row."""
    positions = Positions()
    failures = 0

    def connected():
        nonlocal failures
        failures = 0

    while True:
        try:
            async with websockets.connect(args.url, ping_interval=30.0) as ws:
                await watch_once(ws, args, positions, connected)
            reason = "connection closed by the server (%s)" % ws.close_code
        except websockets.ConnectionClosed as exc:
            reason = "connection lost (%s)" % (exc.rcvd.code if exc.rcvd else "no close frame")
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
            reason = "cannot connect: %s" % (str(exc) or type(exc).__name__)
        failures += 1  # reset once every channel is subscribed again
        if failures > args.retries:
            raise RuntimeError("%s; gave up after %d retries" % (reason, args.retries))
        print("!! %s; reconnecting in %.1f s" % (reason, args.retry_delay), flush=True)
        await asyncio.sleep(args.retry_delay)


def status(message, status_, type_, message_id, thread_id, final=False):
    return {"message": message, "timestamp": time.time(), "status": status_, "type": type_,
            "final_message": final, "message_id": message_id, "thread_id": thread_id}


async def simulate(ws, args):
    await subscribe(ws, args.channel)
    message_id, thread_id = str(uuid.uuid4()), "thread_" + uuid.uuid4().hex[:6]
    answer = "Current weather in Makati: sunny, 31 degrees."
    steps = [status("Assistant is processing your request...", "started", "status", message_id, thread_id),
             status("Executing get_weather...", "processing", "tool", message_id, thread_id),
             status("Assistant is responding...", "responding", "status", message_id, thread_id)]
    words = answer.split(" ")
    for i in range(1, len(words) + 1):
        steps.append(status(" ".join(words[:i]), "in_progress", "response", message_id, thread_id))
    steps.append(status(answer, "completed", "response", message_id, thread_id, final=True))
    for payload in steps:
        payload["timestamp"] = time.time()
        await ws.send(json.dumps({"channel": args.channel, "payload": payload}))
        print("-> [%s] %-11s %s" % (args.channel, payload["status"], payload["message"]), flush=True)
        await asyncio.sleep(args.delay)


async def send_one(ws, args):
    payload = json.loads(args.payload)
    await ws.send(json.dumps({"channel": args.channel, "payload": payload}))
    try:  # errors come back on the same connection; a good message gets no reply
        show(await asyncio.wait_for(ws.recv(), 0.5))
    except asyncio.TimeoutError:
        print("sent", flush=True)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="ws://localhost:8080/ws")
    sub = ap.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("watch", help="subscribe to channels and print their messages; reconnect when cut off")
    w.add_argument("channel", nargs="+")
    w.add_argument("--app-ping", type=float, default=0, metavar="SECONDS")
    w.add_argument("--retries", type=int, default=3, help="failed connection attempts in a row before giving up")
    w.add_argument("--retry-delay", type=float, default=1.0, metavar="SECONDS")
    s = sub.add_parser("simulate", help="send the assistant's status sequence to a channel")
    s.add_argument("channel")
    s.add_argument("--delay", type=float, default=0.3, help="seconds between messages")
    o = sub.add_parser("send", help="send one payload (JSON object) to a channel")
    o.add_argument("channel")
    o.add_argument("payload")
    args = ap.parse_args()
    if args.mode == "watch":
        await watch(args)
        return
    async with websockets.connect(args.url, ping_interval=30.0) as ws:
        await {"simulate": simulate, "send": send_one}[args.mode](ws, args)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, ValueError, websockets.WebSocketException) as exc:
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(1)
