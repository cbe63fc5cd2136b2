#!/usr/bin/python3
"""A small client for the realtime-relay profile (seeds/002).

    /usr/bin/python3 examples/realtime-relay/client.py                     # interactive
    /usr/bin/python3 examples/realtime-relay/client.py "Hello, how are you?"  # one-shot
    /usr/bin/python3 examples/realtime-relay/client.py --url ws://host:8000/ws -v

Sends each line you type as a plain text frame and prints the reply as it
streams in (response.output_text.delta / response.output_audio_transcript.delta).
Every frame from the server is an OpenAI Realtime event, unchanged; -v prints
each event's type as well. Errors (OpenAI's own, and the relay's, which have
error.type "relay_error") are always printed. Needs python3-websockets.
"""

import argparse
import asyncio
import json
import sys

import websockets

TEXT_DELTAS = ("response.output_text.delta", "response.output_audio_transcript.delta",
               "response.text.delta", "response.audio_transcript.delta")


mid_line = False  # a reply is being printed on the current line


def line(text):
    global mid_line
    if mid_line:
        print()
        mid_line = False
    print(text, flush=True)


def show(event, verbose):
    """Prints one event; returns True when a response is complete."""
    global mid_line
    kind = event.get("type")
    if kind in TEXT_DELTAS:
        print(event.get("delta", ""), end="", flush=True)
        mid_line = True
    elif kind == "error":
        err = event.get("error") or {}
        line("[error %s/%s] %s" % (err.get("type"), err.get("code"), err.get("message")))
        return True
    elif kind == "response.done":
        status = (event.get("response") or {}).get("status")
        if verbose or status != "completed":
            line("[response.done: %s]" % status)
        elif mid_line:
            print(flush=True)
            mid_line = False
        return True
    elif verbose:
        line("[%s]" % kind)
    return False


async def reader(ws, verbose, turn_done):
    async for frame in ws:
        try:
            event = json.loads(frame)
        except (TypeError, ValueError):
            print("[not JSON] %r" % (frame,), flush=True)
            continue
        if show(event, verbose):
            turn_done.set()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="ws://localhost:8000/ws")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every event's type")
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
                    line = await loop.run_in_executor(None, sys.stdin.readline)
                    if not line:
                        break
                    if line.strip():
                        await say(line.rstrip("\n"))
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
