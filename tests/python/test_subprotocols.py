#!/usr/bin/python3
"""Issue 12, item 1: an upgrade naming any subprotocol never crashes the relay.

Every protocol a listener carries (the relay, the client side of its upstream
links, a plugin's), an unknown name and lists mixing them are asked for in a
raw upgrade; each gets 101 or a refusal with 400, and a bystander connected
all along keeps getting heartbeat answers. Before the fix one upgrade asking
for "wsrelay-upstream" killed the process with SIGSEGV.

    /usr/bin/python3 tests/python/test_subprotocols.py <wsrelay> <source-dir>
"""

import asyncio
import base64
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import Checker, Server, connect, raw_http, recv_json, request, run_async_main  # noqa: E402


def upgrade(host, port, path, protocols, timeout=5.0):
    """The status line and headers the server answers to an upgrade asking
    for `protocols` (a header value, or None for no header)."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, host, port, key))
    if protocols is not None:
        head += "Sec-WebSocket-Protocol: %s\r\n" % protocols
    data = raw_http(host, port, (head + "\r\n").encode(), timeout, until=b"\r\n\r\n")
    return data.split(b"\r\n\r\n")[0].decode("latin-1")


async def scenario(c, binary, folder, name, config, paths):
    path = os.path.join(folder, name + ".json")
    with open(path, "w") as f:
        json.dump(config, f)
    with Server(binary, ["--config", path]) as server:
        host, port = server.connect_host(), server.port
        bystander = await connect(server.url())
        await recv_json(bystander)
        seq = [0]
        loop = asyncio.get_running_loop()
        asks = ["wsrelay-upstream", "chat, wsrelay-upstream", "wsrelay-upstream, wsrelay", "wsrelay",
                "wsrelay-echo", "chat, wsrelay-echo", "no-such-protocol", "", ",,, ,", "wsrelay-upstream" * 40]
        for target in paths:
            for ask in asks:
                head = await loop.run_in_executor(None, upgrade, host, port, target, ask)
                status = head.split("\r\n")[0]
                first = ask.split(",")[0].strip()
                # A plugin's protocol is the plugin's to accept or refuse (the
                # echo plugin drops a path it does not serve): no status to check.
                plugin_binds = "wsrelay-echo" in ask and "protocols" in config["listen"] and first != "wsrelay-upstream"
                if not plugin_binds:
                    c.check(status.startswith("HTTP/1.1 101") or status.startswith("HTTP/1.1 400")
                            or status.startswith("HTTP/1.1 404"),
                            "%s: upgrade of %s asking for %r: 101, 400 or 404" % (name, target, ask[:40]), status)
                if first == "wsrelay-upstream":
                    c.check(status.startswith("HTTP/1.1 400"),
                            "%s: %s asking first for the upstream links' protocol is refused with 400"
                            % (name, target), status)
                seq[0] += 1
                reply = await request(bystander, {"type": "heartbeat", "id": seq[0]})
                c.check(reply.get("id") == seq[0], "%s: after %r on %s, the bystander still gets heartbeat answers"
                        % (name, ask[:40], target), reply)
        await bystander.close()
        c.check(server.proc.poll() is None, "%s: the server is still running" % name)


async def main(c):
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        await scenario(c, sys.argv[1], folder, "default", {"listen": {"port": 0}, "endpoints": [{"path": "/ws"}]},
                       ["/ws", "/elsewhere", "/"])
        await scenario(c, sys.argv[1], folder, "with-echo-plugin",
                       {"listen": {"port": 0, "protocols": [{"name": "wsrelay-echo", "options": {"path": "/echo"}}]},
                        "endpoints": [{"path": "/ws"}]},
                       ["/ws", "/echo", "/elsewhere"])


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
