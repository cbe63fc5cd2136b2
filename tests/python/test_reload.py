#!/usr/bin/python3
"""Live script reload: routing changes under a connected client, on the same
connection, without dropping it — by SIGHUP and by the file watcher
(watch_scripts). A script that fails to compile keeps the old one running and
the log names file:line. Sessions keep user, attrs and subscriptions.

    /usr/bin/python3 tests/python/test_reload.py <wsrelay> <source-dir>
"""

import asyncio
import os
import signal
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import Checker, Server, connect, request, run_async_main  # noqa: E402

SCRIPT_V1 = """
local h = {}
function h.on_open(s) return { type = "hello", version = 1 } end
function h.login(s, m) s.user = m.name; s.attrs.count = 0; s:subscribe("room"); return { type = "ok" } end
function h.ping(s, m)
  s.attrs.count = s.attrs.count + 1
  return { type = "pong", version = 1, user = s.user, count = s.attrs.count }
end
return h
"""

SCRIPT_V2 = SCRIPT_V1.replace("version = 1", "version = 2").replace(
    "return h", "function h.where(s, m) return { type = 'here', subs = s:subscriptions() } end\nreturn h")

SCRIPT_BROKEN = "local h = {}\nfunction h.ping(s, m)\n  return { type = 'pong' \nend\nreturn h\n"


def write(path, text):
    # Write then rename, as editors do, so the watcher never sees half a file.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


async def wait_for_log(server, needle, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if needle in server.stderr_text():
            return True
        await asyncio.sleep(0.05)
    return False


async def scenario(c, binary, folder, watch):
    script = os.path.join(folder, "router.lua")
    write(script, SCRIPT_V1)
    config = os.path.join(folder, "config.json")
    with open(config, "w") as f:
        f.write('{"listen":{"port":0},"watch_scripts":%s,"endpoints":[{"path":"/ws","script":"router.lua"}]}'
                % ("true" if watch else "false"))
    how = "watcher" if watch else "SIGHUP"
    with Server(binary, ["--config", config]) as server:
        ws = await connect(server.url("/ws"))
        hello = await asyncio.wait_for(ws.recv(), 5)
        c.check('"version":1' in hello, "%s: v1 greets" % how, hello)
        await request(ws, {"type": "login", "name": "ann"})
        got = await request(ws, {"type": "ping"})
        c.equal((got.get("version"), got.get("count")), (1, 1), "%s: v1 answers" % how)

        write(script, SCRIPT_V2)
        if not watch:
            server.proc.send_signal(signal.SIGHUP)
        c.check(await wait_for_log(server, "reloaded router.lua"), "%s: reload logged" % how)
        got = await request(ws, {"type": "ping"})
        c.equal((got.get("version"), got.get("user"), got.get("count")), (2, "ann", 2),
                "%s: same connection, new routing, user and attrs kept" % how)
        got = await request(ws, {"type": "where"})
        c.equal(got.get("subs"), ["room"], "%s: a handler only v2 has works; subscriptions kept" % how)

        write(script, SCRIPT_BROKEN)
        if not watch:
            server.proc.send_signal(signal.SIGHUP)
        c.check(await wait_for_log(server, "reload failed"), "%s: failed reload logged" % how)
        c.check("router.lua:5:" in server.stderr_text() or "router.lua:4:" in server.stderr_text(),
                "%s: the failure names file:line" % how, server.stderr_text()[-300:])
        got = await request(ws, {"type": "ping"})
        c.equal((got.get("version"), got.get("count")), (2, 3), "%s: the old version keeps running" % how)
        c.check(server.alive(), "%s: the server is still running" % how)
        await ws.close()


async def main(c):
    binary = sys.argv[1]
    for watch in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            await scenario(c, binary, folder, watch)


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
