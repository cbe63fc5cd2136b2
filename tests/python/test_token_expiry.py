#!/usr/bin/python3
"""A session ends when its token expires, unless a re-auth refreshed it
(issue 12; docs/protocol.md, close code 4001).

    /usr/bin/python3 tests/python/test_token_expiry.py <wsrelay> <source-dir>

One server, jwt.leeway 1 s, every scenario at once (about 4 s in all):

  * expiring: a token with exp now+0.5 s, which the verifier accepts until
    exp + leeway = now+1.5 s: the session is closed with 4001 "token
    expired" by the once-a-second sweep, not before exp + leeway, within
    ~3.5 s;
  * within the leeway: a token expired 0.5 s ago is accepted, and the
    session closed 0.5 s after (exp + leeway), not at once;
  * refreshed: the same token, then, before it runs out, an auth with a
    token expiring in a minute: still open (heartbeat answered) past the
    first token's expiry;
  * cleared: a re-auth with a token without exp: still open;
  * failed refresh: a re-auth with a badly signed token is refused and
    leaves the old expiry: closed with 4001 all the same;
  * bystander: an unexpiring session sends heartbeats all along; every one
    is answered promptly and it stays open;
  * another dialect (/custom, its own script) sets the expiry itself with
    session:set_expiry(t); one that sets then clears it stays open.

Prints one line per failed check and ends with "N passed, M failed"; exit
code 0 only if all pass.
"""

import asyncio
import json
import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    make_hs256_jwt, Checker, Server, ServerError, clean_env, close_quietly, connect, recv_json, request,
    run_async_main, usage_args)

SECRET = "token-expiry-secret-0123456789"
LEEWAY = 1
HORIZON = 3.5  # every expiring session must be closed by t0 + HORIZON
SLACK = 0.005  # clock reading tolerance (same host, same clock)

CUSTOM_LUA = r"""
-- Another dialect: no JWT, the client states how long it may stay.
local h = {}
function h.login(session, msg)
  session.user = msg.user
  session:set_expiry(relay.time() + msg.seconds)
  return { type = "in" }
end
function h.forever(session, msg)
  session:set_expiry(nil)
  return { type = "forever" }
end
function h.ping(session, msg) return { type = "pong" } end
return h
"""


def make_jwt(claims, secret=SECRET):
    return make_hs256_jwt(claims, secret)


async def open_ws(server, path="/ws"):
    ws = await connect(server.url(path))
    if path == "/ws":
        await recv_json(ws)  # welcome (the custom dialect sends none)
    return ws


async def wait_close(ws, deadline):
    """(code, reason, time) of the close, or None if still open at deadline.
    Frames that arrive meanwhile are skipped."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.time()))
    except asyncio.TimeoutError:
        return None
    except websockets.ConnectionClosed:
        return ws.close_code, ws.close_reason, time.time()


async def check_closed(c, ws, not_before, what):
    got = await wait_close(ws, T0 + HORIZON)
    if not c.check(got is not None, "%s: closed by t0+%.1f s" % (what, HORIZON), "still open"):
        return
    code, reason, at = got
    c.equal((code, reason), (4001, "token expired"), "%s: close code and reason" % what)
    c.check(at >= not_before - SLACK, "%s: not closed before exp + leeway" % what,
            "closed at t0+%.2f s, expiry t0+%.2f s" % (at - T0, not_before - T0))


async def check_open(c, ws, what):
    got = await wait_close(ws, T0 + HORIZON)
    c.check(got is None, "%s: still open at t0+%.1f s" % (what, HORIZON), got)
    if got is None:
        r = await request(ws, {"type": "heartbeat", "id": "late"})
        c.equal((r.get("type"), r.get("id")), ("heartbeat", "late"), "%s: and answering" % what)


async def auth(c, ws, token, what, rid="a"):
    r = await request(ws, {"type": "auth", "id": rid, "token": token})
    c.equal(r.get("type"), "auth.ok", "%s: auth.ok" % what)


async def expiring(c, server):
    # exp half-way between two sweeps (they run once a second from the
    # server's start, just before t0), so closing at exp instead of exp +
    # leeway shows as a close a second early, whatever the sweep's phase.
    ws = await open_ws(server)
    exp = T0 + 0.5
    await auth(c, ws, make_jwt({"sub": "ann", "exp": exp}), "expiring")
    await check_closed(c, ws, exp + LEEWAY, "expiring (exp t0+0.5 s, leeway 1 s)")


async def within_leeway(c, server):
    ws = await open_ws(server)
    exp = T0 - 0.5
    await auth(c, ws, make_jwt({"sub": "late", "exp": exp}), "expired 0.5 s ago, within the leeway")
    await check_closed(c, ws, exp + LEEWAY, "within the leeway")


async def refreshed(c, server):
    ws = await open_ws(server)
    await auth(c, ws, make_jwt({"sub": "bob", "exp": T0 + 1.0}), "refreshed: first token")
    await asyncio.sleep(max(0.0, T0 + 0.8 - time.time()))
    await auth(c, ws, make_jwt({"sub": "bob", "exp": T0 + 60}), "refreshed: fresh token", "a2")
    await check_open(c, ws, "refreshed before expiry")
    await close_quietly(ws)


async def cleared(c, server):
    ws = await open_ws(server)
    await auth(c, ws, make_jwt({"sub": "cid", "exp": T0 + 1.0}), "cleared: first token")
    await auth(c, ws, make_jwt({"sub": "cid"}), "cleared: a token without exp", "a2")
    await check_open(c, ws, "re-auth without exp")
    await close_quietly(ws)


async def failed_refresh(c, server):
    ws = await open_ws(server)
    exp = T0 + 1.0
    await auth(c, ws, make_jwt({"sub": "dan", "exp": exp}), "failed refresh: first token")
    r = await request(ws, {"type": "auth", "id": "bad", "token": make_jwt({"sub": "dan", "exp": T0 + 60}, "x")})
    c.equal((r.get("code"), r.get("message")), ("unauthorized", "invalid token: bad signature"),
            "failed refresh: refused")
    await check_closed(c, ws, exp + LEEWAY, "after a failed refresh")


async def bystander(c, server):
    ws = await open_ws(server)
    await auth(c, ws, make_jwt({"sub": "eve", "exp": T0 + 600}), "bystander")
    answered, slowest, n = 0, 0.0, 0
    while time.time() < T0 + HORIZON:
        n += 1
        sent = time.time()
        r = await request(ws, {"type": "heartbeat", "id": n}, timeout=2)
        slowest = max(slowest, time.time() - sent)
        answered += r.get("type") == "heartbeat" and r.get("id") == n
        await asyncio.sleep(0.2)
    c.check(n >= 10 and answered == n, "bystander: every heartbeat answered", "%d of %d" % (answered, n))
    c.check(slowest < 0.5, "bystander: promptly", "slowest %.3f s" % slowest)
    await check_open(c, ws, "bystander")
    await close_quietly(ws)


async def custom_dialect(c, server):
    ws = await open_ws(server, "/custom")
    keep = await open_ws(server, "/custom")
    start = time.time()
    r = await request(ws, {"type": "login", "user": "x", "seconds": 1})
    c.equal(r.get("type"), "in", "custom dialect: session:set_expiry from its own login")
    r = await request(keep, {"type": "login", "user": "y", "seconds": 1})
    r = await request(keep, {"type": "forever"})
    c.equal(r.get("type"), "forever", "custom dialect: session:set_expiry(nil)")
    await check_closed(c, ws, start + 1, "custom dialect")
    got = await wait_close(keep, T0 + HORIZON)
    c.check(got is None, "custom dialect: a cleared expiry keeps the session open", got)
    await close_quietly(keep)


async def main(c):
    global T0
    binary, _ = usage_args()
    with tempfile.TemporaryDirectory() as folder:
        cfg = os.path.join(folder, "config.json")
        with open(os.path.join(folder, "custom.lua"), "w") as f:
            f.write(CUSTOM_LUA)
        with open(cfg, "w") as f:
            json.dump({"listen": {"host": "127.0.0.1", "port": 0},
                       "jwt": {"secret": SECRET, "leeway": LEEWAY},
                       "endpoints": [{"path": "/ws"}, {"path": "/custom", "script": "custom.lua"}]}, f)
        server = Server(binary, ["--config", cfg])
        try:
            server.start()
        except ServerError as exc:
            c.check(False, "start wsrelay", str(exc))
            return
        try:
            T0 = time.time()
            scenarios = [expiring, within_leeway, refreshed, cleared, failed_refresh, bystander, custom_dialect]
            results = await asyncio.gather(*(s(c, server) for s in scenarios), return_exceptions=True)
            for scenario, result in zip(scenarios, results):
                if isinstance(result, BaseException):
                    c.error(scenario.__name__, result)
            took = time.time() - T0
            c.check(took < HORIZON + 2, "the scenarios took %.1f s" % took)
            c.check(server.wait_for_stderr(lambda lines: sum("token expired; closing with 4001" in l
                                                             for l in lines) >= 4, 2),
                    "the server logs each expiry close", server.stderr_text()[-800:])
        finally:
            rc = server.stop()
            c.check(rc == 0, "wsrelay exits 0 on SIGTERM", "exit code %r" % (rc,))


T0 = 0.0

if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
