#!/usr/bin/python3
"""A small client for the standard-envelope profile (seeds/000).

    /usr/bin/python3 examples/standard-envelope/client.py                    # as "demo-user"
    /usr/bin/python3 examples/standard-envelope/client.py --token alice --subscribe news scores
    /usr/bin/python3 examples/standard-envelope/client.py --url ws://host:8000/ws/v1/ws --token <JWT>

Connects, authenticates (development mode: the token is the user id; with
WSRELAY_JWT_SECRET set on the server: an HS256 JWT), subscribes, then reads
commands from stdin while printing everything the server sends:

    sub TOPIC [TOPIC...]     subscribe              unsub TOPIC [TOPIC...]  unsubscribe
    pub TOPIC {json}         publish (request)      event TOPIC {json}      publish (fire and forget)
    hb                       heartbeat request      list                    my subscriptions
    raw {json}               send any frame         quit

A heartbeat request goes out every --heartbeat seconds (default 20) as the
Unity client's heartbeat monitoring does. Needs python3-websockets.
"""

import argparse
import asyncio
import itertools
import json
import sys
import time

import websockets

ids = itertools.count(1)


def request(action, payload=None):
    msg = {"type": "request", "id": "req-%d" % next(ids), "action": action, "timestamp": time.time()}
    if payload is not None:
        msg["payload"] = payload
    return msg


def show(msg):
    kind = msg.get("type")
    if kind == "event":
        print("<- event %-12s from %-8s %s" % (msg.get("event"), msg.get("sender", "server"),
                                               json.dumps(msg.get("payload"))), flush=True)
    elif kind == "response":
        print("<- response %s %s: %s" % (msg.get("id"), msg.get("action"), json.dumps(msg.get("payload"))),
              flush=True)
    elif kind == "error":
        err = msg.get("error") or {}
        print("<- ERROR %s (%s): %s %s" % (msg.get("id"), msg.get("action", "-"), err.get("code"),
                                         err.get("message")), flush=True)
    else:
        print("<- %s" % json.dumps(msg), flush=True)


def parse_command(line):
    """A frame (dict) for one command line, None to ignore, or "quit"."""
    parts = line.strip().split(None, 2)
    if not parts:
        return None
    cmd, args = parts[0].lower(), parts[1:]
    if cmd == "quit":
        return "quit"
    if cmd in ("sub", "unsub") and args:
        topics = " ".join(args).split()
        return request("subscribe" if cmd == "sub" else "unsubscribe", {"topics": topics})
    if cmd in ("pub", "event") and args:
        data = json.loads(args[1]) if len(args) > 1 else {}
        if cmd == "pub":
            return request("publish", {"topic": args[0], "data": data})
        return {"type": "event", "event": args[0], "payload": data, "timestamp": time.time()}
    if cmd == "hb":
        return request("heartbeat")
    if cmd == "list":
        return request("subscriptions")
    if cmd == "raw" and args:
        return json.loads(line.strip()[3:])
    print("?? commands: sub, unsub, pub, event, hb, list, raw, quit", file=sys.stderr)
    return None


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="ws://localhost:8000/ws/v1/ws")
    ap.add_argument("--token", default="demo-user", help="user id (development mode) or a JWT")
    ap.add_argument("--subscribe", nargs="*", default=["demo"], metavar="TOPIC")
    ap.add_argument("--heartbeat", type=float, default=20.0, help="seconds between heartbeat requests")
    args = ap.parse_args()

    async with websockets.connect(args.url) as ws:
        async def send(msg):
            print("-> %s" % json.dumps(msg), flush=True)
            await ws.send(json.dumps(msg))

        async def reader():
            async for frame in ws:
                try:
                    show(json.loads(frame))
                except ValueError:
                    print("<- (not JSON) %r" % frame, flush=True)

        async def heartbeat():
            while True:
                await asyncio.sleep(args.heartbeat)
                await send(request("heartbeat"))

        tasks = [asyncio.create_task(reader()), asyncio.create_task(heartbeat())]
        await send(request("auth", {"token": args.token}))
        if args.subscribe:
            await send(request("subscribe", {"topics": args.subscribe}))
        loop = asyncio.get_running_loop()
        try:
            while not tasks[0].done():
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                try:
                    msg = parse_command(line)
                except ValueError as exc:
                    print("?? bad JSON: %s" % exc, file=sys.stderr)
                    continue
                if msg == "quit":
                    break
                if msg is not None:
                    await send(msg)
            await asyncio.sleep(0.3)  # let the last replies arrive
        finally:
            for t in tasks:
                t.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (OSError, websockets.WebSocketException) as exc:
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(1)
