#!/usr/bin/python3
"""End-to-end test of examples/backend-proxy: wsrelay in front of a FastAPI app.

Starts the real app (examples/backend-proxy/app.py under Debian's uvicorn, on
a socket the test binds on an ephemeral port and hands over with --fd) and the
real relay (examples/backend-proxy/config.json as shipped; --port 0, the
environment gives the backend URL and the shared token), and checks with
python3-websockets and plain HTTP: the upgrade refusal without credentials
(HTTP 401), connect auth by cookie and by query token, the app's refusal (close
4003, no message handled), an unreachable app (close 1013), chat through the
app (rewritten, refused), the offline webhook after the 3 s grace (not when
the user comes back within it, exactly once), the app's pushes to a channel
and to a user, and client.py.

    /usr/bin/python3 tests/python/test_profile_backend_proxy.py <path-to-wsrelay> [<source-dir>]

Prints one line per failed check and ends with "N passed, M failed".
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import websockets  # noqa: E402

import wsrelay_harness as h  # noqa: E402

TOKEN = "backend-proxy-test-token-4c1d9e7a"
GRACE = 3.0            # config.json's offline_grace_s
SILENCE = 0.3
PYTHON = "/usr/bin/python3"
SESSION_ID = re.compile(r"^[0-9a-f]{16}$")


class App:
    """app.py under uvicorn on a socket bound here (no port race): bind()
    first, so the relay can be told the URL, then start() once the relay's
    port is known."""

    def __init__(self, source):
        self.source = source
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.lines = []
        self._lock = threading.Lock()

    def start(self, relay_url):
        env = h.clean_env({"WSRELAY_ADMIN_TOKEN": TOKEN, "WSRELAY_URL": relay_url, "PYTHONDONTWRITEBYTECODE": "1"})
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "uvicorn", "app:app", "--app-dir", os.path.join(self.source, "examples", "backend-proxy"),
             "--fd", str(fd), "--log-level", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            pass_fds=[fd], preexec_fn=h._die_with_parent)
        threading.Thread(target=self._drain, daemon=True).start()
        self.sock.close()  # uvicorn has its own copy
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the app exited with %s:\n%s" % (self.proc.returncode, self.text()))
            try:
                status, _, _ = h.http_get("127.0.0.1", self.port, "/events", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the app did not answer GET /events within 20 s:\n" + self.text())

    def _drain(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def text(self):
        with self._lock:
            return "\n".join(self.lines[-30:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def post(self, path, body, headers=None):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        status, hdr, text = h.http_get("127.0.0.1", self.port, path, method="POST", headers=hdrs,
                                       body=json.dumps(body))
        return status, hdr, json.loads(text) if text else None

    def events(self):
        status, _, text = h.http_get("127.0.0.1", self.port, "/events")
        assert status == 200, (status, text)
        return json.loads(text)

    def login(self, user):
        status, hdr, body = self.post("/login", {"user": user})
        assert status == 200, (status, body)
        return body["token"], hdr.get("set-cookie", "")


async def wait_for(predicate, timeout):
    """The first truthy predicate() within timeout (polled), else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(0.05)


async def open_ws(relay, token=None, cookie=None, query_extra=""):
    path = "/ws"
    if token is not None:
        path += "?token=" + urllib.parse.quote(token) + query_extra
    headers = {"Cookie": cookie} if cookie else {}
    return await h.connect(relay.url(path), extra_headers=headers)


async def closed_with(ws, timeout=5.0):
    """Reads until the connection closes: (code, reason, frames read before)."""
    frames = []
    try:
        while True:
            frames.append(await asyncio.wait_for(ws.recv(), timeout))
    except websockets.ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason, frames


# ---- the checks ----------------------------------------------------------------


async def check_upgrade(c, relay, app):
    before = len(app.events()["connects"])
    for what, path, headers in (("nothing", "/ws", {}),
                                ("an empty token", "/ws?token=", {}),
                                ("another cookie", "/ws", {"Cookie": "theme=dark"})):
        raw = h.raw_http(relay.connect_host(), relay.port, (
            "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % (path, "".join("%s: %s\r\n" % kv for kv in headers.items()))).encode())
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        c.check(status_line.startswith("HTTP/1.1 401"), "upgrade with %s: HTTP 401" % what, status_line)
        c.check(b"www-authenticate: bearer" in head.lower(), "upgrade with %s: WWW-Authenticate" % what, head)
        c.check(b"'session' cookie or a ?token=" in body, "upgrade with %s: the body says what is needed" % what, body)
    try:
        ws = await open_ws(relay)
        await h.close_quietly(ws)
        c.check(False, "websockets.connect without credentials is refused")
    except websockets.InvalidStatusCode as e:
        c.equal(e.status_code, 401, "websockets.connect without credentials: InvalidStatusCode 401")
    c.equal(len(app.events()["connects"]), before, "a refused upgrade never reaches the app")


async def check_connect(c, relay, app):
    token, set_cookie = app.login("alice")
    c.check(set_cookie.startswith("session=" + token), "login sets the session cookie", set_cookie)

    # By cookie (among others), and a message sent at once waits for on_open.
    ws = await open_ws(relay, cookie="theme=dark; session=%s; lang=en" % token)
    await ws.send(json.dumps({"type": "ping", "id": "p1"}))
    welcome = await h.recv_json(ws)
    c.equal((welcome.get("type"), welcome.get("user"), welcome.get("channels"), (welcome.get("info") or {}).get("by")),
            ("welcome", "alice", ["lobby"], "cookie"), "cookie: welcome as alice, in lobby, by cookie")
    c.check(SESSION_ID.match(welcome.get("session") or ""), "welcome has the session id", welcome)
    c.equal(await h.recv_json(ws), {"type": "pong", "id": "p1"}, "a message sent before the welcome is handled after it")
    last = app.events()["connects"][-1]
    c.equal((last["session"], last["by"], last["user"], last["status"]), (welcome["session"], "cookie", "alice", 200),
            "the app saw the cookie connect")
    await ws.close()

    # By query token (a token wins over a cookie); alone, and among other parameters.
    for what, extra in (("alone", ""), ("before another parameter", "&room=x")):
        ws = await open_ws(relay, token=token, cookie="session=not-a-token", query_extra=extra)
        try:
            welcome = await h.recv_json(ws)
        except websockets.ConnectionClosed:
            welcome = {"closed": (ws.close_code, ws.close_reason)}
        c.check((welcome.get("user"), (welcome.get("info") or {}).get("by")) == ("alice", "token"),
                "query token %s: welcome as alice, by token" % what, welcome)
        await h.close_quietly(ws)


async def check_refusal(c, relay, app):
    token, _ = app.login("mallory")  # banned: 403
    for what, kwargs, reason in (("an unknown token", {"token": "no-such-token"}, "unknown token"),
                                 ("an unknown cookie", {"cookie": "session=no-such-cookie"}, "unknown cookie"),
                                 ("a banned user", {"token": token}, "user mallory is banned")):
        ws = await open_ws(relay, **kwargs)
        # Sent at once: they arrive while on_open waits for the app.
        await ws.send(json.dumps({"type": "chat", "text": "let me in", "id": "x1"}))
        await ws.send(json.dumps({"type": "ping", "id": "x2"}))
        code, why, frames = await closed_with(ws)
        c.equal((code, why), (4003, reason), "%s: closed with 4003 and the app's reason" % what)
        c.equal(frames, [], "%s: nothing is sent before the close (no welcome, no pong, no error)" % what)
        session = [e for e in app.events()["connects"] if e["status"] != 200][-1]["session"]
        line = relay.wait_for_stderr(lambda lines: [l for l in lines if "s=%s" % session in l and " close code=" in l])
        c.check(line and "code=4003" in line[-1] and " in=2 " in line[-1] + " ",
                "%s: both messages reached the relay (in=2) before the close" % what, line)
        c.check(not [e for e in app.events()["chats"] if e["session"] == session],
                "%s: the chat queued behind on_open never reached the app" % what)


async def check_chat(c, relay, app):
    alice = await open_ws(relay, token=app.login("alice")[0])
    bob = await open_ws(relay, token=app.login("bob")[0])
    try:
        await h.recv_json(alice)
        await h.recv_json(bob)

        # Rewritten by the app's filter, published to the channel.
        await alice.send(json.dumps({"type": "chat", "text": "what the heck", "id": "c1"}))
        await alice.send(json.dumps({"type": "ping", "id": "c1-ping"}))  # waits behind the chat's call
        mine, ok, pong = await h.recv_json(alice), await h.recv_json(alice), await h.recv_json(alice)
        theirs = await h.recv_json(bob)
        c.equal((mine.get("type"), mine.get("channel"), mine.get("from"), mine.get("text"), mine.get("filtered")),
                ("chat", "lobby", "alice", "what the ****", True), "chat: published as the app rewrote it")
        c.equal(theirs, mine, "chat: bob gets the same message")
        c.check(isinstance(mine.get("id"), str) and isinstance(mine.get("ts"), float), "chat: the app's id and ts", mine)
        c.equal(ok, {"type": "chat.ok", "id": "c1", "channel": "lobby", "message_id": mine.get("id"), "delivered": 2},
                "chat: chat.ok to the sender after the publication")
        c.equal(pong, {"type": "pong", "id": "c1-ping"}, "chat: the next message is handled after the waiting one")
        seen = [e for e in app.events()["chats"] if e.get("published", {}).get("id") == mine.get("id")]
        c.check(seen and seen[0]["text"] == "what the heck" and seen[0]["user"] == "alice",
                "chat: the app got the original text from alice", seen)

        # Explicit channel, nothing to filter.
        await alice.send(json.dumps({"type": "chat", "channel": "lobby", "text": "hi bob", "id": 7}))
        msg = await h.recv_json(bob)
        c.equal((msg.get("text"), msg.get("filtered")), ("hi bob", False), "chat: unfiltered text unchanged")
        await h.recv_json(alice)
        c.equal((await h.recv_json(alice)).get("id"), 7, "chat: a numeric id is echoed")

        # Refused by the app: an error naming why; nothing published.
        for text, why in (("see https://example.org", "links are not allowed in lobby"),
                          ("x" * 501, "message longer than 500 characters")):
            await alice.send(json.dumps({"type": "chat", "text": text, "id": "r"}))
            err = await h.recv_json(alice)
            c.equal(err, {"type": "error", "id": "r", "code": "refused", "message": why},
                    "chat refused by the app: %s" % why)
        c.equal(await h.expect_silence(bob, SILENCE), None, "a refused chat reaches nobody")

        # Checked by the relay, the app is not asked.
        calls = len(app.events()["chats"])
        for msg, code in (({"type": "chat", "channel": "staff", "text": "psst", "id": "s"}, "not_subscribed"),
                          ({"type": "chat", "channel": "user:bob", "text": "psst", "id": "s"}, "not_subscribed"),
                          ({"type": "chat", "text": "", "id": "s"}, "bad_request"),
                          ({"type": "chat", "text": 5, "id": "s"}, "bad_request")):
            await alice.send(json.dumps(msg))
            err = await h.recv_json(alice)
            c.equal((err.get("type"), err.get("code")), ("error", code), "chat %s: %s" % (json.dumps(msg), code))
        c.equal(len(app.events()["chats"]), calls, "invalid chats are not sent to the app")
    finally:
        await h.close_quietly(alice)
        await h.close_quietly(bob)


async def check_push(c, relay, app):
    alice = await open_ws(relay, token=app.login("alice")[0])
    bob_token = app.login("bob")[0]
    bob1 = await open_ws(relay, token=bob_token)
    bob2 = await open_ws(relay, cookie="session=" + bob_token)
    try:
        for ws in (alice, bob1, bob2):
            await h.recv_json(ws)
        status, _, answer = await asyncio.to_thread(app.post, "/notify", {"channel": "lobby", "text": "maintenance"})
        c.equal((status, answer), (200, {"channel": "lobby", "delivered": 3}), "push to lobby: the relay delivered 3")
        for name, ws in (("alice", alice), ("bob1", bob1), ("bob2", bob2)):
            msg = await h.recv_json(ws)
            c.equal((msg.get("type"), msg.get("text"), msg.get("from")), ("notice", "maintenance", "app"),
                    "push to lobby: %s gets the notice" % name)
        status, _, answer = await asyncio.to_thread(app.post, "/notify", {"user": "bob", "text": "your order shipped"})
        c.equal((status, answer), (200, {"channel": "user:bob", "delivered": 2}),
                "push to bob: both of his connections")
        for name, ws in (("bob1", bob1), ("bob2", bob2)):
            msg = await h.recv_json(ws)
            c.equal((msg.get("type"), msg.get("text"), msg.get("to")), ("notice", "your order shipped", "bob"),
                    "push to bob: %s gets it" % name)
        c.equal(await h.expect_silence(alice, SILENCE), None, "push to bob: alice gets nothing")
        status, _, answer = await asyncio.to_thread(app.post, "/notify", {"user": "nobody", "text": "x"})
        c.equal((status, answer), (200, {"channel": "user:nobody", "delivered": 0}), "push to a user not connected: 0")
    finally:
        for ws in (alice, bob1, bob2):
            await h.close_quietly(ws)


def offline_of(app, user):
    return [e for e in app.events()["offline"] if e["user"] == user]


async def check_offline(c, relay, app):
    """Four users at once (a few grace periods of waiting for all): dave
    leaves; erin has two connections and closes them one after the other;
    frank leaves and comes back within the grace, then leaves again after it;
    greg leaves, comes back and leaves again within the grace."""
    t = {}
    dave = await open_ws(relay, token=app.login("dave")[0])
    erin_token = app.login("erin")[0]
    erin1, erin2 = await open_ws(relay, token=erin_token), await open_ws(relay, token=erin_token)
    frank_token = app.login("frank")[0]
    frank = await open_ws(relay, token=frank_token)
    for ws in (dave, erin1, erin2, frank):
        await h.recv_json(ws)

    await dave.close()
    t["dave"] = time.time()
    await erin1.close()
    t["erin1"] = time.time()
    await frank.close()
    t["frank1"] = time.time()
    frank = await open_ws(relay, token=frank_token)  # back within the grace period
    await h.recv_json(frank)
    t["frank_back"] = time.time()
    c.check(t["frank_back"] - t["frank1"] < GRACE - 1, "frank came back well within the grace",
            t["frank_back"] - t["frank1"])
    # greg: leaves, comes back, leaves again 1 s later: one call, a grace after the second leave.
    greg_token = app.login("greg")[0]
    greg = await open_ws(relay, token=greg_token)
    await h.recv_json(greg)
    await greg.close()
    greg = await open_ws(relay, token=greg_token)
    await h.recv_json(greg)
    await wait_for(lambda: time.time() > t["frank_back"] + 1.0, 2)
    await greg.close()
    t["greg2"] = time.time()

    got = await wait_for(lambda: offline_of(app, "dave"), GRACE + 5)
    c.check(got, "dave: POST /ws/offline arrives", app.events()["offline"])
    if got:
        waited = got[0]["at"] - t["dave"]
        c.check(GRACE - 0.05 <= waited < GRACE + 2, "dave: only after the %.0f s grace (%.2f s)" % (GRACE, waited))
        c.check(abs(got[0]["since"] - t["dave"]) < 0.5 and got[0]["grace_s"] == GRACE,
                "dave: since = when he left, grace_s", got[0])
        c.check(got[0]["at"] - got[0]["since"] >= GRACE - 0.01,
                "dave: the call came a full grace after the relay saw him leave", got[0])
    # Past the grace of erin's first close and frank's first: nothing for either.
    await wait_for(lambda: time.time() > t["frank1"] + GRACE + 0.5, GRACE + 1)
    c.equal(offline_of(app, "erin"), [], "erin: no offline while her second connection is open")
    c.equal(offline_of(app, "frank"), [], "frank: no offline, he came back within the grace")

    await erin2.close()
    t["erin2"] = time.time()
    await frank.close()
    t["frank2"] = time.time()
    for user, left in (("greg", t["greg2"]), ("erin", t["erin2"]), ("frank", t["frank2"])):
        got = await wait_for(lambda: offline_of(app, user), GRACE + 5)
        c.check(got, "%s: offline after the last connection closed" % user, app.events()["offline"])
        if got:
            waited = got[0]["at"] - left
            c.check(GRACE - 0.05 <= waited < GRACE + 2, "%s: only after the grace (%.2f s)" % (user, waited))
    await asyncio.sleep(1.0)  # a window for a duplicate to show up (a negative check has to wait)
    for user in ("dave", "erin", "frank", "greg"):
        c.equal(len(offline_of(app, user)), 1, "%s: exactly one POST /ws/offline" % user)
    _, _, body = h.http_get(relay.connect_host(), relay.port, "/status")
    status = json.loads(body)
    c.equal(status.get("timers"), 0, "/status: no timer left once every offline was sent")


async def check_reload(c, relay, app):
    """A SIGHUP reload starts a new Lua state: the per-user counts are
    rebuilt from the open sessions, so closing one of two connections
    afterwards still sends nothing."""
    token = app.login("henry")[0]
    one, two = await open_ws(relay, token=token), await open_ws(relay, token=token)
    for ws in (one, two):
        await h.recv_json(ws)
    before = len([l for l in relay.stderr_lines if "reloaded proxy.lua" in l])
    relay.proc.send_signal(signal.SIGHUP)
    c.check(relay.wait_for_stderr(lambda ls: len([l for l in ls if "reloaded proxy.lua" in l]) > before),
            "reload: the script was reloaded", relay.stderr_lines[-3:])
    await one.close()
    closed = time.time()
    await wait_for(lambda: time.time() > closed + GRACE + 0.5, GRACE + 1)
    c.equal(offline_of(app, "henry"), [], "reload: no offline while henry's other connection is open")
    c.equal(await h.request(two, {"type": "ping", "id": "r"}), {"type": "pong", "id": "r"},
            "reload: the open connection still works")
    await two.close()
    got = await wait_for(lambda: offline_of(app, "henry"), GRACE + 5)
    c.check(got and len(got) == 1, "reload: one offline after the last connection closed", got)


async def check_unreachable(c, binary, config):
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()  # nothing listens there now
    env = h.clean_env({"WSRELAY_ADMIN_TOKEN": TOKEN, "WSRELAY_BACKEND_URL": "http://127.0.0.1:%d" % port})
    with h.Server(binary, ["--config", config], env=env) as relay:
        ws = await open_ws(relay, token="whatever")
        await ws.send(json.dumps({"type": "ping", "id": "u"}))
        code, why, frames = await closed_with(ws)
        c.equal((code, why, frames), (1013, "backend unavailable", []), "app down: close 1013, nothing handled")
        c.check(relay.wait_for_stderr(lambda ls: any("POST /ws/connect failed: connect failed" in l for l in ls)),
                "app down: the relay logs why", relay.stderr_lines[-5:])


async def check_app_guard(c, app):
    before = app.events()
    status, _, body = await asyncio.to_thread(app.post, "/ws/connect", {"session": "x", "token": "t"})
    c.equal(status, 401, "the app's /ws/* routes refuse a caller without the shared token")
    status, _, body = await asyncio.to_thread(app.post, "/ws/offline", {"user": "dave"},
                                              {"Authorization": "Bearer wrong"})
    c.equal(status, 401, "... and one with a wrong token")
    c.equal(app.events(), before, "a refused call records nothing")


async def check_client(c, relay, app, source):
    script = os.path.join(source, "examples", "backend-proxy", "client.py")
    base = [PYTHON, script, "--url", relay.url("/ws"), "--app", app.url]

    def run(args):
        proc = subprocess.run(base + args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        return proc.returncode, proc.stdout, proc.stderr

    code, out, err = await asyncio.to_thread(run, ["--user", "gina", "hello darn world", "see www.example.org"])
    lines = out.splitlines()
    c.check(code == 0, "client.py: exit 0", (code, err))
    c.check("[welcome gina, channels: lobby]" in lines, "client.py: the welcome", lines)
    c.check("<lobby> gina: hello **** world (filtered)" in lines, "client.py: the rewritten chat", lines)
    c.check(any(re.match(r"^\[sent m\d+ to 1\]$", l) for l in lines), "client.py: chat.ok", lines)
    c.check("[error refused] links are not allowed in lobby" in lines, "client.py: the refusal", lines)
    code, out, err = await asyncio.to_thread(run, ["--user", "gina", "--cookie", "by cookie"])
    c.check(code == 0 and "<lobby> gina: by cookie" in out.splitlines(), "client.py --cookie", (code, out, err))
    code, out, err = await asyncio.to_thread(run, ["--user", "mallory", "hi"])
    c.equal((code, out.splitlines()), (3, ["[closed 4003 user mallory is banned]"]), "client.py: refused, exit 3")


async def run(c, binary, source):
    config = os.path.join(source, "examples", "backend-proxy", "config.json")
    app = App(source)
    relay = h.Server(binary, ["--config", config],
                     env=h.clean_env({"WSRELAY_ADMIN_TOKEN": TOKEN, "WSRELAY_BACKEND_URL": app.url}))
    try:
        relay.start()
        app.start("http://%s:%d" % (relay.connect_host(), relay.port))
        for name, check in (("upgrade refusal", lambda: check_upgrade(c, relay, app)),
                            ("connect by cookie and token", lambda: check_connect(c, relay, app)),
                            ("the app refuses", lambda: check_refusal(c, relay, app)),
                            ("chat via the app", lambda: check_chat(c, relay, app)),
                            ("push from the app", lambda: check_push(c, relay, app)),
                            ("offline after the grace", lambda: check_offline(c, relay, app)),
                            ("reload keeps the counts", lambda: check_reload(c, relay, app)),
                            ("the app's guard", lambda: check_app_guard(c, app)),
                            ("client.py", lambda: check_client(c, relay, app, source))):
            async with h.Section(c, name):
                await check()
        async with h.Section(c, "the app is down"):
            await check_unreachable(c, binary, config)
        c.check(relay.alive(), "the relay is still running")
        errors = [l for l in relay.stderr_lines if " ERROR " in l]
        c.equal(errors, [], "no ERROR lines in the relay's log")
    finally:
        app.stop()
        relay.stop()
        if c.failed:
            print("the app's last output:\n" + app.text())


def main():
    binary, source = h.usage_args()
    c = h.Checker()
    try:
        asyncio.run(asyncio.wait_for(run(c, binary, source), 100))
    except Exception as exc:  # noqa: BLE001
        c.error("the test", exc)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
