#!/usr/bin/python3
"""A fake OpenAI Realtime API upstream: a real WebSocket server for tests.

Runs on Debian's python3 (/usr/bin/python3) with python3-websockets 10.4,
standard library otherwise. See README.md in this directory for the flags and
the control commands. In short:

    /usr/bin/python3 fake_realtime.py [--port 0] [--tls] [--cert-dir DIR]
        [--record FILE] [--deltas N] [--delay-ms MS] [--refuse]
        [--reject-status CODE] [--drop-after N] [--ignore-stdin] [--verbose]

Binds 127.0.0.1 and prints "READY ws://127.0.0.1:PORT" (or wss://) on stdout
when it accepts connections; with --tls it prints "CERT <path>" first. Exits
0 on SIGTERM/SIGINT or when stdin reaches EOF (unless --ignore-stdin).

Importable helpers for Python tests:

    start_fake(args_list) -> (proc, url, cert_path)   spawn it, wait for READY
    stop_fake(proc) -> returncode                      SIGTERM, wait, reap
    read_records(path) -> list[dict]                   parse the --record file
    wait_records(path, predicate, timeout) -> list     poll until predicate
    header(record, name) -> str | None                 case-insensitive lookup
"""

import argparse
import asyncio
import base64
import http
import json
import os
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

THIS_FILE = os.path.abspath(__file__)
PYTHON = "/usr/bin/python3"

DEFAULT_DELTAS = 3
SLOW_DELTA_DELAY = 1.0
CLOSE_CODE = 1011
CLOSE_REASON = "upstream going away"
MODEL = "gpt-realtime"


# --------------------------------------------------------------------------
# Helpers usable without websockets (the test side imports these).
# --------------------------------------------------------------------------

def start_fake(args_list=(), timeout=20.0, env=None, stderr=None):
    """Spawn the fake with /usr/bin/python3 and wait for its READY line.

    Returns (proc, url, cert_path); cert_path is None without --tls. stdin
    is a pipe kept open by the returned Popen, so the fake exits when the
    test process dies. stderr is inherited unless given.
    """
    proc = subprocess.Popen(
        [PYTHON, THIS_FILE] + [str(a) for a in args_list],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
    )
    url = None
    cert = None
    buf = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    try:
        while url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("fake_realtime did not print READY within %.1fs" % timeout)
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                rc = proc.wait(timeout=5)
                raise RuntimeError("fake_realtime exited (rc=%s) before READY" % rc)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace").strip()
                if text.startswith("CERT "):
                    cert = text[5:]
                elif text.startswith("READY "):
                    url = text[6:]
                    break
    except BaseException:
        _kill(proc)
        raise
    return proc, url, cert


def stop_fake(proc, timeout=10.0):
    """SIGTERM the fake (SIGKILL after timeout) and return its exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _close_pipes(proc)
    return proc.returncode


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    _close_pipes(proc)


def _close_pipes(proc):
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


def read_records(path):
    """The --record file as a list of dicts (an unfinished last line is skipped)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    records = []
    for line in text.split("\n")[:-1]:  # the part after the last "\n" is unfinished
        if line.strip():
            records.append(json.loads(line))
    return records


def wait_records(path, predicate, timeout=5.0, interval=0.02):
    """Poll read_records(path) until predicate(records) is true; return them.

    Raises TimeoutError (with the records seen) if it never becomes true.
    """
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(path)
        if predicate(records):
            return records
        if time.monotonic() >= deadline:
            raise TimeoutError("records never matched; have %d: %r" % (len(records), records))
        time.sleep(interval)


def header(record, name):
    """Case-insensitive header lookup in an "open"/"reject" record."""
    for key, value in (record.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def new_id(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:20])


def split_text(text, n):
    """text in n pieces (some may be empty if text is short); they concatenate to text."""
    length = len(text)
    return [text[i * length // n:(i + 1) * length // n] for i in range(n)]


def answer_for(text):
    """The deterministic answer the fake gives to a user text."""
    return "echo: " + text


# --------------------------------------------------------------------------
# The server.
# --------------------------------------------------------------------------

def log(cfg, message):
    if cfg.verbose:
        print("fake_realtime: " + message, file=sys.stderr, flush=True)


class Recorder:
    """JSON lines, flushed one by one, so a test can read them while we run."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8") if path else None

    def write(self, conn, event, **fields):
        if self.file is None:
            return
        record = {"conn": conn, "event": event}
        record.update(fields)
        record["time"] = round(time.time(), 6)
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def headers_dict(headers):
    """Header names as received; repeated headers joined with ", "."""
    result = {}
    for name, value in headers.raw_items():
        result[name] = result[name] + ", " + value if name in result else value
    return result


def reject_body(status):
    if status == 401:
        error = {
            "message": "Incorrect API key provided: sk-***. (fake_realtime --reject-status 401)",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    else:
        error = {
            "message": "fake_realtime rejected the handshake with HTTP %d" % status,
            "type": "server_error" if status >= 500 else "invalid_request_error",
            "param": None,
            "code": "fake_reject_%d" % status,
        }
    return (json.dumps({"error": error}) + "\n").encode()


class ConnState:
    def __init__(self, conn):
        self.conn = conn
        self.session = {"id": new_id("sess"), "object": "realtime.session", "model": MODEL}
        self.last_text = None        # the last user input_text seen
        self.last_item_id = None
        self.response_task = None    # the active response, if any
        self.response_id = None
        self.response_item_id = None
        self.closed_by = "client"    # "server" once we close or drop it


class FakeRealtime:
    def __init__(self, cfg):
        self.cfg = cfg
        self.recorder = Recorder(cfg.record)
        self.conn_counter = 0

    def next_conn(self):
        self.conn_counter += 1
        return self.conn_counter

    def protocol_class(self):
        import websockets.legacy.server as wss_server

        fake = self

        class Protocol(wss_server.WebSocketServerProtocol):
            conn_id = 0

            async def process_request(self, path, request_headers):
                self.conn_id = fake.next_conn()
                status = fake.cfg.reject_status
                if status is None:
                    return None
                fake.recorder.write(self.conn_id, "reject", path=path,
                                    headers=headers_dict(request_headers), status=status)
                log(fake.cfg, "conn %d rejected with %d: %s" % (self.conn_id, status, path))
                return (http.HTTPStatus(status),
                        [("Content-Type", "application/json")],
                        reject_body(status))

        return Protocol

    # ---- sending -----------------------------------------------------------

    async def send(self, ws, event, delay=None):
        """Send one event, after --delay-ms (or the given delay, in seconds)."""
        if delay is None:
            delay = self.cfg.delay_ms / 1000.0
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(json.dumps(event))

    async def send_error(self, ws, code, message, param=None, client_event_id=None,
                         error_type="invalid_request_error"):
        await self.send(ws, {
            "type": "error",
            "event_id": new_id("evt"),
            "error": {
                "type": error_type,
                "code": code,
                "message": message,
                "param": param,
                "event_id": client_event_id,
            },
        })

    async def drop(self, ws, st):
        """Drop TCP without a Close frame (after what we sent has left)."""
        st.closed_by = "server"
        transport = ws.transport
        deadline = time.monotonic() + 1.0
        while transport.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        log(self.cfg, "conn %d: dropping TCP" % st.conn)
        transport.abort()

    # ---- connection --------------------------------------------------------

    async def handle(self, ws):
        import websockets

        st = ConnState(ws.conn_id)
        self.recorder.write(st.conn, "open", path=ws.path,
                            headers=headers_dict(ws.request_headers),
                            subprotocol=ws.subprotocol)
        log(self.cfg, "conn %d open %s" % (st.conn, ws.path))
        received = 0
        try:
            await ws.send(json.dumps({
                "type": "session.created",
                "event_id": new_id("evt"),
                "session": st.session,
            }))
            async for message in ws:
                received += 1
                if isinstance(message, bytes):
                    self.recorder.write(st.conn, "recv", binary=True,
                                        data=base64.b64encode(message).decode("ascii"))
                else:
                    self.recorder.write(st.conn, "recv", data=message,
                                        type=event_type(message))
                if self.cfg.drop_after and received >= self.cfg.drop_after:
                    await self.drop(ws, st)
                    break
                await self.on_message(ws, st, message)
        except websockets.ConnectionClosed:
            pass
        finally:
            task = st.response_task
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, websockets.ConnectionClosed):
                    pass
            await ws.wait_closed()
            self.recorder.write(st.conn, "close", code=ws.close_code,
                                reason=ws.close_reason, by=st.closed_by)
            log(self.cfg, "conn %d closed code=%s by %s" % (st.conn, ws.close_code, st.closed_by))

    async def on_message(self, ws, st, message):
        if isinstance(message, bytes):
            return  # recorded; the Realtime API speaks JSON text
        try:
            event = json.loads(message)
        except ValueError as e:
            await self.send_error(
                ws, "invalid_json",
                "The server had trouble parsing your JSON: %s. Please ensure that "
                "your JSON is properly formatted." % e)
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self.send_error(ws, "invalid_event",
                                  "Each event must be a JSON object with a string 'type'.")
            return
        kind = event["type"]
        client_event_id = event.get("event_id")
        if kind == "conversation.item.create":
            await self.on_item_create(ws, st, event, client_event_id)
        elif kind == "response.create":
            await self.on_response_create(ws, st, client_event_id)
        elif kind == "response.cancel":
            await self.on_response_cancel(ws, st, client_event_id)
        elif kind == "session.update":
            update = event.get("session")
            if isinstance(update, dict):
                for key, value in update.items():
                    if key not in ("id", "object"):
                        st.session[key] = value
            await self.send(ws, {"type": "session.updated", "event_id": new_id("evt"),
                                 "session": st.session})
        # anything else: recorded above, otherwise ignored

    async def on_item_create(self, ws, st, event, client_event_id):
        item = event.get("item")
        if not isinstance(item, dict):
            await self.send_error(ws, "missing_required_parameter",
                                  "Missing required parameter: 'item'.",
                                  param="item", client_event_id=client_event_id)
            return
        item = dict(item)
        if not item.get("id"):
            item["id"] = new_id("item")
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        if item.get("type") == "message" and item.get("role") == "user":
            texts = [part.get("text") for part in item.get("content") or []
                     if isinstance(part, dict) and part.get("type") == "input_text"
                     and isinstance(part.get("text"), str)]
            if texts:
                st.last_text = " ".join(texts)
        previous = st.last_item_id
        st.last_item_id = item["id"]
        await self.send(ws, {"type": "conversation.item.created", "event_id": new_id("evt"),
                             "previous_item_id": previous, "item": item})

    async def on_response_create(self, ws, st, client_event_id):
        if st.response_task is not None and not st.response_task.done():
            await self.send_error(
                ws, "conversation_already_has_active_response",
                "Conversation already has an active response in progress: %s. "
                "Wait until the response is finished before creating a new one."
                % st.response_id, client_event_id=client_event_id)
            return
        st.response_id = new_id("resp")
        st.response_item_id = new_id("item")
        st.response_task = asyncio.create_task(self.run_response(ws, st, client_event_id))

    async def on_response_cancel(self, ws, st, client_event_id):
        task = st.response_task
        if task is None or task.done():
            await self.send_error(ws, "response_cancel_not_active",
                                  "Cancellation failed: no active response found",
                                  client_event_id=client_event_id)
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await self.send(ws, {"type": "response.done", "event_id": new_id("evt"),
                             "response": self.response_object(
                                 st, "cancelled", None,
                                 {"type": "cancelled", "reason": "client_cancelled"})})

    def response_object(self, st, status, text, status_details=None):
        output = []
        if text is not None:
            output.append({
                "id": st.response_item_id, "object": "realtime.item", "type": "message",
                "status": "completed" if status == "completed" else "incomplete",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            })
        return {
            "id": st.response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": status_details,
            "output": output,
            "conversation_id": "conv_fake",
            "output_modalities": ["text"],
            "usage": None if status == "in_progress" else {
                "total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
        }

    async def run_response(self, ws, st, client_event_id):
        text = st.last_text if st.last_text is not None else ""
        command = text.strip()
        if command == "!error":
            await self.send(ws, {
                "type": "error",
                "event_id": new_id("evt"),
                "error": {"type": "invalid_request_error", "code": "test_error",
                          "message": "requested error", "param": None,
                          "event_id": client_event_id},
            })
            return
        await self.send(ws, {"type": "response.created", "event_id": new_id("evt"),
                             "response": self.response_object(st, "in_progress", None)})
        if command == "!close":
            st.closed_by = "server"
            log(self.cfg, "conn %d: closing %d" % (st.conn, CLOSE_CODE))
            await ws.close(CLOSE_CODE, CLOSE_REASON)
            return
        full = answer_for(text)
        common = {"response_id": st.response_id, "item_id": st.response_item_id,
                  "output_index": 0, "content_index": 0}
        for i, piece in enumerate(split_text(full, self.cfg.deltas)):
            delta = {"type": "response.output_text.delta", "event_id": new_id("evt")}
            delta.update(common)
            delta["delta"] = piece
            slow = command == "!slow" and i > 0
            await self.send(ws, delta, delay=SLOW_DELTA_DELAY if slow else None)
            if command == "!drop":
                await self.drop(ws, st)
                return
        done = {"type": "response.output_text.done", "event_id": new_id("evt")}
        done.update(common)
        done["text"] = full
        await self.send(ws, done)
        await self.send(ws, {"type": "response.done", "event_id": new_id("evt"),
                             "response": self.response_object(st, "completed", full)})


def event_type(message):
    try:
        event = json.loads(message)
    except ValueError:
        return None
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return event["type"]
    return None


def select_subprotocol(client_subprotocols, server_subprotocols):
    # Browser-style clients offer "realtime" plus "openai-insecure-api-key.<key>";
    # answer "realtime" then, otherwise the first offered one.
    if "realtime" in client_subprotocols:
        return "realtime"
    return client_subprotocols[0] if client_subprotocols else None


def make_certificate(cert_dir):
    cert = os.path.join(cert_dir, "cert.pem")
    key = os.path.join(cert_dir, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", key, "-out", cert],
        check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    return cert, key


def watch_stdin(loop, stop):
    # os.read in a thread, not sys.stdin: a daemon thread blocked in the
    # buffered reader holds its lock, and the interpreter aborts on it at exit.
    try:
        while os.read(0, 4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result("stdin EOF"))


async def serve(cfg, ssl_context):
    import websockets

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(s.name))
    if not cfg.ignore_stdin:
        threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()

    fake = FakeRealtime(cfg)
    try:
        async with websockets.serve(
            fake.handle,
            "127.0.0.1",
            cfg.port,
            create_protocol=fake.protocol_class(),
            ssl=ssl_context,
            subprotocols=["realtime"],
            select_subprotocol=select_subprotocol,
            ping_interval=None,          # no unsolicited pings: tests see exact frames
            max_size=64 * 1024 * 1024,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            scheme = "wss" if ssl_context is not None else "ws"
            print("READY %s://127.0.0.1:%d" % (scheme, port), flush=True)
            why = await stop
            log(cfg, "stopping (%s)" % why)
    finally:
        fake.recorder.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Fake OpenAI Realtime API upstream for tests.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = ephemeral)")
    parser.add_argument("--tls", action="store_true", help="serve wss:// with a fresh self-signed cert")
    parser.add_argument("--cert-dir", help="where --tls writes cert.pem/key.pem (default: a temp dir)")
    parser.add_argument("--record", help="append JSON lines about every connection and frame here")
    parser.add_argument("--deltas", type=int, default=DEFAULT_DELTAS,
                        help="response.output_text.delta events per response (default 3)")
    parser.add_argument("--delay-ms", type=int, default=0,
                        help="sleep this long before each event sent in reply (default 0)")
    parser.add_argument("--refuse", action="store_true",
                        help="reject every WebSocket handshake with HTTP 503")
    parser.add_argument("--reject-status", type=int,
                        help="reject every handshake with this HTTP status (implies --refuse)")
    parser.add_argument("--drop-after", type=int, default=0,
                        help="drop each connection's TCP after N received frames")
    parser.add_argument("--ignore-stdin", action="store_true",
                        help="do not exit when stdin reaches EOF")
    parser.add_argument("--verbose", "-v", action="store_true", help="log to stderr")
    cfg = parser.parse_args(argv)
    if cfg.deltas < 1:
        parser.error("--deltas must be at least 1")
    if cfg.delay_ms < 0:
        parser.error("--delay-ms must not be negative")
    if cfg.drop_after < 0:
        parser.error("--drop-after must not be negative")
    if cfg.reject_status is None and cfg.refuse:
        cfg.reject_status = 503
    if cfg.reject_status is not None:
        try:
            http.HTTPStatus(cfg.reject_status)
        except ValueError:
            parser.error("--reject-status %d is not a known HTTP status" % cfg.reject_status)
        if cfg.reject_status < 200 or cfg.reject_status == 101:
            parser.error("--reject-status must be a final, non-101 status")
    return cfg


def main(argv=None):
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    ssl_context = None
    temp_dir = None
    if cfg.tls:
        cert_dir = cfg.cert_dir
        if cert_dir is None:
            cert_dir = temp_dir = tempfile.mkdtemp(prefix="fake_realtime_")
        else:
            os.makedirs(cert_dir, exist_ok=True)
        try:
            cert, key = make_certificate(cert_dir)
        except (OSError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "stderr", b"") or b""
            print("fake_realtime: certificate generation failed: %s %s"
                  % (e, detail.decode("utf-8", "replace")), file=sys.stderr, flush=True)
            return 1
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(cert, key)
        print("CERT " + os.path.abspath(cert), flush=True)
    try:
        asyncio.run(serve(cfg, ssl_context))
    except OSError as e:
        print("fake_realtime: %s" % e, file=sys.stderr, flush=True)
        return 1
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
