#!/usr/bin/env python3
"""A small chat client for examples/backend-proxy (wsrelay in front of app.py).

    /usr/bin/python3 examples/backend-proxy/client.py --user alice                 # interactive
    /usr/bin/python3 examples/backend-proxy/client.py --user bob "hello" "what the heck"
    /usr/bin/python3 examples/backend-proxy/client.py --user carol --cookie --listen 5

It logs in at the app (POST /login: a token, also set as the "session"
cookie), then opens the relay's WebSocket with ?token=<token> (or, with
--cookie, with the cookie instead), and shows what arrives:

    [welcome alice, channels: lobby]
    <lobby> bob: hello
    [sent m2 to 2]
    [notice from app] maintenance at 18:00
    [error refused] links are not allowed in lobby
    [closed 4003 user mallory is banned]

Each message argument is sent as a chat message; the client waits for its
chat.ok or error, then exits (after --listen more seconds). Without message
arguments it reads lines from stdin (Ctrl-D quits); a line "#room text"
sends to another channel. --token T skips the login.

Exit status: 0; 1 if it cannot connect or log in; 3 if the relay closed the
connection with 4003 (the app refused it) or 1013 (the app is unavailable).

Needs python3-websockets (Debian: apt install python3-websockets).
"""

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import websockets


def login(app, user):
    req = urllib.request.Request(app.rstrip("/") + "/login", data=json.dumps({"user": user}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())["token"]


def show(msg):
    kind = msg.get("type")
    if kind == "welcome":
        print("[welcome %s, channels: %s]" % (msg.get("user"), ", ".join(msg.get("channels") or [])))
    elif kind == "chat":
        mark = " (filtered)" if msg.get("filtered") else ""
        print("<%s> %s: %s%s" % (msg.get("channel"), msg.get("from"), msg.get("text"), mark))
    elif kind == "chat.ok":
        print("[sent %s to %s]" % (msg.get("message_id"), msg.get("delivered")))
    elif kind == "notice":
        print("[notice from %s] %s" % (msg.get("from"), msg.get("text")))
    elif kind == "error":
        print("[error %s] %s" % (msg.get("code"), msg.get("message")))
    else:
        print("[%s] %s" % (kind, json.dumps(msg)))
    sys.stdout.flush()


async def reader(ws, answers):
    try:
        async for raw in ws:
            msg = json.loads(raw)
            show(msg)
            if msg.get("type") in ("chat.ok", "error") and msg.get("id") in answers:
                answers.pop(msg["id"]).set_result(msg)
    except websockets.ConnectionClosed:
        pass
    print("[closed %s %s]" % (ws.close_code, ws.close_reason or ""))
    sys.stdout.flush()
    for waiter in answers.values():
        if not waiter.done():
            waiter.set_result(None)


def chat_message(line, n):
    channel = None
    if line.startswith("#") and " " in line:
        channel, line = line[1:].split(" ", 1)
    msg = {"type": "chat", "id": "c%d" % n, "text": line}
    if channel:
        msg["channel"] = channel
    return msg


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws", help="the relay's endpoint (default ws://127.0.0.1:8000/ws)")
    parser.add_argument("--app", default="http://127.0.0.1:8080", help="the app, for /login (default http://127.0.0.1:8080)")
    parser.add_argument("--user", default="alice", help="log in as (default alice)")
    parser.add_argument("--token", help="use this token, no login")
    parser.add_argument("--cookie", action="store_true", help="send the token as the 'session' cookie, not ?token=")
    parser.add_argument("--listen", type=float, default=0, help="after the messages, stay this many seconds")
    parser.add_argument("messages", nargs="*", help="chat messages to send, then exit")
    args = parser.parse_args()

    token = args.token or login(args.app, args.user)
    url, headers = args.url, {}
    if args.cookie:
        headers["Cookie"] = "session=" + token
    else:
        url += ("&" if "?" in url else "?") + "token=" + urllib.parse.quote(token)
    loop = asyncio.get_running_loop()
    answers = {}
    async with websockets.connect(url, extra_headers=headers, max_size=None) as ws:
        task = asyncio.create_task(reader(ws, answers))
        try:
            await converse(ws, args, answers, task, loop)
        except websockets.ConnectionClosed:
            pass  # closed under a send (a refused connection): the reader reports how
        await ws.close()
        await task
    return 3 if ws.close_code in (4003, 1013) else 0


async def converse(ws, args, answers, task, loop):
    """Sends the messages given (waiting for each answer), or stdin's lines."""
    if args.messages:
        for n, text in enumerate(args.messages, 1):
            msg = chat_message(text, n)
            answers[msg["id"]] = loop.create_future()
            await ws.send(json.dumps(msg))
            if await asyncio.wait_for(answers[msg["id"]], 30) is None:
                break
        if args.listen > 0 and not task.done():
            await asyncio.wait([task], timeout=args.listen)
        return
    n = 0
    while not task.done():
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if line.strip():
            n += 1
            await ws.send(json.dumps(chat_message(line.rstrip("\n"), n)))


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        pass
    except (OSError, urllib.error.URLError, websockets.InvalidHandshake) as e:
        print("cannot connect: %s" % e, file=sys.stderr)
        sys.exit(1)
