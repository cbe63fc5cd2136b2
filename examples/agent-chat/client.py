#!/usr/bin/env python3
"""A small demo client for examples/agent-chat (EdAgent's real-time chat).

    /usr/bin/python3 examples/agent-chat/client.py                      # interactive, user "user-123"
    /usr/bin/python3 examples/agent-chat/client.py --user alice "Hello EdAgent!" "And in Python?"

Needs python3-websockets (Debian: apt install python3-websockets). Streamed
ai_response chunks are printed as they arrive, the final answer ends the line;
typing, broadcast, error and disconnection messages are shown on their own
lines. In interactive mode type a message and press Enter; Ctrl-D quits.
"""

import argparse
import asyncio
import json
import sys

import websockets


def show(msg, state):
    kind = msg.get("type")
    if kind == "ai_response":
        if msg.get("streaming"):
            if not state.get("streaming"):
                sys.stdout.write("EdAgent: ")
                state["streaming"] = True
            sys.stdout.write(msg.get("content", ""))
        else:
            if not state.get("streaming"):
                sys.stdout.write("EdAgent: " + msg.get("content", ""))
            state["streaming"] = False
            sys.stdout.write("\n")
            state["answered"] = state.get("answered", 0) + 1
    elif kind == "typing":
        if state.get("verbose"):
            print("[typing %s]" % ("on" if msg.get("is_typing") else "off"))
        if msg.get("is_typing") is False:
            state["idle"].set()
        else:
            state["idle"].clear()
    elif kind == "connection":
        print("[%s as %s]" % (msg.get("message"), msg.get("user_id")))
    elif kind == "broadcast":
        print("[broadcast] %s" % msg.get("message"))
    elif kind == "error":
        retry = " (retry in %s s)" % msg["retry_after"] if "retry_after" in msg else ""
        print("[error %s] %s%s" % (msg.get("code"), msg.get("message"), retry))
        state["idle"].set()
    elif kind == "disconnection":
        print("[disconnected: %s] %s" % (msg.get("reason"), msg.get("message")))
    else:
        print("[%s] %s" % (kind, json.dumps(msg)))
    sys.stdout.flush()


async def reader(ws, state):
    try:
        async for raw in ws:
            show(json.loads(raw), state)
    except websockets.ConnectionClosed:
        pass
    print("[connection closed: %s %s]" % (ws.close_code, ws.close_reason or ""))
    state["idle"].set()


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://localhost:8000", help="server base URL (default ws://localhost:8000)")
    parser.add_argument("--user", default="user-123", help="user id put into the path (default user-123)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show typing indicators")
    parser.add_argument("messages", nargs="*", help="messages to send one after another, then exit")
    args = parser.parse_args()

    url = "%s/api/v1/ws/%s" % (args.url.rstrip("/"), args.user)
    state = {"idle": asyncio.Event(), "verbose": args.verbose}
    state["idle"].set()
    async with websockets.connect(url, max_size=None) as ws:
        show(json.loads(await asyncio.wait_for(ws.recv(), 10)), state)  # the connection message
        task = asyncio.create_task(reader(ws, state))
        if args.messages:
            for text in args.messages:
                print("You: " + text)
                state["idle"].clear()
                await ws.send(json.dumps({"message": text}))
                await asyncio.wait_for(state["idle"].wait(), 120)
        else:
            loop = asyncio.get_running_loop()
            while not task.done():
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                if line.strip():
                    await ws.send(json.dumps({"message": line.rstrip("\n")}))
        await ws.close()
        await task


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (OSError, websockets.InvalidHandshake) as e:
        print("cannot connect: %s" % e, file=sys.stderr)
        sys.exit(1)
