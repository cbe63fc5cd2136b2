#!/usr/bin/python3
"""Reference WebSocket echo server for the WsClient self-test.

Runs on Debian's python3-websockets 10.4, an implementation independent of
both the server under test and tests/support/ws_client.cpp, so the self-test
checks our client against someone else's reading of RFC 6455.

Binds 127.0.0.1 on an ephemeral port and announces it twice: "PORT <n>" on
stdout, and "listening on ws://127.0.0.1:<n>" on stderr, the line
ServerProcess waits for, so the self-test starts it exactly like the real
server. Exits on SIGTERM/SIGINT or when stdin closes (its parent died).

Every text message is echoed as text and every binary one as binary, except
for a few text commands that let the self-test exercise the client's handling
of server-initiated frames:

  !close <code> [reason]   the server closes with that code and reason
  !ping <payload>          the server pings; replies "pong:<payload>" once
                           the client's pong arrives
  !fragments a|b|c         replies with one text message sent as fragments
                           "a", "b", "c" (plus an empty final frame), with a
                           ping interleaved after the first fragment
  !drop                    the server drops TCP without a Close frame

HTTP: "/reject" answers 404 and "/hello" 200 "hello\\n" (for http_get);
anything else is a WebSocket endpoint. Each finished connection logs
"closed code=<code received from the client>" on stderr.
"""

import asyncio
import http
import os
import signal
import sys
import threading

import websockets


async def process_request(path, request_headers):
    if path == "/reject":
        return http.HTTPStatus.NOT_FOUND, [("Content-Type", "text/plain")], b"rejected\n"
    if path == "/hello":
        return http.HTTPStatus.OK, [("Content-Type", "text/plain")], b"hello\n"
    return None


async def fragments_with_ping(ws, parts):
    # An async generator lets websockets interleave our ping between the
    # fragments, the case RFC 6455 5.4 says a client must handle.
    yield parts[0]
    await ws.ping(b"mid-fragment")
    for part in parts[1:]:
        yield part


async def echo(ws):
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("!"):
                command, _, arg = message.partition(" ")
                if command == "!close":
                    code, _, reason = arg.partition(" ")
                    await ws.close(int(code), reason)
                    break
                if command == "!ping":
                    waiter = await ws.ping(arg.encode())
                    await asyncio.wait_for(waiter, timeout=5)
                    await ws.send("pong:" + arg)
                    continue
                if command == "!fragments":
                    await ws.send(fragments_with_ping(ws, arg.split("|")))
                    continue
                if command == "!drop":
                    ws.transport.abort()
                    break
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        await ws.wait_closed()
        print(f"closed code={ws.close_code}", file=sys.stderr, flush=True)


def watch_stdin(loop, stop):
    # A thread rather than loop.add_reader: stdin may be a pipe, a tty or
    # /dev/null, and a blocking read copes with all of them. os.read, not
    # sys.stdin: a daemon thread blocked inside the buffered reader holds its
    # lock, and the interpreter aborts on that lock at shutdown.
    try:
        while os.read(0, 4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()

    async with websockets.serve(
        echo,
        "127.0.0.1",
        0,
        process_request=process_request,
        ping_interval=None,  # no unsolicited pings: the self-test expects exact frames
        max_size=64 * 1024 * 1024,
        compression=None,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        print(f"listening on ws://127.0.0.1:{port}", file=sys.stderr, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
