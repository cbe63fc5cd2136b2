"""Glue for the live tests of the client libraries in examples/clients/.

Used by tests/python/test_client_*.py. Standard library + the shared harness
(tests/python/wsrelay_harness.py).

  * Relay        - one wsrelay "service" on a fixed port that can be taken
                   down (SIGTERM) and brought up again on the SAME port, or
                   frozen (SIGSTOP) and thawed (SIGCONT) to make a dead link.
  * run_controlled(cmd, relay) - runs a client test program (node, mono)
                   whose stdout may carry control lines:

                       @@ down     SIGTERM the relay (clients get close 1001)
                       @@ up       start a new relay on the same port
                       @@ pause    SIGSTOP the relay (sockets stay open, silent)
                       @@ resume   SIGCONT it
                       @@ publish CHANNEL FIRST LAST [kick=SESSION at=N]
                                   a plain WebSocket publisher (user
                                   "publisher", not a client library) sends
                                   chats {"n": FIRST} .. {"n": LAST}, one
                                   every 10 ms, each after the previous
                                   chat.ok; with kick=, the relay cuts SESSION
                                   (POST /admin/disconnect, close 1008) right
                                   after chat n=N and the stream goes on
                       @@ kick SESSION   just the cut

                   Each is answered on the program's stdin with "ok" or
                   "err <why>". Every other line is echoed with a prefix.
                   Returns the program's exit code (or -1 on timeout).

The relay's config has a history channel rule for "hist*" (history_size
1000, presence, join_leave) and an admin token (ADMIN_TOKEN) for the cut.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from wsrelay_harness import Server, clean_env, connect, http_get, recv_json, send_json  # noqa: E402

ADMIN_TOKEN = "client-test-admin-token"
HISTORY_CHANNELS = {"match": "hist*", "history_size": 1000, "presence": True, "join_leave": True}


def free_port():
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """wsrelay with the standard script on 127.0.0.1:<port>, development-mode
    auth, and a short heartbeat interval (so welcome.heartbeat drives the
    clients' app-level heartbeats quickly)."""

    def __init__(self, binary, heartbeat_interval=1, heartbeat_timeout=10):
        self.binary = binary
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="wsrelay-client-test-")
        self.config = os.path.join(self._dir.name, "config.json")
        with open(self.config, "w") as f:
            json.dump({
                "listen": {"host": "127.0.0.1", "port": self.port},
                "heartbeat": {"interval": heartbeat_interval, "timeout": heartbeat_timeout},
                "endpoints": [{"path": "/ws"}],
                "admin_token": ADMIN_TOKEN,
                "channel_options": [HISTORY_CHANNELS],
            }, f)
        self.server = None
        self.generation = 0
        self.paused = False

    @property
    def url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

    def up(self, attempts=20):
        """Starts the relay on self.port (retrying briefly if the port is
        still held by the previous process)."""
        last = None
        for _ in range(attempts):
            server = Server(self.binary, ["--config", self.config, "--port", str(self.port)],
                            env=clean_env(), port_zero=False)
            try:
                server.start()
            except Exception as exc:  # noqa: BLE001 - retried below
                last = exc
                time.sleep(0.25)
                continue
            if server.port != self.port:
                server.stop()
                raise RuntimeError("relay listened on %s, not %s" % (server.port, self.port))
            self.server = server
            self.generation += 1
            return self
        raise RuntimeError("cannot start the relay on port %d: %s" % (self.port, last))

    def down(self):
        """SIGTERM (clients see close 1001) and wait for the exit."""
        if self.server is not None:
            if self.paused:
                self.resume()
            code = self.server.stop()
            self.server = None
            return code
        return None

    def pause(self, safety=15.0):
        """SIGSTOP; thawed again automatically after `safety` seconds, so a
        failing test does not leave a frozen relay behind."""
        pid = self.server.proc.pid
        os.kill(pid, signal.SIGSTOP)
        self.paused = True
        self._thaw = threading.Timer(safety, self._safety_resume, args=(self.server,))
        self._thaw.daemon = True
        self._thaw.start()

    def _safety_resume(self, server):
        if server is self.server and self.paused:
            print("relay_control: relay still frozen after the safety delay; resuming it", flush=True)
            self.resume()

    def resume(self):
        timer = getattr(self, "_thaw", None)
        if timer is not None:
            timer.cancel()
        os.kill(self.server.proc.pid, signal.SIGCONT)
        self.paused = False

    def stderr_text(self):
        return self.server.stderr_text() if self.server else ""

    def kick(self, session):
        """Cuts one session from the server side (POST /admin/disconnect:
        the client sees close 1008)."""
        status, _, body = http_get("127.0.0.1", self.port, "/admin/disconnect", method="POST",
                                   headers={"Authorization": "Bearer " + ADMIN_TOKEN},
                                   body=json.dumps({"session": session, "reason": "cut by the test"}))
        if status != 200:
            raise RuntimeError("/admin/disconnect %s: %s %s" % (session, status, body[:200]))

    def publish(self, channel, first, last, kick=None, kick_at=None, interval=0.01):
        """Publishes chats {"n": first} .. {"n": last} to channel from a plain
        WebSocket (user "publisher"), each after the previous chat.ok, paced
        `interval` s apart so the stream spans the client's reconnect; with
        kick, cuts that session right after chat n=kick_at. Blocking (runs
        its own event loop): call it from a thread when inside one. Returns
        the seqs of the chat.oks."""
        return asyncio.run(self._publish(channel, first, last, kick, kick_at, interval))

    async def _publish(self, channel, first, last, kick, kick_at, interval):
        ws = await connect(self.url)
        try:
            welcome = await recv_json(ws)
            if welcome.get("type") != "welcome":
                raise RuntimeError("publisher: expected welcome, got %r" % welcome)
            await send_json(ws, {"type": "auth", "id": "auth", "token": "publisher"})
            reply = await recv_json(ws)
            if reply.get("type") != "auth.ok":
                raise RuntimeError("publisher: auth refused: %r" % reply)
            seqs = []
            for n in range(first, last + 1):
                await send_json(ws, {"type": "chat", "id": n, "channel": channel, "data": {"n": n}})
                reply = await recv_json(ws)  # not subscribed: only its own replies arrive
                if reply.get("type") != "chat.ok" or reply.get("id") != n:
                    raise RuntimeError("publisher: chat %d: %r" % (n, reply))
                seqs.append(reply.get("seq"))
                if kick is not None and n == kick_at:
                    await asyncio.get_running_loop().run_in_executor(None, self.kick, kick)
                if n < last:
                    await asyncio.sleep(interval)
            return seqs
        finally:
            await ws.close()

    def close(self):
        try:
            self.down()
        finally:
            self._dir.cleanup()

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.close()
        return False


def run_controlled(cmd, relay, timeout=55.0, env=None, cwd=None, prefix="  | "):
    """Runs cmd, serving its "@@ <command>" lines (see the module doc).
    Returns (exit code or -1 on timeout, list of output lines)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True, bufsize=1)
    lines = []
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    timed_out = False
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if not line.startswith("@@ "):
                print(prefix + line, flush=True)
                continue
            command = line[3:].strip()
            t0 = time.monotonic()
            try:
                if command == "down":
                    relay.down()
                elif command == "up":
                    relay.up()
                elif command == "pause":
                    relay.pause()
                elif command == "resume":
                    relay.resume()
                elif command.startswith("publish "):
                    words = command.split()
                    opts = dict(w.split("=", 1) for w in words[4:])
                    relay.publish(words[1], int(words[2]), int(words[3]), kick=opts.get("kick"),
                                  kick_at=int(opts["at"]) if "at" in opts else None)
                elif command.startswith("kick "):
                    relay.kick(command.split()[1])
                else:
                    raise ValueError("unknown control command %r" % command)
                answer = "ok"
            except Exception as exc:  # noqa: BLE001 - reported to the program
                answer = "err %s" % exc
            print("%s[control] %s -> %s (%.2f s)" % (prefix, command, answer, time.monotonic() - t0),
                  flush=True)
            try:
                proc.stdin.write(answer + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        proc.wait()
    finally:
        if not killer.is_alive() and proc.returncode in (None, -signal.SIGKILL):
            timed_out = True
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out:
        print("%s[control] killed after %.0f s" % (prefix, timeout), flush=True)
        return -1, lines
    return proc.returncode, lines
