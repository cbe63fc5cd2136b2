#!/usr/bin/python3
"""Scripts that reach the outside (issue 16): relay.http.request against a real
FastAPI backend (tests/python/reach_backend.py under uvicorn, on an ephemeral
port, started here), its faults and limits, waiting handlers and their order,
relay.after / relay.every, session.headers / query / cookies, on_upgrade, and
an on_open that asks the backend.

    /usr/bin/python3 tests/python/test_script_reach.py <wsrelay> <source-dir>

Every fault is run with a bystander session whose ping must be answered
meanwhile: nothing a waiting handler does may hold the loop.
"""

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import websockets  # noqa: E402

from wsrelay_harness import (Checker, Server, _die_with_parent, close_quietly, connect,  # noqa: E402
                             expect_silence, http_get, raw_http, recv_json, run_async_main, send_json)

# ---- the scripts -------------------------------------------------------------------

REACH_LUA = r"""
local VERSION = 1
local B = relay.options
local h = {}
local stop_handles = {}

local function url(m) return B[m.base or "backend"] .. (m.path or "/echo") end

function h.ping(s, m) return { type = "pong", id = m.id, version = VERSION } end

function h.fetch(s, m)
  local t0 = relay.now()
  local res, err = relay.http.request{ method = m.method, url = url(m), headers = m.headers,
    json = m.json, body = m.body, timeout = m.timeout, max_size = m.max_size, tls_insecure = m.tls_insecure }
  if not res then return nil, "http_failed", err end
  local out = { type = "fetched", id = m.id, status = res.status, headers = res.headers,
    json = res.json, json_error = res.json_error, body_len = #res.body, ms = relay.now() - t0 }
  if m.want_body then out.body = res.body end
  return out
end

function h.both(s, m)
  relay.http.request{ url = B.backend .. "/echo", body = "x", json = { a = 1 } }
  return { type = "unreachable" }
end

function h.wrap(s, m)
  local f = coroutine.wrap(function() return relay.http.request{ url = B.backend .. "/echo" } end)
  f()
  return { type = "unreachable" }
end

function h.yield(s, m)
  coroutine.yield(1)
  return { type = "unreachable" }
end

function h.arm_close(s, m)
  s.attrs.wait_on_close = true
  return { type = "armed", id = m.id }
end

function h.on_close(s, code, reason)
  if s.attrs.wait_on_close then relay.http.request{ url = B.backend .. "/echo" } end
end

function h.hs(s, m)
  return { type = "hs", id = m.id, headers = s.headers, query = s.query, cookies = s.cookies }
end

function h.slow(s, m)
  local res, err = relay.http.request{ url = B.backend .. "/sleep?s=" .. (m.s or 0.5) }
  return { type = "slow", id = m.id, status = res and res.status, err = err }
end

function h.quick(s, m) return { type = "quick", id = m.id } end

function h.after(s, m)
  relay.after(m.s, function() s:send({ type = "fired", id = m.id }) end)
  return { type = "after.ok", id = m.id }
end

function h.after_wait(s, m)
  relay.after(0, function()
    local res, err = relay.http.request{ url = B.backend .. "/status/201" }
    s:send({ type = "timer_fetched", id = m.id, status = res and res.status, err = err })
  end)
  return { type = "after_wait.ok", id = m.id }
end

function h.every(s, m)
  local n, handle = 0, nil
  handle = relay.every(m.s, function()
    n = n + 1
    s:send({ type = "tick", n = n })
    if n == 3 then
      local first = handle:cancel()
      local second = handle:cancel()
      s:send({ type = "cancelled", first = first, second = second })
    end
  end)
  return { type = "every.ok", id = m.id }
end

function h.every_slow(s, m)
  local started = 0
  local handle = relay.every(0.1, function()
    started = started + 1
    relay.http.request{ url = B.backend .. "/sleep?s=0.35" }
  end)
  relay.after(1.05, function()
    handle:cancel()
    s:send({ type = "every_slow", started = started })
  end)
  return { type = "every_slow.ok", id = m.id }
end

function h.every_err(s, m)
  local n = 0
  stop_handles[s] = relay.every(m.s, function()
    n = n + 1
    s:send({ type = "tick_err", n = n })
    error("boom " .. n)
  end)
  return { type = "every_err.ok", id = m.id }
end

function h.stop(s, m)
  local handle = stop_handles[s]
  stop_handles[s] = nil
  return { type = "stopped", id = m.id, was = handle ~= nil and handle:cancel() }
end

function h.spin(s, m)
  relay.after(0, function() local x = 0 while true do x = x + 1 end end)
  return { type = "spin.ok", id = m.id }
end

function h.rtick(s, m)
  relay.every(0.05, function() s:send({ type = "rtick", version = VERSION }) end)
  return { type = "rtick.ok", id = m.id }
end

-- HTTP routes wait like handlers.
h.http = {
  ["GET /r/slow"] = function(req)
    local res, err = relay.http.request{ url = B.backend .. "/sleep?s=" .. (req.query:match("s=([%d.]+)") or "1") }
    if not res then return { status = 502, json = { error = err } } end
    return { status = 200, json = { waited = true, backend = res.json } }
  end,
  ["GET /r/boom"] = function(req)
    relay.http.request{ url = B.backend .. "/sleep?s=0.1" }
    error("route failed after waiting")
  end,
}

return h
"""

GATE_LUA = r"""
local B = relay.options
local h = {}
local last = {}

function h.on_upgrade(req)
  local t = req.query.token
  if t == nil then return { status = 401, body = "token required" } end
  if t == "boom" then error("upgrade exploded") end
  if t == "wait" then relay.http.request{ url = B.backend .. "/echo" } end
  last = { path = req.path, room = req.params.room, remote = req.remote, sid = req.cookies.sid,
           host = req.headers.host, token = t }
  return { user = "u-" .. t }
end

function h.on_open(s)
  return { type = "welcome", user = s.user, seen = last }
end

return h
"""

AUTH_LUA = r"""
local B = relay.options
local h = {}
local unauth_handled = 0

function h.on_open(s)
  local res, err = relay.http.request{ url = B.backend .. "/ws/connect",
    json = { token = s.query.token, cookie = s.cookies.sid, delay = 0.3 } }
  if not res then s:close(4502, "backend unavailable") return end
  if res.status ~= 200 then s:close(4003, "refused by the backend") return end
  s.user = res.json.user
  return { type = "welcome", user = s.user }
end

function h.echo(s, m)
  if s.user == nil then unauth_handled = unauth_handled + 1 end
  return { type = "echo", n = m.n, user = s.user }
end

function h.count(s, m) return { type = "count", unauth = unauth_handled } end

return h
"""

LIMITS_LUA = r"""
local B = relay.options
local h = {}

function h.ping(s, m) return { type = "pong", id = m.id } end

function h.burst(s, m)
  for i = 1, m.n do
    relay.after(0, function()
      local res, err = relay.http.request{ url = B.backend .. "/sleep?s=" .. m.s, timeout = 10 }
      s:send({ type = "burst", i = i, ok = res ~= nil, err = err })
    end)
  end
  return { type = "burst.ok" }
end

function h.one(s, m)
  local res, err = relay.http.request{ url = B.backend .. "/echo" }
  return { type = "one", ok = res ~= nil, err = err }
end

function h.flood(s, m)
  local make = m.every and relay.every or relay.after
  local handles, err = {}, nil
  while #handles < 10000 do
    local ok, handle = pcall(make, 1000, function() end)
    if not ok then err = handle break end
    handles[#handles + 1] = handle
  end
  for _, handle in ipairs(handles) do handle:cancel() end
  return { type = "flood", count = #handles, err = err }
end

return h
"""

# ---- helpers -----------------------------------------------------------------------


def line_of(text, needle):
    for i, line in enumerate(text.split("\n"), 1):
        if needle in line:
            return i
    raise ValueError(needle)


class Backend:
    """reach_backend.py under uvicorn, on a socket bound here to port 0."""

    def __init__(self, tls=None):
        self.proc = None
        self.port = None
        self.tls = tls  # (certfile, keyfile): served over https
        # Its log (a client that hangs up mid-answer makes asyncio complain at
        # every write): kept out of the test's output, shown if it dies.
        self.log = tempfile.TemporaryFile()

    def start(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        fd = sock.fileno()
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "uvicorn", "--app-dir", HERE, "reach_backend:app", "--fd", str(fd),
             "--log-level", "warning", "--no-access-log", "--backlog", "512"] +
            (["--ssl-certfile", self.tls[0], "--ssl-keyfile", self.tls[1]] if self.tls else []),
            pass_fds=[fd], stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        sock.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("uvicorn exited with %s: %s" % (self.proc.returncode, self.log_tail()))
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("uvicorn did not answer /healthz within 20 s")

    def get(self, path):
        if self.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def log_tail(self, n=2000):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-n:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is not None:
            print("uvicorn died with %s; its log ends:\n%s" % (self.proc.returncode, self.log_tail()), flush=True)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def mid_body_server():
    """A raw HTTP server that promises 1000 bytes, sends 10 and closes."""
    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n0123456789")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def wait_log(server, pred, timeout=5.0):
    """The first stderr line pred() accepts, waiting for it (read by a thread)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in server.stderr_lines:
            if pred(line):
                return line
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.03)


async def status_of(server):
    loop = asyncio.get_running_loop()
    st, _, body = await loop.run_in_executor(None, lambda: http_get(server.connect_host(), server.port, "/status"))
    return json.loads(body) if st == 200 else {}


_ids = [0]


def next_id():
    _ids[0] += 1
    return _ids[0]


async def call(ws, obj, timeout=5.0):
    obj = dict(obj)
    obj.setdefault("id", next_id())
    await send_json(ws, obj)
    return await recv_json(ws, timeout)


async def with_bystander(by, coro, what, c, bound=0.3):
    """Runs coro while `by` pings (one at a time); returns coro's result.
    Every ping must be answered within `bound` seconds."""
    task = asyncio.ensure_future(coro)
    rtts = []
    while True:
        t0 = time.monotonic()
        reply = await call(by, {"type": "ping"}, timeout=5)
        rtts.append(time.monotonic() - t0)
        if reply.get("type") != "pong":
            c.check(False, "%s: the bystander's ping is answered" % what, reply)
        if task.done():
            break
        await asyncio.sleep(0.02)
    c.check(max(rtts) < bound, "%s: a bystander's ping is answered meanwhile (< %.0f ms)" % (what, bound * 1000),
            "slowest %.1f ms of %d" % (max(rtts) * 1000, len(rtts)))
    return await task, rtts


def err_of(reply):
    return reply.get("message") if reply.get("type") == "error" else None


# ---- scenarios -----------------------------------------------------------------------


async def http_requests(c, server, by):
    ws = await connect(server.url("/ws"))
    try:
        r = await call(ws, {"type": "fetch", "path": "/echo?a=1&b=x%20y", "headers": {"X-Custom-Thing": "v1"},
                            "want_body": True})
        c.equal(r.get("type"), "fetched", "GET: answered")
        c.equal(r.get("status"), 200, "GET: status 200")
        j = r.get("json") or {}
        c.equal(j.get("method"), "GET", "GET: method defaults to GET")
        c.equal(j.get("query"), {"a": "1", "b": "x y"}, "GET: the query string reaches the backend")
        c.equal((j.get("headers") or {}).get("x-custom-thing"), "v1", "GET: a request header reaches the backend")
        hd = r.get("headers") or {}
        c.equal(hd.get("x-mixed-case"), "Yes", "res.headers: names lower-cased")
        c.check(not any(k != k.lower() for k in hd), "res.headers: no upper-case name", sorted(hd))
        c.equal(hd.get("x-multi"), "one, two", "res.headers: a repeated header joined with ', '")
        c.check((hd.get("content-type") or "").startswith("application/json"), "res.headers: content-type", hd)
        c.check(isinstance(r.get("body"), str) and json.loads(r["body"]) == j, "res.body is the raw answer")
        c.check("json_error" not in r, "res.json_error absent when the JSON parses", r.get("json_error"))

        r = await call(ws, {"type": "fetch", "json": {"k": "v", "n": [1, 2], "o": {"x": True}}})
        j = r.get("json") or {}
        c.equal(j.get("method"), "POST", "json=: method defaults to POST")
        c.equal(j.get("json"), {"k": "v", "n": [1, 2], "o": {"x": True}}, "json=: the body is the encoded value")
        c.equal((j.get("headers") or {}).get("content-type"), "application/json", "json=: Content-Type set")

        r = await call(ws, {"type": "fetch", "method": "put", "body": "hello", "headers": {"Content-Type": "text/plain"}})
        j = r.get("json") or {}
        c.equal((j.get("method"), j.get("body"), (j.get("headers") or {}).get("content-type")),
                ("PUT", "hello", "text/plain"), "body= with a method in lower case and a content-type")

        for code in (201, 404, 500):
            r = await call(ws, {"type": "fetch", "path": "/status/%d" % code})
            c.equal((r.get("type"), r.get("status"), r.get("json")), ("fetched", code, {"code": code}),
                    "status %d reaches the script with its JSON" % code)

        r = await call(ws, {"type": "fetch", "path": "/plain"})
        c.check(r.get("status") == 200 and "json" not in r and "json_error" not in r,
                "text/plain that looks like JSON: no res.json, no json_error", r)

        r = await call(ws, {"type": "both"})
        c.equal((r.get("type"), r.get("code")), ("error", "script_error"), "body and json both: script_error")
        line = await wait_log(server, lambda l: "give body or json, not both" in l)
        c.check(line is not None and "reach.lua" in line, "body and json both: the log names the reason", line)

        # A timer's callback may wait too.
        r = await call(ws, {"type": "after_wait"})
        got = await recv_json(ws, 5)
        c.equal((got.get("type"), got.get("status")), ("timer_fetched", 201), "a relay.after callback waits on the backend")
    finally:
        await close_quietly(ws)


async def faults(c, server, by, backend, down_port, raw_port):
    ws = await connect(server.url("/ws"))
    try:
        async def fetch(**kw):
            t0 = time.monotonic()
            r = await call(ws, dict(type="fetch", **kw), timeout=10)
            return r, time.monotonic() - t0

        (r, dt), _ = await with_bystander(by, fetch(base="down", path="/echo"), "backend down", c)
        c.equal(r.get("code"), "http_failed", "backend down: an error reply")
        c.check((err_of(r) or "").startswith("connect failed: "), "backend down: 'connect failed: ...'", r)

        (r, dt), rtts = await with_bystander(by, fetch(path="/sleep?s=30", timeout=1), "slow backend", c)
        c.equal(err_of(r), "timeout", "slow backend, timeout=1: 'timeout'")
        c.check(0.8 <= dt <= 2.5, "slow backend: the timeout comes after ~1 s", "%.2f s" % dt)
        c.check(len(rtts) >= 5, "slow backend: the bystander was served all along", len(rtts))
        print("slow backend: timeout after %.2f s; bystander slowest ping %.1f ms of %d"
              % (dt, max(rtts) * 1000, len(rtts)), flush=True)

        (r, dt), _ = await with_bystander(by, fetch(path="/status/500"), "500", c)
        c.equal((r.get("type"), r.get("status")), ("fetched", 500), "500: the script gets the status")

        for length in (1, 0):
            what = "50 MB body (%s)" % ("Content-Length" if length else "chunked")
            (r, dt), _ = await with_bystander(by, fetch(path="/big?mb=50&length=%d" % length), what, c)
            c.equal(err_of(r), "too large", "%s beyond limits.http_response_bytes (4 MiB): 'too large'" % what)
            print("%s: refused after %.2f s" % (what, dt), flush=True)

        (r, dt), _ = await with_bystander(by, fetch(path="/big?mb=1&length=0", max_size=2048), "max_size", c)
        c.equal(err_of(r), "too large", "a chunked 1 MiB answer over max_size=2048: 'too large'")

        (r, dt), _ = await with_bystander(by, fetch(path="/big?mb=1&length=1", max_size=1100000), "max_size ok", c)
        c.equal((r.get("status"), r.get("body_len")), (200, 1048576), "1 MiB under max_size: answered whole")

        (r, dt), _ = await with_bystander(by, fetch(base="raw", path="/x"), "closed mid-body", c)
        c.check((err_of(r) or "").startswith("closed mid-body: "), "closes mid-body: 'closed mid-body: ...'", r)

        (r, dt), _ = await with_bystander(by, fetch(path="/badjson"), "invalid JSON", c)
        c.check(r.get("type") == "fetched" and r.get("status") == 200 and "json" not in r,
                "invalid JSON with content-type json: res.json nil", r)
        c.check(isinstance(r.get("json_error"), str) and r["json_error"] != "", "invalid JSON: res.json_error set", r)
    finally:
        await close_quietly(ws)


async def ordering(c, server, by):
    a = await connect(server.url("/ws"))
    try:
        t0 = time.monotonic()
        for obj in ({"type": "slow", "s": 0.5, "id": "A"}, {"type": "quick", "id": "B"}, {"type": "quick", "id": "C"}):
            await send_json(a, obj)
        pong = await call(by, {"type": "ping"})
        t_pong = time.monotonic() - t0
        got = []
        for _ in range(3):
            got.append((await recv_json(a, 5)).get("id"))
            if len(got) == 1:
                t_a = time.monotonic() - t0
        c.equal(got, ["A", "B", "C"], "one session's replies in order across a waiting handler")
        c.check(t_a >= 0.45, "A waited on the backend", "%.2f s" % t_a)
        c.check(pong.get("type") == "pong" and t_pong < t_a and t_pong < 0.2,
                "another session is served while A waits", "pong %.3f s, A %.3f s" % (t_pong, t_a))

        # waiting_messages = 3: the 4th and 5th behind the waiting handler are refused at once.
        for obj in [{"type": "slow", "s": 1, "id": 10}] + [{"type": "quick", "id": i} for i in range(11, 16)]:
            await send_json(a, obj)
        frames = [await recv_json(a, 5) for _ in range(6)]
        c.equal([(f.get("type"), f.get("id"), f.get("code")) for f in frames],
                [("error", 14, "busy"), ("error", 15, "busy"), ("slow", 10, None),
                 ("quick", 11, None), ("quick", 12, None), ("quick", 13, None)],
                "waiting_messages overflow: 'busy' at once, the queued ones after in order")
        c.equal(frames[0].get("message"),
                "3 messages already wait behind a handler that is waiting (limits.waiting_messages)",
                "busy: the documented message")
    finally:
        await close_quietly(a)


async def many_waiting(c, server, by, backend):
    n = 100
    clients = await asyncio.gather(*[connect(server.url("/ws"), timeout=10) for _ in range(n)])
    try:
        t0 = time.monotonic()
        for i, ws in enumerate(clients):
            await send_json(ws, {"type": "fetch", "path": "/sleep?s=2", "id": i})
        replies = asyncio.ensure_future(asyncio.gather(*[recv_json(ws, 10) for ws in clients]))
        await asyncio.sleep(0.1)  # let the requests reach the backend before measuring
        rtts = []
        while time.monotonic() - t0 < 1.7 and not replies.done():
            t1 = time.monotonic()
            r = await call(by, {"type": "ping"})
            rtts.append(time.monotonic() - t1)
            c.check(r.get("type") == "pong", "100 waiting: the bystander gets pong", r)
            await asyncio.sleep(0.05)
        waiting_then = len(rtts) > 0 and not replies.done()
        got = await replies
        elapsed = time.monotonic() - t0
        c.check(waiting_then, "100 waiting: the pings were answered while the 100 waited")
        c.check(rtts and max(rtts) < 0.5, "100 waiting: the bystander's heartbeat answered in < 500 ms",
                "slowest %.1f ms" % (max(rtts) * 1000 if rtts else -1))
        c.equal(sorted((g.get("type"), g.get("status")) for g in got), [("fetched", 200)] * n,
                "100 waiting: all answered")
        c.check(1.9 <= elapsed < 6, "100 waiting: answered together (~2 s, not one after another)", "%.2f s" % elapsed)
        _, stats = backend.get("/stats")
        c.check(stats.get("max", 0) >= n, "100 waiting: the backend saw them all at once", stats)
        srt = sorted(rtts)
        print("100 sessions waiting 2 s on the backend: bystander ping p50 %.1f ms, max %.1f ms (%d pings); "
              "all 100 answered after %.2f s" % (srt[len(srt) // 2] * 1000, srt[-1] * 1000, len(srt), elapsed),
              flush=True)
    finally:
        await asyncio.gather(*[close_quietly(ws) for ws in clients])


async def timers(c, server, by, script_text):
    ws = await connect(server.url("/ws"))
    try:
        t0 = time.monotonic()
        r = await call(ws, {"type": "after", "s": 0.3})
        c.equal(r.get("type"), "after.ok", "relay.after: the handler returns at once")
        fired = await recv_json(ws, 3)
        dt = time.monotonic() - t0
        c.equal(fired.get("type"), "fired", "relay.after fires")
        c.check(0.28 <= dt <= 0.8, "relay.after(0.3) fires after about 0.3 s", "%.3f s" % dt)
        c.equal(await expect_silence(ws, 0.4), None, "relay.after fires once")
        print("relay.after(0.3) fired after %.3f s" % dt, flush=True)

        r = await call(ws, {"type": "every", "s": 0.1})
        stamps, frames = [], []
        for _ in range(4):
            frames.append(await recv_json(ws, 3))
            stamps.append(time.monotonic())
        c.equal([f.get("n") for f in frames[:3]], [1, 2, 3], "relay.every repeats")
        c.equal((frames[3].get("type"), frames[3].get("first"), frames[3].get("second")), ("cancelled", True, False),
                ":cancel() returns true, then false")
        gaps = [b - a for a, b in zip(stamps[:3], stamps[1:3])]
        c.check(all(0.06 <= g <= 0.3 for g in gaps), "relay.every(0.1): ticks about 0.1 s apart",
                ["%.3f" % g for g in gaps])
        c.equal(await expect_silence(ws, 0.35), None, "a cancelled every stops")

        # An every whose last run still waits skips its tick.
        r = await call(ws, {"type": "every_slow"})
        r = await recv_json(ws, 5)
        c.check(r.get("type") == "every_slow" and 2 <= r.get("started", 0) <= 4,
                "relay.every(0.1) whose run waits 0.35 s: ticks skipped, not piled up (2..4 runs in 1.05 s)", r)

        # A failing every: logged with file:line, counted, keeps going.
        before = (await status_of(server)).get("script_errors", 0)
        await call(ws, {"type": "every_err", "s": 0.1})
        ns = [(await recv_json(ws, 3)).get("n") for _ in range(3)]
        r = await call(ws, {"type": "stop"})
        while r.get("type") == "tick_err":
            r = await recv_json(ws, 3)
        c.equal(ns, [1, 2, 3], "a timer that raises: relay.every keeps going")
        c.equal((r.get("type"), r.get("was")), ("stopped", True), "the failing every cancelled")
        where = "reach.lua:%d: boom" % line_of(script_text, 'error("boom "')
        line = await wait_log(server, lambda l: "timer failed:" in l and where in l)
        c.check(line is not None, "a timer's error is logged '<script>: timer failed: %s ...'" % where,
                [l for l in server.stderr_lines if "timer failed" in l][-2:])
        after = (await status_of(server)).get("script_errors", 0)
        c.check(after - before >= 3, "a timer's errors are counted in /status script_errors", (before, after))

        # A timer that loops forever: stopped by the instruction budget; the server goes on.
        st = await status_of(server)
        r = await call(ws, {"type": "spin"})
        c.equal(r.get("type"), "spin.ok", "spin: started")
        line = await wait_log(server, lambda l: "timer failed:" in l and "instruction budget" in l, timeout=10)
        c.check(line is not None, "an endless timer is stopped by the instruction budget (logged)",
                [l for l in server.stderr_lines if "timer failed" in l][-2:])
        r = await call(by, {"type": "ping"})
        c.equal(r.get("type"), "pong", "the server keeps serving after an endless timer")
        st2 = await status_of(server)
        c.check(st2.get("script_errors", 0) > st.get("script_errors", 0), "an endless timer is counted in script_errors",
                (st.get("script_errors"), st2.get("script_errors")))
        c.check(st2.get("script_timeouts", 0) > st.get("script_timeouts", 0) or "script_timeouts" not in st2,
                "an endless timer is counted in script_timeouts", (st.get("script_timeouts"), st2.get("script_timeouts")))
    finally:
        await close_quietly(ws)


async def cannot_wait(c, server):
    ws = await connect(server.url("/ws"))
    try:
        r = await call(ws, {"type": "wrap"})
        c.equal((r.get("type"), r.get("code")), ("error", "script_error"), "waiting inside coroutine.wrap: script_error")
        line = await wait_log(server, lambda l: "cannot wait inside a coroutine the script created" in l)
        c.check(line is not None and "handler 'wrap' failed" in line, "coroutine.wrap: the log names the reason", line)

        r = await call(ws, {"type": "yield"})
        c.equal((r.get("type"), r.get("code")), ("error", "script_error"), "coroutine.yield in a handler: script_error")
        line = await wait_log(server, lambda l: "coroutine.yield outside a coroutine the script created" in l)
        c.check(line is not None and "handler 'yield' failed" in line, "coroutine.yield: the log names the reason", line)

        r = await call(ws, {"type": "ping"})
        c.equal(r.get("type"), "pong", "the session still works after those failures")

        r = await call(ws, {"type": "arm_close"})
        c.equal(r.get("type"), "armed", "on_close armed")
    finally:
        await close_quietly(ws)
    line = await wait_log(server, lambda l: "handler 'on_close' failed" in l)
    c.check(line is not None and "cannot wait here" in line, "waiting in on_close: logged with the reason", line)


async def handshake(c, server):
    headers = {"Cookie": "sid=s1; theme=dark", "X-Api-Key": "k-123secret", "X-Not-Listed": "nope",
               "Accept-Language": "fr"}
    ws = await connect(server.url("/ws?token=a%20b&x=1&x=2"), extra_headers=headers)
    try:
        r = await call(ws, {"type": "hs"})
        hd = r.get("headers") or {}
        c.equal(r.get("query"), {"token": "a b", "x": "1"}, "session.query: decoded, the first of a repeated name")
        c.equal(r.get("cookies"), {"sid": "s1", "theme": "dark"}, "session.cookies")
        c.equal(hd.get("x-api-key"), "k-123secret", "session.headers: a handshake_headers header")
        c.check("x-not-listed" not in hd, "session.headers: a header not listed is absent", sorted(hd))
        c.equal(hd.get("cookie"), "sid=s1; theme=dark", "session.headers.cookie")
        c.equal(hd.get("accept-language"), "fr", "session.headers: a known header")
        c.check(hd.get("host", "").endswith(":%d" % server.port), "session.headers.host", hd.get("host"))
        c.check(not any(k != k.lower() for k in hd), "session.headers: lower-case names", sorted(hd))
    finally:
        await close_quietly(ws)
    # Escapes decoded once: an escaped '&' or '%' is part of the value.
    ws = await connect(server.url("/ws?p=x%26y&q=100%25&r=a+b&e=&%41=z&d=%2541"))
    try:
        r = await call(ws, {"type": "hs"})
        c.equal(r.get("query"), {"p": "x&y", "q": "100%", "r": "a b", "e": "", "A": "z", "d": "%41"},
                "session.query: %26, %25, '+', an empty value, an escaped name, %2541, each decoded once")
    finally:
        await close_quietly(ws)
    ws = await connect(server.url("/ws"))
    try:
        r = await call(ws, {"type": "hs"})
        c.check(not r.get("query") and not r.get("cookies"), "no query, no cookie: empty tables", r)
    finally:
        await close_quietly(ws)

    # on_upgrade on /gate/{room}
    host, port = server.connect_host(), server.port

    def raw_upgrade(path, extra=""):
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
               % (path, host, port, extra))
        out = raw_http(host, port, req.encode(), timeout=5)
        head, _, body = out.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        return status, body.decode("utf-8", "replace")

    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, raw_upgrade, "/gate/r1")
    c.check(" 401 " in status + " ", "on_upgrade refusal: HTTP 401", status)
    c.check(body.startswith("token required"), "on_upgrade refusal: the script's body", body)
    try:
        ws = await connect(server.url("/gate/r1"))
        await close_quietly(ws)
        c.check(False, "on_upgrade refusal: websockets is refused")
    except websockets.exceptions.InvalidStatusCode as exc:
        c.equal(exc.status_code, 401, "on_upgrade refusal: websockets sees 401")

    ws = await connect(server.url("/gate/r1?token=alice"), extra_headers={"Cookie": "sid=zz"})
    try:
        w = await recv_json(ws, 5)
        c.equal((w.get("type"), w.get("user")), ("welcome", "u-alice"), "on_upgrade {user=}: session.user set before on_open")
        seen = w.get("seen") or {}
        c.equal((seen.get("path"), seen.get("room"), seen.get("sid"), seen.get("token")),
                ("/gate/r1", "r1", "zz", "alice"), "on_upgrade req: path, params, cookies, query")
        c.check(seen.get("remote") in ("127.0.0.1", "::1", "::ffff:127.0.0.1") and seen.get("host"),
                "on_upgrade req: remote, headers", seen)
    finally:
        await close_quietly(ws)

    for token, reason in (("boom", "upgrade exploded"), ("wait", "cannot wait here")):
        status, body = await loop.run_in_executor(None, raw_upgrade, "/gate/r1?token=" + token)
        c.check(" 500 " in status + " ", "on_upgrade that %s: HTTP 500" % ("raises" if token == "boom" else "waits"),
                status)
        line = await wait_log(server, lambda l: "handler 'on_upgrade' failed" in l and reason in l)
        c.check(line is not None, "on_upgrade failure logged: %s" % reason,
                [l for l in server.stderr_lines if "on_upgrade" in l][-2:])
    line = await wait_log(server, lambda l: "upgrade exploded" in l)
    c.check(line is not None and re.search(r"gate\.lua:\d+: upgrade exploded", line), "on_upgrade error: file:line", line)

    text = server.stderr_text()
    c.check("k-123secret" not in text and "sid=s1" not in text and "sid=zz" not in text,
            "handshake secrets (x-api-key, cookie) never in the log")


async def on_open_waits(c, server):
    # Accepted by the backend: messages sent while on_open waits are handled after it, in order.
    ws = await connect(server.url("/auth?token=good"))
    try:
        t0 = time.monotonic()
        await send_json(ws, {"type": "echo", "n": 1})
        await send_json(ws, {"type": "echo", "n": 2})
        frames = [await recv_json(ws, 5) for _ in range(3)]
        dt = time.monotonic() - t0
        c.equal([(f.get("type"), f.get("n"), f.get("user")) for f in frames],
                [("welcome", None, "alice"), ("echo", 1, "alice"), ("echo", 2, "alice")],
                "on_open waits on POST /ws/connect; messages sent meanwhile follow it in order")
        c.check(dt >= 0.25, "on_open really waited on the backend", "%.2f s" % dt)
    finally:
        await close_quietly(ws)

    ws = await connect(server.url("/auth"), extra_headers={"Cookie": "sid=sess-ok"})
    try:
        w = await recv_json(ws, 5)
        c.equal((w.get("type"), w.get("user")), ("welcome", "alice"), "on_open: auth by cookie through the backend")
    finally:
        await close_quietly(ws)

    # Refused: closed with the script's code; the messages sent meanwhile are not handled.
    ws = await connect(server.url("/auth?token=bad"))
    frames = []
    try:
        for n in (1, 2, 3):
            await send_json(ws, {"type": "echo", "n": n})
        try:
            while True:
                frames.append(await recv_json(ws, 5))
        except websockets.ConnectionClosed:
            pass
        c.equal((ws.close_code, ws.close_reason), (4003, "refused by the backend"),
                "on_open refusal: closed with the script's code and reason")
        c.equal(frames, [], "on_open refusal: nothing handled, nothing sent")
    finally:
        await close_quietly(ws)
    ws = await connect(server.url("/auth?token=good"))
    try:
        await recv_json(ws, 5)
        r = await call(ws, {"type": "count"})
        c.equal(r.get("unauth"), 0, "on_open refusal: the queued messages never reached a handler")
    finally:
        await close_quietly(ws)


async def reload_cancels(c, server, script_path, script_text):
    ws = await connect(server.url("/ws"))
    try:
        r = await call(ws, {"type": "rtick"})
        c.equal(r.get("type"), "rtick.ok", "reload: ticking timer started")
        ticks = [await recv_json(ws, 3) for _ in range(2)]
        c.equal([t.get("version") for t in ticks], [1, 1], "reload: v1's every ticks")
        st = await status_of(server)
        c.check(st.get("timers", 0) >= 1, "/status timers counts the live every", st.get("timers"))
        with open(script_path + ".tmp", "w") as f:
            f.write(script_text.replace("local VERSION = 1", "local VERSION = 2"))
        os.replace(script_path + ".tmp", script_path)
        mark = len(server.stderr_lines)
        server.proc.send_signal(signal.SIGHUP)
        line = await wait_log(server, lambda l: "reloaded reach.lua" in l)
        c.check(line is not None, "reload: logged", server.stderr_lines[mark:][-3:])
        await send_json(ws, {"type": "ping", "id": "after-reload"})
        while True:
            f = await recv_json(ws, 3)
            if f.get("type") != "rtick":
                break
        c.equal((f.get("type"), f.get("version")), ("pong", 2), "reload: v2 answers")
        c.equal(await expect_silence(ws, 0.4), None, "reload: the old script's every no longer fires")
        st = await status_of(server)
        c.equal(st.get("timers"), 0, "reload: /status timers back to 0")
    finally:
        await close_quietly(ws)


def raw_get(port, path, timeout=10.0):
    """GET path over one socket; (status, body) — body as text."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body.decode("utf-8", "replace")


async def routes_wait(c, server, by):
    loop = asyncio.get_running_loop()
    port = server.port
    # A route that waits 1 s on the backend: the bystander and another HTTP
    # request are answered meanwhile.
    slow = loop.run_in_executor(None, raw_get, port, "/r/slow?s=1")
    t0 = time.monotonic()
    status_during = await loop.run_in_executor(None, raw_get, port, "/healthz")
    c.check(status_during[0] == 200 and time.monotonic() - t0 < 0.5,
            "a waiting route: /healthz answered meanwhile", status_during)
    (code, body), _ = await with_bystander(by, slow, "a waiting http route", c)
    c.check(code == 200 and json.loads(body or "{}").get("waited") is True and
            json.loads(body).get("backend") == {"slept": 1.0}, "a route that waited answers with what it got", (code, body))
    code, body = await loop.run_in_executor(None, raw_get, port, "/r/boom")
    c.check(code == 500 and json.loads(body or "{}") == {"error": "script_error"},
            "a route that fails after waiting: 500 script_error", (code, body))
    line = await wait_log(server, lambda l: "http route 'GET /r/boom' failed" in l and "route failed after waiting" in l)
    c.check(line is not None, "the failing route is logged with file:line", line)
    # The client leaves while its route waits: the answer is dropped, the
    # server goes on.
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /r/slow?s=0.5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await asyncio.sleep(0.1)
    sock.close()
    await asyncio.sleep(0.8)
    code, _ = await loop.run_in_executor(None, raw_get, port, "/healthz")
    c.check(code == 200 and server.alive(), "a client that left while its route waited: the server goes on", code)


async def https(c, server, tls_port):
    """https:// with the certificate checked: a self-signed backend is
    refused ("tls: ..."), unless the request says tls_insecure."""
    ws = await connect(server.url("/ws"))
    try:
        r = await call(ws, {"type": "fetch", "id": 1, "base": "tls", "path": "/echo"})
        c.check(r.get("type") == "error" and (err_of(r) or "").startswith("tls: "),
                "https to a self-signed backend: refused, the reason starts with 'tls: '", r)
        r = await call(ws, {"type": "fetch", "id": 2, "base": "tls", "path": "/echo", "tls_insecure": True})
        c.check(r.get("type") == "fetched" and r.get("status") == 200,
                "https with tls_insecure: answered", r)
    finally:
        await close_quietly(ws)


async def status_counters(c, server, before):
    st = await status_of(server)
    h = st.get("http") or {}
    c.check(set(h) >= {"in_flight", "requests", "failures", "timeouts"}, "/status http fields", h)
    b = before.get("http") or {}
    c.check(h.get("requests", 0) - b.get("requests", 0) >= 120, "/status http.requests counts them", h)
    c.check(h.get("failures", 0) - b.get("failures", 0) >= 6, "/status http.failures counts the faults", h)
    c.check(h.get("timeouts", 0) - b.get("timeouts", 0) >= 1, "/status http.timeouts counts the timeout", h)
    c.equal(h.get("in_flight"), 0, "/status http.in_flight 0 when all answered")
    lim = st.get("limits") or {}
    c.equal((lim.get("waiting_messages"), lim.get("script_timers"), lim.get("http_requests"),
             lim.get("http_timeout"), lim.get("http_response_bytes")), (3, 1000, 256, 10, 4194304),
            "/status limits show the reach limits")
    loop = asyncio.get_running_loop()
    code, _, text = await loop.run_in_executor(None, lambda: http_get(server.connect_host(), server.port, "/metrics"))
    for name in ("wsrelay_timers", "wsrelay_http_requests_in_flight", "wsrelay_http_requests_total",
                 "wsrelay_http_failures_total", "wsrelay_http_timeouts_total"):
        c.check(re.search(r"^%s(\{[^}]*\})? \d" % name, text, re.M), "/metrics has %s" % name)
    print("/status http after the run: %s" % json.dumps(h), flush=True)


async def limits(c, binary, folder, backend):
    script = os.path.join(folder, "limits.lua")
    with open(script, "w") as f:
        f.write(LIMITS_LUA)
    config = os.path.join(folder, "limits.json")
    with open(config, "w") as f:
        json.dump({"listen": {"port": 0}, "limits": {"http_requests": 5, "script_timers": 20},
                   "endpoints": [{"path": "/ws", "script": "limits.lua",
                                  "options": {"backend": "http://127.0.0.1:%d" % backend.port}}]}, f)
    with Server(binary, ["--config", config]) as server:
        ws = await connect(server.url("/ws"))
        other = await connect(server.url("/ws"))
        try:
            for every in (False, True):
                name = "relay.every" if every else "relay.after"
                for attempt in (1, 2):
                    r = await call(ws, {"type": "flood", "every": every})
                    c.equal((r.get("count"), r.get("err")),
                            (20, "%s: this script already has 20 live timers (limits.script_timers)" % name),
                            "%s beyond limits.script_timers: the documented error (%d)" % (name, attempt))

            t0 = time.monotonic()
            r = await call(ws, {"type": "burst", "n": 8, "s": 1.5})
            c.equal(r.get("type"), "burst.ok", "burst: 8 timers started")
            refused = []
            while len(refused) < 3:
                f = await recv_json(ws, 3)
                c.check(f.get("type") == "burst" and not f.get("ok"), "burst: the refusals come first", f)
                refused.append(f)
            dt = time.monotonic() - t0
            c.check(all(f.get("err") == "too many requests in flight (limits.http_requests: 5)" for f in refused),
                    "beyond limits.http_requests: 'too many requests in flight (limits.http_requests: 5)'", refused)
            c.check(dt < 1.0, "the refusals come at once", "%.2f s" % dt)
            r = await call(other, {"type": "one"})
            c.equal((r.get("ok"), r.get("err")), (False, "too many requests in flight (limits.http_requests: 5)"),
                    "the limit holds for every session of the server")
            st = await status_of(server)
            c.equal((st.get("http") or {}).get("in_flight"), 5, "/status http.in_flight = 5 meanwhile")
            r = await call(other, {"type": "ping"})
            c.equal(r.get("type"), "pong", "burst: a bystander is served meanwhile")
            oks = [await recv_json(ws, 5) for _ in range(5)]
            c.check(all(f.get("ok") for f in oks), "burst: the 5 in flight are answered", oks)
            r = await call(other, {"type": "one"}, timeout=5)
            c.equal(r.get("ok"), True, "once they are answered a new request goes through")
        finally:
            await close_quietly(ws)
            await close_quietly(other)


async def main(c):
    binary = sys.argv[1]
    backend = Backend().start()
    certs = tempfile.TemporaryDirectory()
    cert, key = os.path.join(certs.name, "cert.pem"), os.path.join(certs.name, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls_backend = Backend(tls=(cert, key)).start()
    raw_server, raw_port = await mid_body_server()
    down = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    down.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
    down_port = down.getsockname()[1]
    try:
        with tempfile.TemporaryDirectory() as folder:
            options = {"backend": "http://127.0.0.1:%d" % backend.port,
                       "down": "http://127.0.0.1:%d" % down_port,
                       "raw": "http://127.0.0.1:%d" % raw_port,
                       "tls": "https://127.0.0.1:%d" % tls_backend.port}
            for name, text in (("reach.lua", REACH_LUA), ("gate.lua", GATE_LUA), ("auth.lua", AUTH_LUA)):
                with open(os.path.join(folder, name), "w") as f:
                    f.write(text)
            config = os.path.join(folder, "config.json")
            with open(config, "w") as f:
                json.dump({"listen": {"port": 0}, "log_level": "debug",
                           "limits": {"waiting_messages": 3, "script_instructions": 2000000},
                           "endpoints": [
                               {"path": "/ws", "script": "reach.lua", "handshake_headers": ["x-api-key"],
                                "options": options},
                               {"path": "/gate/{room}", "script": "gate.lua", "options": options},
                               {"path": "/auth", "script": "auth.lua", "options": options}]}, f)
            with Server(binary, ["--config", config]) as server:
                before = await status_of(server)
                by = await connect(server.url("/ws"))
                try:
                    for name, fn in (("http_requests", lambda: http_requests(c, server, by)),
                                     ("faults", lambda: faults(c, server, by, backend, down_port, raw_port)),
                                     ("ordering", lambda: ordering(c, server, by)),
                                     ("many_waiting", lambda: many_waiting(c, server, by, backend)),
                                     ("timers", lambda: timers(c, server, by, REACH_LUA)),
                                     ("cannot_wait", lambda: cannot_wait(c, server)),
                                     ("handshake", lambda: handshake(c, server)),
                                     ("on_open_waits", lambda: on_open_waits(c, server)),
                                     ("routes_wait", lambda: routes_wait(c, server, by)),
                                     ("https", lambda: https(c, server, tls_backend.port)),
                                     ("status", lambda: status_counters(c, server, before)),
                                     ("reload", lambda: reload_cancels(c, server, os.path.join(folder, "reach.lua"),
                                                                       REACH_LUA))):
                        t = time.monotonic()
                        try:
                            await fn()
                        except Exception as exc:  # noqa: BLE001
                            c.error(name, exc)
                        print("  [%s %.1f s]" % (name, time.monotonic() - t), flush=True)
                    c.check(server.alive(), "the server is still running")
                finally:
                    await close_quietly(by)
            t = time.monotonic()
            try:
                await limits(c, binary, folder, backend)
            except Exception as exc:  # noqa: BLE001
                c.error("limits", exc)
            print("  [limits %.1f s]" % (time.monotonic() - t), flush=True)
    finally:
        down.close()
        raw_server.close()
        backend.stop()
        tls_backend.stop()
        certs.cleanup()


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
