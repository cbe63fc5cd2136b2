#!/usr/bin/python3
"""End-to-end test of the wsrelay command line (app/main.cpp), with
Debian's python3-websockets as the client.

    /usr/bin/python3 tests/python/test_cli.py <wsrelay> <source-dir>

Covers --help, --version, usage errors, --check (default config, config errors
with their key path, Lua syntax errors with file:line), refusing to start with
a bad config, a custom Lua script + options routing a client without any
rebuild, and --host/--port overriding the config's listener (including where
the listening socket is actually bound). Prints one line per failed check and
ends with "N passed, M failed"; exit code 0 only if all pass.
"""

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    Checker, Server, ServerError, clean_env, close_quietly, connect, listening_sockets,
    recv_json, request, run_async_main, run_binary, usage_args)

LISTENING = "listening on ws://"

ECHO_LUA = """\
-- A custom router: no rebuild, just a different script.
local handlers = {}

function handlers.on_open(session)
  return {
    type = "hello",
    greeting = relay.options.greeting,
    session = session.id,
    path = session.path,
    room = session.params.room,
  }
end

function handlers.echo(session, msg)
  return { type = "echo", id = msg.id, text = msg.text }
end

function handlers.shout(session, msg)
  return { type = "echo", id = msg.id, text = string.upper(msg.text) }
end

function handlers.on_error(session, code, message, msg)
  return { type = "oops", code = code }
end

return handlers
"""

# Line 3 has the syntax error (a missing comma).
BAD_LUA = """\
local handlers = {}
function handlers.echo(session, msg)
  return { type = "echo" text = msg.text }
end
return handlers
"""


def free_port():
    """A TCP port that was free a moment ago (for configs that name a port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_connects(host, port, timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def non_loopback_ipv4():
    """A local non-loopback IPv4 address of this host, or None. (A UDP
    connect sends nothing; it only picks the outgoing interface.)"""
    for probe in ("192.0.2.254", "10.254.254.254", "198.51.100.1"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                addr = s.getsockname()[0]
                if addr and not addr.startswith("127.") and addr != "0.0.0.0":
                    return addr
        except OSError:
            continue
    return None


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def run(c, binary, args, what, **kwargs):
    """run_binary that turns a hang into a failed check: (rc, out, err)."""
    try:
        return run_binary(binary, args, **kwargs)
    except subprocess.TimeoutExpired as exc:
        c.check(False, "%s: finishes" % what, "still running after %s s (killed)" % exc.timeout)
        return None, "", ""


# ---- plain command-line behaviour ------------------------------------------------------


def test_flags(c, binary, source_dir):
    rc, out, err = run(c, binary, ["--help"], "--help")
    c.equal(rc, 0, "--help exits 0")
    for flag in ("--config", "--check", "--port", "--host"):
        c.check(flag in out, "--help output (stdout) mentions %s" % flag, out[:300])

    rc, out, err = run(c, binary, ["--version"], "--version")
    c.equal(rc, 0, "--version exits 0")
    c.check(out.startswith("wsrelay ") and len(out.strip()) > len("wsrelay"),
            "--version prints 'wsrelay <version>'", repr(out))
    try:
        with open(os.path.join(source_dir, "CMakeLists.txt"), encoding="utf-8") as f:
            m = re.search(r"project\(wsrelay\s+VERSION\s+([0-9.]+)", f.read())
        if m:
            c.equal(out.strip(), "wsrelay " + m.group(1), "--version matches CMakeLists.txt's version")
    except OSError:
        pass

    rc, out, err = run(c, binary, ["--frobnicate"], "unknown flag")
    c.equal(rc, 2, "an unknown flag exits 2")
    c.check("--frobnicate" in err, "the unknown flag is named on stderr", err[:300])
    rc, _, _ = run(c, binary, ["--port"], "--port without value")
    c.equal(rc, 2, "--port without a value exits 2")
    rc, _, err = run(c, binary, ["--port", "http"], "--port http")
    c.equal(rc, 2, "--port with a non-number exits 2")
    rc, _, _ = run(c, binary, ["--port", "65536"], "--port 65536")
    c.equal(rc, 2, "--port 65536 exits 2")
    rc, _, _ = run(c, binary, ["--check", "--log-level", "loud"], "--log-level loud")
    c.equal(rc, 2, "--log-level with an unknown level exits 2")

    rc, out, err = run(c, binary, ["--check"], "--check (no config)")
    c.equal(rc, 0, "--check with no config (built-in default) exits 0")
    c.check("ok" in out, "--check with no config says ok", "stdout=%r stderr=%r" % (out, err))


def test_check(c, binary, tmp):
    # Unknown key: the error names the key path.
    cfg = write(os.path.join(tmp, "unknown_key.json"),
                json.dumps({"endpoints": [{"path": "/ws", "scirpt": "x.lua"}]}))
    rc, out, err = run(c, binary, ["--check", "--config", cfg], "--check unknown key")
    c.equal(rc, 1, "--check on a config with an unknown key exits 1")
    c.check("endpoints[0].scirpt: unknown key" in err,
            "--check names the unknown key's path", "stderr=%r" % err)
    c.check(cfg + ": endpoints[0].scirpt: unknown key" in err,
            "the error line starts with the config path", "stderr=%r" % err)

    # Several errors are all reported.
    cfg = write(os.path.join(tmp, "two_errors.json"), json.dumps(
        {"listen": {"port": 70000}, "endpoints": [{"path": "ws", "scirpt": "x.lua"}]}))
    rc, out, err = run(c, binary, ["--check", "--config", cfg], "--check two errors")
    c.equal(rc, 1, "--check on a config with several errors exits 1")
    for needle in ("listen.port: must be between 0 and 65535", "endpoints[0].scirpt: unknown key",
                   "endpoints[0].path: must start with"):
        c.check(needle in err, "--check reports '%s'" % needle, "stderr=%r" % err)

    # A missing config file.
    rc, out, err = run(c, binary, ["--check", "--config", os.path.join(tmp, "nope.json")],
                       "--check missing file")
    c.equal(rc, 1, "--check on a missing config file exits 1")
    c.check("nope.json" in err, "the missing file is named", "stderr=%r" % err)

    # Lua syntax error: file:line.
    write(os.path.join(tmp, "bad.lua"), BAD_LUA)
    cfg = write(os.path.join(tmp, "bad_script.json"),
                json.dumps({"endpoints": [{"path": "/ws", "script": "bad.lua"}]}))
    rc, out, err = run(c, binary, ["--check", "--config", cfg], "--check bad.lua")
    c.equal(rc, 1, "--check with a Lua syntax error exits 1")
    c.check(re.search(r"bad\.lua:3:", err) is not None,
            "--check reports the Lua syntax error as bad.lua:3:", "stderr=%r" % err)

    # A script failing at load time and one returning no table.
    write(os.path.join(tmp, "boom.lua"), "local x = 1\nerror('boom at load')\nreturn {}\n")
    write(os.path.join(tmp, "notable.lua"), "return 42\n")
    cfg = write(os.path.join(tmp, "boom.json"),
                json.dumps({"endpoints": [{"path": "/ws", "script": "boom.lua"}]}))
    rc, out, err = run(c, binary, ["--check", "--config", cfg], "--check boom.lua")
    c.equal(rc, 1, "--check with a script that raises at load exits 1")
    c.check("boom at load" in err and "boom.lua:2:" in err,
            "the load-time error is reported with its place", "stderr=%r" % err)
    cfg = write(os.path.join(tmp, "notable.json"),
                json.dumps({"endpoints": [{"path": "/ws", "script": "notable.lua"}]}))
    rc, out, err = run(c, binary, ["--check", "--config", cfg], "--check notable.lua")
    c.equal(rc, 1, "--check with a script that returns no table exits 1")
    c.check("must return a table" in err, "the no-table error is explained", "stderr=%r" % err)

    # Missing script file.
    cfg = write(os.path.join(tmp, "noscript.json"),
                json.dumps({"endpoints": [{"path": "/ws", "script": "missing.lua"}]}))
    rc, out, err = run(c, binary, ["--check", "--config", cfg], "--check missing script")
    c.equal(rc, 1, "--check with a missing script exits 1")
    c.check("endpoints[0].script: file not found" in err, "the missing script is reported",
            "stderr=%r" % err)

    # A good config with the custom script passes.
    write(os.path.join(tmp, "echo.lua"), ECHO_LUA)
    cfg = write(os.path.join(tmp, "good.json"), json.dumps(
        {"endpoints": [{"path": "/echo/{room}", "script": "echo.lua"}, {"path": "/ws"}]}))
    rc, out, err = run(c, binary, ["--check", "--config", cfg], "--check good config",
                       cwd="/")
    c.equal(rc, 0, "--check on a good config (script relative to the config) exits 0")
    c.check("ok (2 endpoints)" in out, "--check says ok (2 endpoints)", "stdout=%r stderr=%r" % (out, err))


def test_bad_config_start(c, binary, tmp):
    for name, cfg_text in (("unknown key", {"endpoints": [{"path": "/ws", "scirpt": "x.lua"}]}),
                           ("Lua syntax error", {"endpoints": [{"path": "/ws", "script": "bad.lua"}]})):
        cfg = write(os.path.join(tmp, "start_%s.json" % name.replace(" ", "_")), json.dumps(cfg_text))
        rc, out, err = run(c, binary, ["--config", cfg, "--port", "0"],
                           "starting with a bad config (%s)" % name, timeout=10)
        c.equal(rc, 1, "starting with a bad config (%s) exits 1" % name)
        c.check(LISTENING not in err, "a bad config (%s) never prints the listening line" % name,
                "stderr=%r" % err)
        c.check("not started" in err, "a bad config (%s) says 'not started'" % name, "stderr=%r" % err)


# ---- a running server with a custom script -----------------------------------------------


async def test_custom_script(c, binary, tmp):
    write(os.path.join(tmp, "echo.lua"), ECHO_LUA)
    cfg = write(os.path.join(tmp, "custom.json"), json.dumps({
        "listen": {"host": "127.0.0.1", "port": 0},
        "endpoints": [
            {"path": "/echo/{room}", "script": "echo.lua",
             "options": {"greeting": "hi ${GREETING_NAME:-nobody}"}},
            {"path": "/ws"},
        ],
    }))
    # cwd "/": the script path must be resolved against the config's folder.
    server = Server(binary, ["--config", cfg], env=clean_env({"GREETING_NAME": "tester"}), cwd="/")
    try:
        server.start()
    except ServerError as exc:
        c.check(False, "start wsrelay with a custom script", str(exc))
        return
    e = w = None
    try:
        line = next((l for l in server.stderr_lines if LISTENING in l), "")
        c.check("/echo/{room}" in line and "echo.lua" in line and "/ws" in line,
                "the listening line lists both endpoints and the script", line)

        e = await connect(server.url("/echo/lobby"))
        hello = await recv_json(e)
        c.equal(hello.get("type"), "hello", "custom on_open sends the custom welcome")
        c.equal(hello.get("greeting"), "hi tester", "endpoint options reach the script (with ${VAR} expanded)")
        c.equal(hello.get("room"), "lobby", "path placeholder {room} reaches session.params")
        c.equal(hello.get("path"), "/echo/lobby", "session.path")
        c.check(isinstance(hello.get("session"), str) and len(hello["session"]) == 16,
                "custom welcome carries the session id", repr(hello.get("session")))

        r = await request(e, {"type": "echo", "id": 1, "text": "h\u00e9llo"})
        c.equal(r, {"type": "echo", "id": 1, "text": "h\u00e9llo"}, "echo handler replies with the text")
        r = await request(e, {"type": "shout", "id": 2, "text": "abc"})
        c.equal(r.get("text"), "ABC", "a second custom handler")
        r = await request(e, {"type": "chat", "id": 3, "channel": "x", "data": 1})
        c.equal(r, {"type": "oops", "code": "unknown_type"},
                "the standard 'chat' is not routed by the custom script (its on_error answers)")
        await e.send("not json")
        r = await recv_json(e)
        c.equal(r, {"type": "oops", "code": "bad_json"}, "core errors go through the custom on_error")
        r = await request(e, {"type": "echo", "id": 4, "text": "still here"})
        c.equal(r.get("text"), "still here", "the custom endpoint still works after errors")

        # The other endpoint still speaks the standard protocol.
        w = await connect(server.url("/ws"))
        welcome = await recv_json(w)
        c.equal(welcome.get("type"), "welcome", "/ws beside it keeps the standard protocol")
        r = await request(w, {"type": "echo", "id": 5, "text": "x"})
        c.equal(r.get("code"), "unknown_type", "/ws does not know the custom 'echo'")

        # A path that only partly matches the placeholder pattern is refused.
        refused = False
        try:
            extra = await connect(server.url("/echo/a/b"))
            await close_quietly(extra)
        except (websockets.InvalidHandshake, OSError):
            refused = True
        c.check(refused, "/echo/a/b (two segments) is not an endpoint")
    finally:
        await close_quietly(e)
        await close_quietly(w)
        rc = await asyncio.to_thread(server.stop)
        c.equal(rc, 0, "the custom-script server exits 0 on SIGTERM")


# ---- --host / --port ------------------------------------------------------------------------


def check_loopback_only(c, server, what):
    """Every listening socket of the server on its port is bound to 127.0.0.1
    (or its v4-mapped form), read from /proc/net/tcp{,6}."""
    sockets = listening_sockets(server.proc.pid)
    if not sockets:
        print("note: %s: cannot read the process's sockets from /proc; skipping the bind check" % what)
        return
    mine = [a for a, p in sockets if p == server.port]
    c.check(bool(mine) and all(a in ("127.0.0.1", "::ffff:127.0.0.1") for a in mine),
            "%s: the listening socket is bound to 127.0.0.1 only" % what,
            "bound to %r" % (mine,))


async def ws_roundtrip(c, server, what):
    ws = None
    try:
        ws = await connect(server.url("/ws"))
        welcome = await recv_json(ws)
        c.equal(welcome.get("type"), "welcome", "%s: a client connects and gets a welcome" % what)
    except Exception as exc:  # noqa: BLE001
        c.check(False, "%s: a client connects and gets a welcome" % what, repr(exc))
    finally:
        await close_quietly(ws)


async def test_listeners(c, binary, tmp):
    other_ip = non_loopback_ipv4()
    if other_ip is None:
        print("note: no non-loopback IPv4 address; skipping the 'not reachable from outside' probes")

    # 1. The built-in default binds 127.0.0.1 only.
    server = Server(binary, env=clean_env())
    try:
        server.start()
        c.equal(server.host, "127.0.0.1", "default config: the listening line says 127.0.0.1")
        check_loopback_only(c, server, "default config")
        if other_ip:
            c.check(not tcp_connects(other_ip, server.port),
                    "default config: not reachable via %s (a non-loopback address)" % other_ip,
                    "a TCP connection to %s:%d succeeded" % (other_ip, server.port))
        await ws_roundtrip(c, server, "default config")
    except ServerError as exc:
        c.check(False, "start wsrelay (default config)", str(exc))
    finally:
        server.stop()

    # 2. The config's listener is used as written.
    port = free_port()
    cfg = write(os.path.join(tmp, "listen_fixed.json"), json.dumps(
        {"listen": {"host": "127.0.0.1", "port": port}, "endpoints": [{"path": "/ws"}]}))
    server = Server(binary, ["--config", cfg], port_zero=False)
    try:
        server.start()
        c.equal((server.host, server.port), ("127.0.0.1", port), "config listener 127.0.0.1:<port> is used")
        await ws_roundtrip(c, server, "config listener")
    except ServerError as exc:
        c.check(False, "start wsrelay on the config's own listener", str(exc))
    finally:
        server.stop()

    # 3. --host and --port override it: the config names an address this host
    #    does not have (TEST-NET-3) and a fixed port.
    conf_port = free_port()
    cfg = write(os.path.join(tmp, "listen_override.json"), json.dumps(
        {"listen": {"host": "203.0.113.7", "port": conf_port}, "endpoints": [{"path": "/ws"}]}))
    server = Server(binary, ["--config", cfg, "--host", "127.0.0.1", "--port", "0"], port_zero=False)
    try:
        server.start()
        c.equal(server.host, "127.0.0.1", "--host overrides the config's host (listening line)")
        c.check(server.port not in (0, conf_port), "--port 0 overrides the config's port",
                "listening on %r, config said %d" % (server.port, conf_port))
        c.check(not tcp_connects("127.0.0.1", conf_port), "nothing listens on the config's port",
                "127.0.0.1:%d accepted a connection" % conf_port)
        check_loopback_only(c, server, "--host 127.0.0.1")
        await ws_roundtrip(c, server, "--host/--port override")
    except ServerError as exc:
        c.check(False, "start wsrelay with --host/--port overriding the config", str(exc))
    finally:
        server.stop()

    # 4. --port alone overrides only the port; --host alone only the host.
    cfg = write(os.path.join(tmp, "listen_port_only.json"), json.dumps(
        {"listen": {"host": "127.0.0.1", "port": conf_port}, "endpoints": [{"path": "/ws"}]}))
    server = Server(binary, ["--config", cfg, "--port", "0"], port_zero=False)
    try:
        server.start()
        c.check(server.host == "127.0.0.1" and server.port not in (0, conf_port),
                "--port alone: config host kept, port replaced", "%r:%r" % (server.host, server.port))
        await ws_roundtrip(c, server, "--port only")
    except ServerError as exc:
        c.check(False, "start wsrelay with --port only", str(exc))
    finally:
        server.stop()

    cfg = write(os.path.join(tmp, "listen_host_only.json"), json.dumps(
        {"listen": {"host": "203.0.113.7", "port": 0}, "endpoints": [{"path": "/ws"}]}))
    server = Server(binary, ["--config", cfg, "--host", "127.0.0.1"], port_zero=False)
    try:
        server.start()
        c.equal(server.host, "127.0.0.1", "--host alone: host replaced")
        await ws_roundtrip(c, server, "--host only")
    except ServerError as exc:
        c.check(False, "start wsrelay with --host only", str(exc))
    finally:
        server.stop()

    # 5. An address this host does not have cannot be listened on: the server
    #    must refuse to start instead of listening somewhere else.
    cfg = write(os.path.join(tmp, "listen_foreign.json"), json.dumps(
        {"listen": {"host": "203.0.113.7", "port": 0}, "endpoints": [{"path": "/ws"}]}))
    server = Server(binary, ["--config", cfg], port_zero=False, start_timeout=8)
    try:
        server.start()
        c.check(False, "listening on a foreign address (203.0.113.7) fails to start",
                "it started: %r, bound to %r" % (
                    (server.host, server.port), listening_sockets(server.proc.pid)))
    except ServerError as exc:
        c.check(server.proc.returncode not in (None, 0),
                "listening on a foreign address (203.0.113.7) exits nonzero", str(exc))
    finally:
        server.stop()

    # 6. A host name (docs/configuration.md: "an address or host name to
    #    bind"): either it listens on a real port reachable via loopback, or it
    #    refuses to start -- never "listening" on port 0.
    server = Server(binary, ["--host", "localhost", "--port", "0"], port_zero=False, start_timeout=8)
    try:
        server.start()
        c.check(server.port > 0, "--host localhost: the listening line names a real port",
                "listening line says %r:%r" % (server.host, server.port))
        if server.port > 0:
            c.check(tcp_connects("127.0.0.1", server.port) or tcp_connects("::1", server.port),
                    "--host localhost: reachable via loopback")
        else:
            c.check(bool(listening_sockets(server.proc.pid)), "--host localhost: some socket listens",
                    "the process listens on nothing: %s" % server.stderr_text()[-400:])
    except ServerError as exc:
        c.check(server.proc.returncode not in (None, 0),
                "--host localhost: refused to start with a nonzero exit", str(exc))
    finally:
        server.stop()

    # 7. An IPv6 literal, if this host has IPv6 loopback.
    has_v6 = False
    if socket.has_ipv6:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
                has_v6 = True
        except OSError:
            pass
    if has_v6:
        server = Server(binary, ["--host", "::1", "--port", "0"], port_zero=False)
        try:
            server.start()
            mine = [a for a, p in listening_sockets(server.proc.pid) if p == server.port]
            c.check(mine == ["::1"], "--host ::1: bound to ::1 only", "bound to %r" % (mine,))
            await ws_roundtrip(c, server, "--host ::1")
        except ServerError as exc:
            c.check(False, "start wsrelay with --host ::1", str(exc))
        finally:
            server.stop()
    else:
        print("note: no IPv6 loopback; skipping --host ::1")

    # 8. Two listeners: two listening lines, both serve.
    cfg = write(os.path.join(tmp, "listen_two.json"), json.dumps(
        {"listen": [{"host": "127.0.0.1", "port": 0}, {"host": "127.0.0.1", "port": 0}],
         "endpoints": [{"path": "/ws"}]}))
    server = Server(binary, ["--config", cfg], port_zero=False)
    try:
        server.start()
        # start() returns at the first listening line; the reader thread may
        # not have taken the second one yet.
        await asyncio.to_thread(server.wait_for_stderr, lambda lines: len(server.listen_lines) >= 2)
        ports = [p for _, p in server.listen_lines]
        c.check(len(ports) == 2 and ports[0] != ports[1], "two listeners: two listening lines",
                repr(server.listen_lines))
        for p in ports:
            server.port = p
            await ws_roundtrip(c, server, "listener on port %d" % p)
    except ServerError as exc:
        c.check(False, "start wsrelay with two listeners", str(exc))
    finally:
        server.stop()


async def test_signals(c, binary):
    import signal
    server = Server(binary, env=clean_env())
    try:
        server.start()
        ws = await connect(server.url("/ws"))
        await recv_json(ws)
        server.proc.send_signal(signal.SIGINT)
        rc = await asyncio.to_thread(server.wait_exit, 10)
        c.equal(rc, 0, "SIGINT with a client connected: exits 0")
        c.check(any("shutting down" in l for l in server.stderr_lines), "logs 'shutting down'")
        await close_quietly(ws, 2)
    except ServerError as exc:
        c.check(False, "start wsrelay for the SIGINT check", str(exc))
    finally:
        server.stop()


async def main(c):
    binary, source_dir = usage_args()
    with tempfile.TemporaryDirectory(prefix="wsrelay-cli-") as tmp:
        for name, fn in (("flags", lambda: test_flags(c, binary, source_dir)),
                         ("--check", lambda: test_check(c, binary, tmp)),
                         ("bad config start", lambda: test_bad_config_start(c, binary, tmp))):
            try:
                await asyncio.to_thread(fn)
            except Exception as exc:  # noqa: BLE001
                c.error(name, exc)
        for name, coro in (("custom script", lambda: test_custom_script(c, binary, tmp)),
                           ("listeners", lambda: test_listeners(c, binary, tmp)),
                           ("signals", lambda: test_signals(c, binary))):
            try:
                await coro()
            except Exception as exc:  # noqa: BLE001
                c.error(name, exc)


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
