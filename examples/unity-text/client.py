#!/usr/bin/python3
"""A small client for the unity-text profile (seeds/001), standing in for a
Unity app.

    /usr/bin/python3 examples/unity-text/client.py                       # interactive
    /usr/bin/python3 examples/unity-text/client.py "Tell me a joke"      # one-shot
    /usr/bin/python3 examples/unity-text/client.py --url ws://host:8001/unity -v

Sends each line as a plain text frame. Every frame from the server is
{"source": "openai"|"relay", "timestamp": <unix seconds>, "data": <event>};
the client unwraps it, streams the reply text (response.output_text.delta),
prints errors (OpenAI's, and the relay's own with source "relay"), and with
-v every event's source, timestamp and type. Needs python3-websockets.
"""

import argparse
import asyncio
import json
import sys
import time

import websockets

TEXT_DELTAS = ("response.output_text.delta", "response.output_audio_transcript.delta")
mid_line = False  # a reply is being printed on the current line


def line(text):
    global mid_line
    if mid_line:
        print()
        mid_line = False
    print(text, flush=True)


def show(message, verbose):
    """Prints one wrapped event; returns True when a response is complete."""
    global mid_line
    source = message.get("source")
    event = message.get("data") or {}
    kind = event.get("type") if isinstance(event, dict) else None
    if verbose:
        age_ms = (time.time() - message.get("timestamp", 0)) * 1000
        line("[%s %s, stamped %.0f ms ago]" % (source, kind, age_ms))
    if kind in TEXT_DELTAS:
        print(event.get("delta", ""), end="", flush=True)
        mid_line = True
    elif kind == "error":
        err = event.get("error") or {}
        line("[%s error %s] %s" % (source, err.get("code"), err.get("message")))
        return True
    elif kind == "response.done":
        status = (event.get("response") or {}).get("status")
        if status != "completed":
            line("[response %s]" % status)
        elif mid_line:
            print(flush=True)
            mid_line = False
        return True
    return False


async def reader(ws, verbose, turn_done):
    async for frame in ws:
        try:
            message = json.loads(frame)
        except (TypeError, ValueError):
            line("[not JSON] %r" % (frame,))
            continue
        if show(message, verbose):
            turn_done.set()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="ws://localhost:8001/unity")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every event")
    ap.add_argument("messages", nargs="*", help="send these and exit (default: read lines from stdin)")
    args = ap.parse_args()

    async with websockets.connect(args.url, max_size=None) as ws:
        print("connected to %s" % args.url, file=sys.stderr)
        turn_done = asyncio.Event()
        read_task = asyncio.create_task(reader(ws, args.verbose, turn_done))
        loop = asyncio.get_running_loop()

        async def say(text):
            turn_done.clear()
            await ws.send(text)
            waiter = asyncio.create_task(turn_done.wait())
            await asyncio.wait({waiter, read_task}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

        try:
            if args.messages:
                for text in args.messages:
                    print("> %s" % text)
                    await say(text)
            else:
                print("type a message and press Enter (Ctrl-D to quit)", file=sys.stderr)
                while not read_task.done():
                    text = await loop.run_in_executor(None, sys.stdin.readline)
                    if not text:
                        break
                    if text.strip():
                        await say(text.rstrip("\n"))
        finally:
            read_task.cancel()
        if ws.close_code is not None:
            print("closed by the server: %s %s" % (ws.close_code, ws.close_reason), file=sys.stderr)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (OSError, websockets.WebSocketException) as exc:
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(1)
