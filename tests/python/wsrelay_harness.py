"""Shared helpers for the Python end-to-end tests of wsrelay.

Standard library + Debian's python3-websockets (10.x) only. Run the tests with
/usr/bin/python3 (the system interpreter that has python3-websockets):

    /usr/bin/python3 tests/python/test_X.py <path-to-wsrelay> <source-dir>

Pieces:
  * Server    - start the binary on --port 0, find the port in its stderr
                "listening on ws://HOST:PORT endpoints: ..." line, keep draining
                stderr in a thread, stop it with SIGTERM (then SIGKILL).
  * Checker   - check()/equal() record pass/fail and print each failure;
                report() prints "N passed, M failed" and gives the exit code.
  * connect(), send_json(), recv_json(), recv_until(), expect_silence()
              - asyncio WebSocket helpers, each with a timeout.
  * http_get()  - a plain HTTP GET via http.client.
"""

import asyncio
import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import websockets

DEFAULT_TIMEOUT = 5.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

LISTEN_RE = re.compile(r"listening on wss?://(\S+):(\d+) endpoints:")


def usage_args():
    """(binary, source_dir) from argv, or exit 2 with a usage line."""
    if len(sys.argv) < 2:
        print("usage: %s <path-to-wsrelay> [<source-dir>]" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    binary = os.path.abspath(sys.argv[1])
    source_dir = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", ".."))
    if not os.access(binary, os.X_OK):
        print("wsrelay binary not found or not executable: %s" % binary, file=sys.stderr)
        sys.exit(2)
    return binary, source_dir


def clean_env(extra=None, remove=("WSRELAY_JWT_SECRET",)):
    """A copy of os.environ without the given variables, plus extra."""
    env = dict(os.environ)
    for name in remove:
        env.pop(name, None)
    if extra:
        env.update(extra)
    return env


# ---- results ---------------------------------------------------------------


def free_port():
    """A loopback port free right now (for a server whose port must be known
    before it starts, e.g. to restart it on the same one)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_hs256_jwt(claims, secret):
    """An HS256 token as the relay's jwt extension checks it."""
    def b64url(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode("ascii"), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64url(sig))


class Section:
    """async with Section(c, "name"): an exception inside is one failed
    check naming the section, and the run goes on with the next one."""

    def __init__(self, checker, name):
        self.checker = checker
        self.name = name

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            self.checker.error("section '%s'" % self.name, exc)
            return True
        return False


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, condition, what, detail=None):
        if condition:
            self.passed += 1
        else:
            self.failed += 1
            line = "FAIL: %s" % what
            if detail is not None:
                line += " -- %s" % (detail,)
            self.failures.append(line)
            print(line, flush=True)
        return bool(condition)

    def equal(self, actual, expected, what):
        return self.check(actual == expected, what,
                          "expected %r, got %r" % (expected, actual))

    def error(self, what, exc):
        """Records an unexpected exception as one failed check."""
        self.failed += 1
        line = "FAIL: %s raised %s: %s" % (what, type(exc).__name__, exc)
        self.failures.append(line)
        print(line, flush=True)
        traceback.print_exc(file=sys.stdout)

    def report(self):
        if self.failures:
            print("\nFailed checks:")
            for line in self.failures:
                print("  " + line)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


# ---- the server process ------------------------------------------------------


class ServerError(Exception):
    pass


def _die_with_parent():
    """preexec_fn: if this test process dies (e.g. killed by a ctest
    timeout), the kernel sends the server SIGTERM, so none is left behind."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort, Linux only
        pass


_live_servers = set()


@atexit.register
def _stop_leftovers():
    for server in list(_live_servers):
        try:
            server.stop(timeout=3)
        except Exception:  # noqa: BLE001
            pass


class Server:
    """One wsrelay process on an ephemeral port (unless args choose one)."""

    def __init__(self, binary, args=(), env=None, port_zero=True, start_timeout=START_TIMEOUT,
                 cwd=None):
        self.binary = binary
        self.cwd = cwd
        self.args = list(args)
        if port_zero and "--port" not in self.args:
            self.args = ["--port", "0"] + self.args
        self.env = env if env is not None else clean_env()
        self.start_timeout = start_timeout
        self.proc = None
        self.host = None
        self.port = None
        self.listen_lines = []
        self._lines = []
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._threads = []
        self.returncode = None

    # stderr lines seen so far
    @property
    def stderr_lines(self):
        with self._lock:
            return list(self._lines)

    def stderr_text(self):
        return "\n".join(self.stderr_lines)

    def _drain(self, stream, keep):
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if keep:
                    with self._lock:
                        self._lines.append(line)
                    m = LISTEN_RE.search(line)
                    if m:
                        with self._lock:
                            self.listen_lines.append((m.group(1), int(m.group(2))))
                        self._listening.set()
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary] + self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            preexec_fn=_die_with_parent,
        )
        _live_servers.add(self)
        for stream, keep in ((self.proc.stderr, True), (self.proc.stdout, False)):
            t = threading.Thread(target=self._drain, args=(stream, keep), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._listening.wait(0.05):
                break
            if self.proc.poll() is not None:
                # Let the reader catch the last lines.
                for t in self._threads:
                    t.join(1.0)
                raise ServerError("wsrelay exited with %s before listening; stderr:\n%s"
                                  % (self.proc.returncode, self.stderr_text()))
        else:
            self.stop()
            raise ServerError("wsrelay printed no 'listening on' line within %.0f s; stderr:\n%s"
                              % (self.start_timeout, self.stderr_text()))
        with self._lock:
            self.host, self.port = self.listen_lines[0]
        return self

    def wait_for_stderr(self, predicate, timeout=DEFAULT_TIMEOUT):
        """Waits until predicate(stderr_lines) is true (the lines are read by
        a thread, so one the server has printed may not be there yet);
        returns the last value of the predicate."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.stderr_lines)
            if result or time.monotonic() >= deadline:
                return result
            time.sleep(0.02)

    def connect_host(self):
        # The logged host is the configured one; 0.0.0.0/:: are not connectable.
        if self.host in ("0.0.0.0", "", "*"):
            return "127.0.0.1"
        if self.host in ("::", "[::]"):
            return "::1"
        return self.host

    def url(self, path="/ws"):
        host = self.connect_host()
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        return "ws://%s:%d%s" % (host, self.port, path)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        """Waits for the process to exit on its own; returns its exit code, or
        None if it is still running after timeout. Once it has exited, the
        stderr reader is given time to take the last lines, so stderr_lines
        is complete when this returns (the pipe's tail can lag the exit)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self._threads:
            t.join(2.0)
        return rc

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.proc is None:
            return None
        died_on_its_own = self.proc.poll() is not None
        if not died_on_its_own:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print("wsrelay (pid %d) ignored SIGTERM for %.0f s; killing it"
                      % (self.proc.pid, timeout), flush=True)
                self.proc.kill()
                self.proc.wait(5)
        for t in self._threads:
            t.join(2.0)
        _live_servers.discard(self)
        self.returncode = self.proc.returncode
        self._report_death(died_on_its_own)
        return self.returncode

    # A server that died under a test, or a sanitizer report in its stderr,
    # is shown: with ASan linked in, UBSan ignores log_path and writes its
    # report to stderr only, which the test would otherwise swallow (a CI run
    # once failed "without a sanitizer report" on a signed overflow).
    SANITIZER_MARKS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")

    def _report_death(self, died_on_its_own):
        text = self.stderr_text()
        marked = any(mark in text for mark in self.SANITIZER_MARKS)
        # One that never listened was already reported by start()'s ServerError.
        died_under_test = died_on_its_own and self.returncode != 0 and self._listening.is_set()
        if marked or died_under_test:
            print("wsrelay (pid %d) %s with %s; the end of its stderr:\n%s"
                  % (self.proc.pid, "died" if died_on_its_own else "stopped", self.returncode,
                     "\n".join(self.stderr_lines[-40:])), flush=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def run_binary(binary, args, env=None, timeout=15.0, cwd=None):
    """Runs the binary to completion: (returncode, stdout, stderr) as text.
    Raises subprocess.TimeoutExpired (after killing it) if it runs too long."""
    proc = subprocess.run([binary] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env if env is not None else clean_env(), timeout=timeout,
                          cwd=cwd)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def _decode_proc_addr(hex_addr, family):
    import ipaddress
    raw = bytes.fromhex(hex_addr)
    if family == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6 prints the address as four host-order 32-bit words.
    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
    address = ipaddress.IPv6Address(b"".join(words))
    if address.ipv4_mapped is not None:
        return "::ffff:%s" % address.ipv4_mapped  # an IPv4 address bound on the dual-stack socket
    return str(address)


def listening_sockets(pid):
    """[(address, port)] of the TCP sockets in LISTEN state owned by pid,
    from /proc (Linux only; [] if unreadable). Addresses as strings, e.g.
    "127.0.0.1", "::", "::ffff:127.0.0.1"."""
    inodes = set()
    try:
        fd_dir = "/proc/%d/fd" % pid
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    found = []
    for name, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10 or parts[3] != "0A" or parts[9] not in inodes:
                        continue
                    addr, port = parts[1].split(":")
                    found.append((_decode_proc_addr(addr, family), int(port, 16)))
        except OSError:
            continue
    return found


# ---- WebSocket helpers --------------------------------------------------------


async def connect(url, timeout=DEFAULT_TIMEOUT, **kwargs):
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("close_timeout", 2)
    kwargs.setdefault("open_timeout", timeout)
    return await asyncio.wait_for(websockets.connect(url, **kwargs), timeout + 1)


async def close_quietly(ws, timeout=3.0):
    if ws is None:
        return
    try:
        await asyncio.wait_for(ws.close(), timeout)
    except Exception:  # noqa: BLE001 - best effort
        pass


async def send_json(ws, obj):
    await ws.send(json.dumps(obj))


async def recv_text(ws, timeout=DEFAULT_TIMEOUT):
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_json(ws, timeout=DEFAULT_TIMEOUT):
    """Next frame decoded as JSON. Raises asyncio.TimeoutError,
    websockets.ConnectionClosed or ValueError (not JSON)."""
    text = await recv_text(ws, timeout)
    if isinstance(text, bytes):
        raise ValueError("expected a text frame, got %d binary bytes" % len(text))
    return json.loads(text)


async def recv_until(ws, predicate, timeout=DEFAULT_TIMEOUT):
    """Reads frames until predicate(msg) is true; returns (msg, skipped)."""
    skipped = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError("no matching frame within %.1f s (skipped %r)" % (timeout, skipped))
        msg = await recv_json(ws, left)
        if predicate(msg):
            return msg, skipped
        skipped.append(msg)


async def expect_silence(ws, seconds=0.3):
    """None if nothing arrives within `seconds`, else the frame that arrived."""
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return None
    try:
        return json.loads(frame)
    except (TypeError, ValueError):
        return frame


async def request(ws, obj, timeout=DEFAULT_TIMEOUT):
    """Sends obj and returns the next frame."""
    await send_json(ws, obj)
    return await recv_json(ws, timeout)


# ---- a minimal raw WebSocket client -------------------------------------------------
# For the cases where a full client library gets in the way, e.g. streaming an
# oversized fragmented message while the server has stopped reading: the
# library's own writer blocks and it may give up on the connection before it
# has handed over the frames that did arrive. This one writes and reads at the
# same time and reports every frame it got.

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_frame(opcode, payload, fin=True):
    """One client frame (masked, as RFC 6455 requires of clients)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        header = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", b0, 0x80 | 127, n)
    mask = os.urandom(4)
    if n:
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    else:
        masked = b""
    return header + mask + masked


def parse_frames(data):
    """[(fin, opcode, payload)] of the complete server frames in data."""
    frames = []
    i = 0
    while i + 2 <= len(data):
        fin = bool(data[i] & 0x80)
        opcode = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            if j + 2 > len(data):
                break
            n = struct.unpack("!H", data[j:j + 2])[0]
            j += 2
        elif n == 127:
            if j + 8 > len(data):
                break
            n = struct.unpack("!Q", data[j:j + 8])[0]
            j += 8
        if j + n > len(data):
            break
        frames.append((fin, opcode, data[j:j + n]))
        i = j + n
    return frames


def raw_ws_open(host, port, path, timeout=10.0, rcvbuf=None):
    """Opens a WebSocket with a bare socket. Returns (sock, data, failure):
    on success failure is None, sock is connected past the 101 and data holds
    what arrived after it; else sock is closed and failure one of "eof",
    "timeout" or "refused: <status line>". rcvbuf: a small receive buffer
    (SO_RCVBUF, set before connecting), for a client that stops reading."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    if rcvbuf is None:
        sock = socket.create_connection((host, port), timeout=timeout)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
    try:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode("ascii"))
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                sock.close()
                return None, b"", "timeout"
            chunk = sock.recv(65536)
            if not chunk:
                sock.close()
                return None, b"", "eof"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if " 101 " not in status_line + " ":
            sock.close()
            return None, b"", "refused: " + status_line
        return sock, data, None
    except BaseException:
        sock.close()
        raise


def pump_once(sock, outgoing, sent, wait):
    """One turn of a bare client on a non-blocking socket: writes more of
    `outgoing` (from offset `sent`) if it can, reads what has arrived, waiting
    up to `wait` s for either. Returns (sent, bytes read, end) with end None
    while the connection is open, else "eof" or "reset". A failed write
    counts as all written: the server is gone, what it sent is still read."""
    want_write = [sock] if sent < len(outgoing) else []
    readable, writable, _ = select.select([sock], want_write, [], wait)
    if writable:
        try:
            sent += sock.send(outgoing[sent:sent + 65536])
        except BlockingIOError:
            pass
        except OSError:
            sent = len(outgoing)
    if not readable:
        return sent, b"", None
    try:
        chunk = sock.recv(65536)
    except BlockingIOError:
        return sent, b"", None
    except ConnectionResetError:
        return sent, b"", "reset"
    return sent, chunk, None if chunk else "eof"


def raw_ws_session(host, port, path, outgoing, timeout=10.0):
    """Opens a WebSocket with a bare socket, writes `outgoing` (bytes: client
    frames) while reading, until the server closes the TCP connection or
    `timeout` passes. Returns (frames, end) with frames as from parse_frames
    (the first is normally the welcome) and end one of "eof", "reset",
    "timeout" or "refused: <status line>"."""
    deadline = time.monotonic() + timeout
    sock, data, failure = raw_ws_open(host, port, path, timeout)
    if failure is not None:
        return [], failure
    try:
        sock.setblocking(False)
        sent = 0
        end = "timeout"
        while time.monotonic() < deadline:
            sent, chunk, ended = pump_once(sock, outgoing, sent, 0.2)
            if ended is not None:
                end = ended
                break
            data += chunk
        return parse_frames(data), end
    finally:
        sock.close()


# ---- HTTP ---------------------------------------------------------------------


def raw_http(host, port, data, timeout=5.0, until=None):
    """Sends raw bytes on a fresh TCP connection; returns what came back
    before the server closed (or reset) it, or as soon as `until` (bytes)
    has been read."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while until is None or until not in out:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def http_get(host, port, path, timeout=DEFAULT_TIMEOUT, method="GET", headers=None, body=None):
    """(status, headers dict lower-cased, body text)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, body
    finally:
        conn.close()


def self_signed_cert(folder, cert_name="cert.pem", key_name="key.pem"):
    """A one-day self-signed certificate for localhost and 127.0.0.1 in
    folder (openssl req); returns (cert, key) paths."""
    cert, key = os.path.join(folder, cert_name), os.path.join(folder, key_name)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def run_scenarios(checker, binary, scenarios):
    """Runs each scenario(checker, binary, folder) in a fresh temporary
    folder; one that raises is reported and the next still runs."""
    for scenario in scenarios:
        with tempfile.TemporaryDirectory() as folder:
            try:
                await scenario(checker, binary, folder)
            except Exception as exc:  # noqa: BLE001
                checker.error(scenario.__name__, exc)


def run_async_main(coro_fn, checker):
    """Runs coro_fn(checker) with a hard overall timeout; exceptions fail."""
    try:
        asyncio.run(asyncio.wait_for(coro_fn(checker), 100))
    except asyncio.TimeoutError as exc:
        checker.error("the test body (overall 100 s timeout)", exc)
    except Exception as exc:  # noqa: BLE001
        checker.error("the test body", exc)
    return checker.report()
