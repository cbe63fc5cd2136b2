#!/usr/bin/python3
"""Structured logs: the real server with --log-format json (then text), its
stderr read line by line. Every line of a session's events (open, auth,
script log, script error, upstream connect and failure, slow consumer,
close) carries the session id, the user once authenticated, and the
endpoint; secrets stay redacted, in the new fields too.

    /usr/bin/python3 tests/python/test_logs.py <wsrelay> <source-dir>
"""

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import (Checker, Server, clean_env, connect, recv_until, request,  # noqa: E402
                             run_async_main, send_json)

JWT_SECRET = "log-test-jwt-secret-0123456789"
ADMIN_TOKEN = "log-test-admin-token-9876543210"
UPSTREAM_KEY = "sk-log-test-upstream-key-42"
WAIT = 10.0  # s: how long a line may take to show up (a deadline, not an assertion)

SCRIPT = r"""
-- test_logs.py: one handler per kind of per-session log line.
local h = {}
function h.login(session, msg) session.user = msg.name; return {type = "ok"} end
function h.note(session, msg) relay.log("info", session, "note:", msg.text); return {type = "ok"} end
function h.boom(session, msg) error("boom on purpose") end
function h.up(session, msg) session:upstream_connect(); return {type = "ok"} end
function h.flood(session, msg)
  local chunk = '"' .. string.rep("x", 4000) .. '"'
  for i = 1, 100 do
    if not session:send(chunk) then return nil end
  end
end
function h.on_upstream_close(session, code, reason)
  session:send({type = "upstream_closed", code = code})
end
return h
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder):
    with open(os.path.join(folder, "logs.lua"), "w") as f:
        f.write(SCRIPT)
    config = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "limits": {"max_queue_bytes": 65536},
        "endpoints": [
            {"path": "/ws", "script": "logs.lua", "max_message_size": 1024},
            {"path": "/up/{room}", "script": "logs.lua",
             "upstream": {"url": "ws://127.0.0.1:%d/" % free_port(), "connect": "lazy",
                          "on_close": "keep", "headers": {"Authorization": "Bearer " + UPSTREAM_KEY}}},
        ],
    }
    path = os.path.join(folder, "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def wait_for(server, predicate, what):
    """The first stderr line for which predicate(line) holds, waiting up to WAIT s."""
    deadline = time.monotonic() + WAIT
    while True:
        for line in server.stderr_lines:
            if predicate(line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError("no log line for %s within %.0f s; stderr:\n%s"
                                 % (what, WAIT, server.stderr_text()))
        time.sleep(0.02)


async def run_json(c, binary, config):
    env = clean_env({"WSRELAY_JWT_SECRET": JWT_SECRET, "WSRELAY_ADMIN_TOKEN": ADMIN_TOKEN})
    with Server(binary, ["--config", config, "--log-format", "json"], env=env) as server:
        ws = await connect(server.url("/ws"))
        await request(ws, {"type": "login", "name": "ann"})
        await request(ws, {"type": "note", "text": "hello"})
        await request(ws, {"type": "note", "text": "the token is " + ADMIN_TOKEN})
        reply = await request(ws, {"type": "boom"})
        c.equal(reply.get("code"), "script_error", "a failing handler answers script_error")
        await ws.close()

        up = await connect(server.url("/up/lobby"))
        await request(up, {"type": "login", "name": "bob"})
        await send_json(up, {"type": "up"})
        await recv_until(up, lambda m: m.get("type") == "upstream_closed", timeout=WAIT)
        await up.close()

        flood = await connect(server.url("/ws"))
        await request(flood, {"type": "login", "name": JWT_SECRET})  # a secret as a user name
        await send_json(flood, {"type": "flood"})
        try:
            while True:
                await flood.recv()
        except Exception:  # noqa: BLE001 - closed by the server (1008), as expected
            pass

        def parsed(pred):
            def match(line):
                try:
                    obj = json.loads(line)
                except ValueError:
                    return False
                return isinstance(obj, dict) and pred(obj)
            return match

        def for_user(user, start):
            return parsed(lambda o: o.get("user") == user and o.get("msg", "").startswith(start))

        wait_for(server, for_user("ann", "close "), "ann's close")
        wait_for(server, for_user("bob", "close "), "bob's close")
        wait_for(server, for_user("[redacted]", "close "), "the flooded client's close")

        lines = server.stderr_lines
        objects = []
        bad = []
        for line in lines:
            try:
                objects.append(json.loads(line))
            except ValueError:
                bad.append(line)
        c.check(not bad, "every stderr line is one JSON object", bad[:3])
        c.check(all({"ts", "level", "msg"} <= set(o) for o in objects), "every line has ts, level and msg")

        def one(pred, what):
            found = [o for o in objects if pred(o)]
            c.check(found, what, "none among:\n" + "\n".join(lines))
            return found[0] if found else {}

        opened = one(lambda o: o["msg"].startswith("open /ws "), "an open line for /ws")
        sid = opened.get("session", "")
        c.check(re.fullmatch(r"[0-9a-f]{16}", sid or "") is not None, "the open line has the session id", opened)
        c.equal(opened.get("endpoint"), "/ws", "the open line has the endpoint")
        c.check("user" not in opened, "no user before authentication", opened)

        ann = [o for o in objects if o.get("session") == sid]
        for kind, start in (("auth", "auth: signed in"), ("script log", "logs.lua: note: hello"),
                            ("script error", "logs.lua: handler 'boom' failed"),
                            ("error reply", "error script_error"), ("close", "close code=1000")):
            line = one(lambda o, s=start: o.get("session") == sid and o["msg"].startswith(s),
                       "ann's %s line" % kind)
            c.equal((line.get("user"), line.get("endpoint")), ("ann", "/ws"),
                    "ann's %s line carries user and endpoint" % kind)
        c.check(all(o.get("endpoint") == "/ws" for o in ann), "every line of ann's session names /ws")

        upstream = [o for o in objects if o["msg"].startswith("upstream ")]
        c.check(any(o["msg"].startswith("upstream connecting") for o in upstream), "an upstream connecting line",
                upstream)
        c.check(any(o["msg"].startswith("upstream closed code=1006") for o in upstream),
                "an upstream failure line", upstream)
        c.check(upstream and all((o.get("user"), o.get("endpoint")) == ("bob", "/up/{room}") and o.get("session")
                                 for o in upstream),
                "upstream lines carry bob's session, user and the endpoint", upstream)

        slow = one(lambda o: o["msg"].startswith("slow consumer"), "a slow-consumer line")
        c.equal((slow.get("level"), slow.get("user"), slow.get("endpoint")), ("warn", "[redacted]", "/ws"),
                "the slow-consumer line: warn, the (redacted) user, the endpoint")

        text = "\n".join(lines)
        c.check(JWT_SECRET not in text, "the JWT secret never appears, not even as a user name")
        c.check(UPSTREAM_KEY not in text, "the upstream key never appears")
        c.check(ADMIN_TOKEN not in text and "note: the token is [redacted]" in text,
                "the admin token is redacted from a script's log line")


async def run_text(c, binary, config):
    env = clean_env({"WSRELAY_JWT_SECRET": JWT_SECRET})
    with Server(binary, ["--config", config, "--log-format", "text"], env=env) as server:
        ws = await connect(server.url("/ws"))
        await request(ws, {"type": "login", "name": "carol q"})
        await ws.close()
        close = wait_for(server, lambda line: " close code=" in line, "carol's close (text)")
        m = re.search(r"\[s=([0-9a-f]{16}) user=\"carol q\" endpoint=/ws\] close code=1000", close)
        c.check(m is not None, "text close line: [s=<id> user=\"carol q\" endpoint=/ws]", close)
        sid = m.group(1) if m else "?"
        opened = [ln for ln in server.stderr_lines if "] open /ws " in ln]
        c.check(opened and "[s=%s endpoint=/ws] open /ws from " % sid in opened[0],
                "text open line: [s=<id> endpoint=/ws] (no user yet)", opened)
        auth = [ln for ln in server.stderr_lines if "auth: signed in" in ln]
        c.check(auth and '[s=%s user="carol q" endpoint=/ws] auth: signed in' % sid in auth[0],
                "text auth line carries the user", auth)


async def main(c):
    folder = tempfile.mkdtemp(prefix="wsrelay-logs-")
    try:
        config = write_config(folder)
        await run_json(c, sys.argv[1], config)
        await run_text(c, sys.argv[1], config)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
