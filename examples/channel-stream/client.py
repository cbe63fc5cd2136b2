#!/usr/bin/python3
"""A small client for the channel-stream profile (seeds/003).

    # watch a channel (the frontend side): subscribe and print the stream
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
        print("<- [%s] %-11s %-12s %s%s" % (msg.get("channel"), p.get("status"), p.get("type"),
                                           p.get("message"), "  (final)" if p.get("final_message") else ""),
              flush=True)
    else:
        print("<- %s" % frame, flush=True)


async def subscribe(ws, channel):
    await ws.send(json.dumps({"channel": "subscription", "payload": {"action": "subscribe", "channel": channel}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    show(json.dumps(ack))
    if (ack.get("payload") or {}).get("status") != "subscribed":
        raise RuntimeError("subscription failed: %s" % ack)


async def watch(ws, args):
    await subscribe(ws, args.channel)

    async def app_ping():
        while True:
            await asyncio.sleep(args.app_ping)
            await ws.send(json.dumps({"channel": "ping", "payload": {"timestamp": time.time()}}))

    pinger = asyncio.create_task(app_ping()) if args.app_ping else None
    try:
        async for frame in ws:
            show(frame)
    finally:
        if pinger:
            pinger.cancel()


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
    w = sub.add_parser("watch", help="subscribe to a channel and print its messages")
    w.add_argument("channel")
    w.add_argument("--app-ping", type=float, default=0, metavar="SECONDS")
    s = sub.add_parser("simulate", help="send the assistant's status sequence to a channel")
    s.add_argument("channel")
    s.add_argument("--delay", type=float, default=0.3, help="seconds between messages")
    o = sub.add_parser("send", help="send one payload (JSON object) to a channel")
    o.add_argument("channel")
    o.add_argument("payload")
    args = ap.parse_args()
    async with websockets.connect(args.url, ping_interval=30.0) as ws:
        await {"watch": watch, "simulate": simulate, "send": send_one}[args.mode](ws, args)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, ValueError, websockets.WebSocketException) as exc:
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(1)
