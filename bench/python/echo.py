#!/usr/bin/python3
"""Python websockets echo server (the stack the documented systems used):
every message goes back to its sender, unchanged. Debian's python3-websockets.

    /usr/bin/python3 bench/python/echo.py [port]   (127.0.0.1 only)
"""
import asyncio
import signal
import sys

import websockets


async def echo(ws, _path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, compression=None, max_queue=None):
        print("python websockets echo listening on ws://127.0.0.1:%d/" % port, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 7850))
