"""wsrelay_client - a small asyncio client for the wsrelay.v1 protocol.

One file; needs only the `websockets` package (tested with Debian 12's
python3-websockets 10.4; it uses only connect(), send(), close(), async
iteration and close_code/close_reason). See docs/protocol.md for the wire format and
README.md next to this file for a tour.

    import asyncio
    from wsrelay_client import WsRelayClient

    async def main():
        async with WsRelayClient("ws://127.0.0.1:8000/ws", token="alice") as client:
            client.on("chat", lambda msg: print(msg["from"], msg["data"]))
            await client.subscribe("room1")
            await client.chat("room1", {"text": "hi"})
            await asyncio.sleep(10)

    asyncio.run(main())

What it does for you:
  * waits for `welcome`, authenticates with `token` (a string, or a function
    - plain or async - returning one: called again on every reconnect, so a
    fresh JWT can be fetched), resubscribes to every channel you subscribed to;
  * request/response: every request gets an `id`; `await client.request(...)`
    returns the reply that echoes it, raises WsRelayError on an `error` reply
    (err.code is the server's code), on timeout (code "timeout") and if the
    connection drops before the reply (code "disconnected");
  * requests made while (re)connecting wait until the connection is open again
    (their timeout keeps running);
  * an app-level `heartbeat` every welcome.heartbeat seconds; no reply within
    heartbeat_timeout => the link is declared dead and re-established;
  * automatic reconnect with exponential backoff and jitter;
  * channel memory (history channels, docs/protocol.md): remembers each
    channel's position (epoch + last seq seen) and resubscribes with `since`,
    so what was published while offline arrives as ordinary events;
    "recovery_failed" when the server cannot replay it; a broadcast already
    delivered (seq <= the position) is dropped; history(), presence(),
    presence_stats(), "join"/"leave" events;
  * events (client.on(name, callback), callbacks plain or async): "state"
    (connecting/open/reconnecting/closed), "open", "close", "welcome", "chat",
    "typing", "join", "leave", "recovery_failed", "error", "heartbeat",
    "message" (every server message).
"""

import asyncio
import itertools
import json
import logging
import random
import time

import websockets

__all__ = ["WsRelayClient", "WsRelayError", "CONNECTING", "OPEN", "RECONNECTING", "CLOSED"]

log = logging.getLogger("wsrelay_client")

CONNECTING = "connecting"
OPEN = "open"
RECONNECTING = "reconnecting"
CLOSED = "closed"


class WsRelayError(Exception):
    """An error reply from the server, or a client-side failure of a request.

    code: the server's code (bad_request, unauthorized, unknown_type, ...) or
    a client one: "timeout", "disconnected", "closed", "bad_json",
    "client_error" (the token function failed; an "error" event).
    reply: the server's error message (a dict), if there was one.
    """

    def __init__(self, code, message, reply=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.reply = reply


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class _Conn:
    """One WebSocket connection attempt."""

    def __init__(self, ws, loop):
        self.ws = ws
        self.welcome = loop.create_future()
        self.open = False
        self.abandoned = None  # (code, reason) when the client gave up on it


class _Request:
    def __init__(self, msg, future):
        self.msg = msg
        self.key = json.dumps(msg["id"], sort_keys=True)
        self.future = future
        self.conn = None


class WsRelayClient:
    """A wsrelay.v1 client that stays connected until close().

    Options (keyword only; times in seconds):
      token                  str, or a (possibly async) callable returning one;
                             None or "" = do not authenticate
      channels               channels to subscribe to on every connect
      request_timeout        default timeout of a request (10)
      connect_timeout        socket open + welcome + auth + resubscribe (10)
      heartbeat_interval     None = the server's welcome.heartbeat; 0 = off
      heartbeat_timeout      no heartbeat reply this long => reconnect (10)
      reconnect              reconnect after a drop (True)
      reconnect_delay        first retry delay before jitter (0.5)
      reconnect_delay_max    cap of the exponential backoff (15)
      reconnect_jitter       each delay is scaled by a random factor in
                             [1 - jitter, 1] (0.5)
      max_reconnect_attempts consecutive failures before giving up (None = never)
      connect_kwargs         extra arguments for websockets.connect()
    """

    def __init__(self, url, *, token=None, channels=(), request_timeout=10.0,
                 connect_timeout=10.0, heartbeat_interval=None, heartbeat_timeout=10.0,
                 reconnect=True, reconnect_delay=0.5, reconnect_delay_max=15.0,
                 reconnect_jitter=0.5, max_reconnect_attempts=None, connect_kwargs=None):
        self.url = url
        self.token = token
        self.channels = set(channels)  # restored after every reconnect
        self._positions = {}  # channel -> {"epoch", "seq"}: where we are in a history channel
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.reconnect_jitter = reconnect_jitter
        self.max_reconnect_attempts = max_reconnect_attempts
        self.connect_kwargs = dict(connect_kwargs or {})

        self.state = CLOSED
        self.session = None  # from the last welcome
        self.user = None  # from the last auth.ok
        self.heartbeat = None  # seconds, as announced by the server
        self.rtt = None  # last heartbeat round trip, seconds

        self._listeners = {}
        self._ids = itertools.count(1)
        self._pending = {}  # key -> _Request, sent, awaiting the reply
        self._conn = None
        self._wanted = False
        self._runner = None
        self._opened = None  # asyncio.Event: set while OPEN (or closed for good)
        self._ever_opened = False
        self._open_info = None
        self._connect_waiters = []
        self._background = set()

    # ---- events ---------------------------------------------------------------

    def on(self, event, callback):
        """Adds a listener (plain function or coroutine function); returns a
        function that removes it."""
        self._listeners.setdefault(event, []).append(callback)
        return lambda: self.off(event, callback)

    def off(self, event, callback):
        try:
            self._listeners.get(event, []).remove(callback)
        except ValueError:
            pass

    def _emit(self, event, *args):
        for callback in list(self._listeners.get(event, ())):
            try:
                result = callback(*args)
                if asyncio.iscoroutine(result):
                    self._spawn(result)
            except Exception:  # noqa: BLE001 - a listener's bug must not break the client
                log.exception("wsrelay_client: %r listener failed", event)

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _set_state(self, state, **info):
        if self.state == state and state != CONNECTING:
            return
        self.state = state
        self._emit("state", state, info)

    # ---- connection -------------------------------------------------------------

    async def connect(self):
        """Starts the client (it then stays connected until close()) and
        returns {session, user, reconnected, channels} once authenticated and
        subscribed. Keeps retrying meanwhile; raises WsRelayError if the
        client is closed first (close(), a refused token, no more attempts)."""
        if self.state == OPEN:
            return self._open_info
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._connect_waiters.append(waiter)
        if not self._wanted:
            self._wanted = True
            self._ever_opened = False
            if self._opened is None:
                self._opened = asyncio.Event()
            self._opened.clear()
            self._runner = asyncio.ensure_future(self._run())
        return await waiter

    async def close(self, code=1000, reason=""):
        """Closes the connection and stops reconnecting. Requests waiting for
        a reply or for the connection fail with code "closed"."""
        if not self._wanted and self._runner is None:
            self._set_state(CLOSED)
            return
        self._wanted = False
        self._finish(WsRelayError("closed", "client closed"))
        conn = self._conn
        if conn is not None:
            conn.abandoned = (code, reason)
            try:
                await asyncio.wait_for(conn.ws.close(code, reason), 2)
            except Exception:  # noqa: BLE001 - best effort
                pass
        runner, self._runner = self._runner, None
        if runner is not None:
            if conn is not None:
                await asyncio.wait([runner], timeout=2)  # let it report the close
            runner.cancel()
            try:
                await runner
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for task in list(self._background):
            if not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), 2.5)
                except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
        self._set_state(CLOSED, code=code, reason=reason)

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False

    def _finish(self, err):
        """Stops for good: everything waiting fails with err."""
        self._wanted = False
        for rec in list(self._pending.values()):
            self._fail(rec, err)
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(err)
        if self._opened is not None:
            self._opened.set()  # wake queued requests: they see the client is closed

    def _backoff(self, attempt):
        base = min(self.reconnect_delay_max, self.reconnect_delay * (2 ** attempt))
        return base * (1 - self.reconnect_jitter * random.random())

    async def _run(self):
        attempt = 0
        try:
            while self._wanted:
                self._set_state(CONNECTING, attempt=attempt)
                code, reason, was_open = await self._connection()
                if was_open:
                    attempt = 0
                self._emit("close", {"code": code, "reason": reason, "was_open": was_open})
                if not self._wanted:
                    break
                if not self.reconnect or (self.max_reconnect_attempts is not None
                                          and attempt >= self.max_reconnect_attempts):
                    self._finish(WsRelayError(
                        "closed", "connection closed (%s) and not reconnecting" % code))
                    break
                delay = self._backoff(attempt)
                attempt += 1
                self._set_state(RECONNECTING, attempt=attempt, delay=delay, code=code, reason=reason)
                await asyncio.sleep(delay)
        finally:
            self._conn = None
            if self.state != CLOSED:
                self._set_state(CLOSED)

    async def _connection(self):
        """One connection, from opening to its end: (code, reason, was_open)."""
        kwargs = {"ping_interval": None, "max_size": None, "close_timeout": 1}
        kwargs.update(self.connect_kwargs)
        try:
            ws = await asyncio.wait_for(websockets.connect(self.url, **kwargs), self.connect_timeout)
        except asyncio.TimeoutError:
            return 1006, "connect timeout", False
        except (OSError, websockets.WebSocketException) as exc:
            return 1006, "connection failed: %s" % exc, False
        conn = _Conn(ws, asyncio.get_running_loop())
        self._conn = conn
        reader = asyncio.ensure_future(self._read_loop(conn))
        heartbeat = None
        try:
            try:
                await asyncio.wait_for(self._handshake(conn, reader), self.connect_timeout)
            except asyncio.TimeoutError:
                conn.abandoned = (4000, "connect timeout")
            except WsRelayError as err:
                if err.code in ("unauthorized", "bad_request"):
                    # The token was refused: retrying with the same token cannot help.
                    self._emit("error", err)
                    self._finish(err)
                    conn.abandoned = (1000, "")
                elif conn.abandoned is None and not reader.done():
                    conn.abandoned = (4000, "handshake failed: %s" % err.message)
            except Exception as exc:  # noqa: BLE001 - e.g. the token function failed
                self._emit("error", WsRelayError("client_error", "handshake failed: %r" % exc))
                conn.abandoned = (4000, "handshake failed: %s" % type(exc).__name__)
            if conn.abandoned is None and not reader.done():
                heartbeat = asyncio.ensure_future(self._heartbeat_loop(conn, reader))
                await asyncio.wait([reader])  # until the connection ends
        finally:
            self._conn = None
            if self._wanted:
                self._opened.clear()  # requests made from now on wait for the next open
            if heartbeat is not None:
                heartbeat.cancel()
            if not reader.done():
                reader.cancel()
            for rec in list(self._pending.values()):
                if rec.conn is conn:
                    self._fail(rec, WsRelayError("disconnected", "the connection closed before the reply"))
            if conn.abandoned is not None:
                # Give up at once; the close handshake finishes in the background.
                self._spawn(self._close_quietly(ws, *conn.abandoned))
        if conn.abandoned is not None:
            code, reason = conn.abandoned
        else:
            code = ws.close_code if ws.close_code is not None else 1006
            reason = ws.close_reason or ""
        return code, reason, conn.open

    @staticmethod
    async def _close_quietly(ws, code, reason):
        try:
            await ws.close(code, reason)
        except Exception:  # noqa: BLE001 - best effort
            pass

    async def _handshake(self, conn, reader):
        await asyncio.wait([conn.welcome, reader], return_when=asyncio.FIRST_COMPLETED)
        if not conn.welcome.done():
            raise WsRelayError("disconnected", "the connection closed before the welcome")
        token = self.token
        if callable(token):
            token = token()
            if asyncio.iscoroutine(token):
                token = await token
        if token:
            ok = await self._call(conn, {"type": "auth", "token": token}, self.request_timeout)
            self.user = ok.get("user")
        channels = sorted(self.channels)
        results = await asyncio.gather(
            *(self._call(conn, self._resubscribe_msg(ch), self.request_timeout)
              for ch in channels), return_exceptions=True)
        for channel, result in zip(channels, results):
            if isinstance(result, BaseException):
                if not isinstance(result, WsRelayError) or result.reply is None:
                    raise result  # timeout / disconnected: try the connection again
                self.channels.discard(channel)  # refused by the server: forget it
                self._positions.pop(channel, None)
                self._emit("error", result)
        conn.open = True
        info = {"session": self.session, "user": self.user, "reconnected": self._ever_opened,
                "channels": sorted(self.channels)}
        self._ever_opened = True
        self._open_info = info
        self.state = OPEN
        self._opened.set()  # queued requests go out now
        self._emit("state", OPEN, info)
        self._emit("open", info)
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(info)

    async def _heartbeat_loop(self, conn, reader):
        interval = self.heartbeat_interval
        if interval is None:
            interval = self.heartbeat if isinstance(self.heartbeat, (int, float)) else 0
        if not interval or interval <= 0:
            return
        while not reader.done():
            await asyncio.sleep(interval)
            t0 = time.monotonic()
            try:
                reply = await self._call(conn, {"type": "heartbeat"}, self.heartbeat_timeout)
            except WsRelayError as err:
                if err.code == "timeout":
                    conn.abandoned = (4000, "heartbeat timeout")
                    reader.cancel()  # ends the connection at once
                return
            self.rtt = time.monotonic() - t0
            self._emit("heartbeat", {"rtt": self.rtt, "ts": reply.get("ts")})

    async def _read_loop(self, conn):
        try:
            async for frame in conn.ws:
                self._on_frame(conn, frame)
        except websockets.ConnectionClosed:
            pass

    # ---- incoming ---------------------------------------------------------------------

    def _on_frame(self, conn, frame):
        try:
            msg = json.loads(frame)
        except (TypeError, ValueError):
            self._emit("error", WsRelayError("bad_json", "the server sent a frame that is not JSON"))
            return
        if not isinstance(msg, dict):
            return
        if self._is_duplicate(msg):
            return
        self._emit("message", msg)
        if not conn.welcome.done():
            if msg.get("type") == "welcome":
                self.session = msg.get("session")
                self.heartbeat = msg.get("heartbeat")
                conn.welcome.set_result(msg)
                self._emit("welcome", msg)
            return
        if "id" in msg:
            rec = self._pending.get(json.dumps(msg["id"], sort_keys=True))
            if rec is not None:
                self._settle(rec, msg)
                return
        kind = msg.get("type")
        if kind == "chat":
            self._emit("chat", msg)
        elif kind == "typing":
            self._emit("typing", msg)
        elif kind in ("join", "leave"):
            self._emit(kind, msg)
        elif kind == "error":
            self._emit("error", WsRelayError(msg.get("code"), msg.get("message"), msg))

    # ---- channel memory -------------------------------------------------------------------

    def position(self, channel):
        """Where this client is in a history channel's stream: {"epoch", "seq"}
        (the last seq delivered), or None (not a history channel, or not
        subscribed)."""
        pos = self._positions.get(channel)
        return dict(pos) if pos is not None else None

    def _resubscribe_msg(self, channel):
        pos = self._positions.get(channel)
        if pos is None:
            return {"type": "subscribe", "channel": channel}
        return {"type": "subscribe", "channel": channel, "since": {"seq": pos["seq"], "epoch": pos["epoch"]}}

    def _is_duplicate(self, msg):
        """A broadcast of a channel whose position is known (no id, a seq):
        True if it was delivered already (seq <= the position); otherwise it
        moves the position on."""
        seq = msg.get("seq")
        if "id" in msg or not isinstance(msg.get("channel"), str) or not _is_int(seq):
            return False
        pos = self._positions.get(msg["channel"])
        if pos is None:
            return False
        if seq <= pos["seq"]:
            return True
        pos["seq"] = seq
        return False

    def _on_subscribed(self, request, reply):
        """The reply to a subscribe (ours or one sent with request()), handled
        as it arrives, before the broadcasts behind it: takes the channel's
        position from it and reports a recovery that failed."""
        channel = request.get("channel")
        if not isinstance(channel, str) or channel not in self.channels:
            return
        since = request.get("since") if isinstance(request.get("since"), dict) else None
        known = self._positions.get(channel)
        epoch, seq = reply.get("epoch"), reply.get("seq")
        has_position = isinstance(epoch, str) and _is_int(seq)
        if has_position:
            # Recovered: what was missed follows this reply, so the position
            # stays at `since` and the replay moves it on.
            at = since["seq"] if since is not None and reply.get("recovered") is True else seq
            if known is not None and known["epoch"] == epoch:
                at = max(at, known["seq"])
            self._positions[channel] = {"epoch": epoch, "seq": at}
        else:
            self._positions.pop(channel, None)  # the channel keeps no history (now)
        if since is not None and reply.get("recovered") is not True:
            self._emit("recovery_failed", {
                "channel": channel,
                "since": {"seq": since.get("seq"), "epoch": since.get("epoch")},
                "epoch": epoch if has_position else None,
                "seq": seq if has_position else None,
            })

    # ---- requests -----------------------------------------------------------------------

    async def request(self, msg, timeout=None):
        """Sends msg (a dict with a string "type") and returns the reply that
        echoes its id (one is added unless present). Raises WsRelayError on an
        error reply, on timeout ("timeout"), if the connection drops before the
        reply ("disconnected") or the client is closed ("closed"). While
        (re)connecting the request waits for the connection."""
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise TypeError("a request needs a string 'type'")
        if timeout is None:
            timeout = self.request_timeout
        if not self._wanted:
            raise WsRelayError("closed", "not connected: call connect() first")
        out = dict(msg)
        out.setdefault("id", next(self._ids))
        rec = _Request(out, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(self._send_request(rec), timeout)
        except asyncio.TimeoutError:
            raise WsRelayError("timeout", "no reply to %r (id %s) within %s s"
                               % (out["type"], rec.key, timeout)) from None
        finally:
            self._forget(rec)

    async def _send_request(self, rec):
        while True:
            if not self._wanted:
                raise WsRelayError("closed", "client closed")
            if self.state == OPEN and self._conn is not None and self._conn.open:
                break
            await self._opened.wait()
            if self.state != OPEN:
                await asyncio.sleep(0)  # woken by close(), or the link dropped again
        self._transmit(rec, self._conn)
        return await rec.future

    async def _call(self, conn, msg, timeout):
        """An internal request on a given connection (auth, subscribe, heartbeat)."""
        out = dict(msg, id=next(self._ids))
        rec = _Request(out, asyncio.get_running_loop().create_future())
        self._transmit(rec, conn)
        try:
            return await asyncio.wait_for(rec.future, timeout)
        except asyncio.TimeoutError:
            raise WsRelayError("timeout", "no reply to %r within %s s" % (out["type"], timeout)) from None
        finally:
            self._forget(rec)

    def _transmit(self, rec, conn):
        rec.conn = conn
        self._pending[rec.key] = rec
        self._spawn(self._write(conn, rec))

    async def _write(self, conn, rec):
        try:
            await conn.ws.send(json.dumps(rec.msg))
        except Exception:  # noqa: BLE001 - closed while sending
            self._fail(rec, WsRelayError("disconnected", "the connection is not open"))

    def _settle(self, rec, reply):
        self._forget(rec)
        if rec.msg.get("type") == "subscribe" and reply.get("type") == "subscribe.ok":
            self._on_subscribed(rec.msg, reply)
        if rec.future.done():
            return
        if reply.get("type") == "error":
            rec.future.set_exception(WsRelayError(reply.get("code"), reply.get("message"), reply))
        else:
            rec.future.set_result(reply)

    def _fail(self, rec, err):
        self._forget(rec)
        if not rec.future.done():
            rec.future.set_exception(err)
            rec.future.exception()  # mark retrieved: nobody may be awaiting it any more

    def _forget(self, rec):
        if self._pending.get(rec.key) is rec:
            del self._pending[rec.key]

    async def send(self, msg):
        """Sends a message without waiting for a reply. False if not open."""
        conn = self._conn
        if self.state != OPEN or conn is None:
            return False
        try:
            await conn.ws.send(json.dumps(msg))
            return True
        except websockets.ConnectionClosed:
            return False

    # ---- the wsrelay.v1 requests ---------------------------------------------------------

    async def subscribe(self, channel, timeout=None):
        """Joins a channel (remembered: rejoined after every reconnect).
        Returns the subscribe.ok reply."""
        self.channels.add(channel)
        try:
            return await self.request({"type": "subscribe", "channel": channel}, timeout)
        except WsRelayError as err:
            if err.reply is not None:
                self.channels.discard(channel)  # the server refused it
                self._positions.pop(channel, None)
            raise

    async def unsubscribe(self, channel, timeout=None):
        """Leaves a channel (and forgets it and its position). Returns the
        unsubscribe.ok reply."""
        self.channels.discard(channel)
        self._positions.pop(channel, None)
        return await self.request({"type": "unsubscribe", "channel": channel}, timeout)

    async def chat(self, channel, data, timeout=None):
        """Publishes data (any JSON value) to a channel; returns chat.ok ({seq})."""
        return await self.request({"type": "chat", "channel": channel, "data": data}, timeout)

    async def typing(self, channel, typing=True):
        """Tells the channel's other subscribers whether this user is typing.
        Fire and forget (the server does not reply); False if not connected."""
        return await self.send({"type": "typing", "channel": channel, "typing": bool(typing)})

    async def history(self, channel, limit=None, since=None, timeout=None):
        """A history channel's last publications (oldest first). limit: at
        most this many (capped by the channel's history_size); since:
        {"seq", "epoch"}, only those after it. Returns history.ok ({epoch,
        seq, [recovered], messages}); error "not_available" if the channel
        keeps no history."""
        msg = {"type": "history", "channel": channel}
        if limit is not None:
            msg["limit"] = limit
        if since is not None:
            msg["since"] = {"seq": since["seq"], "epoch": since["epoch"]}
        return await self.request(msg, timeout)

    async def presence(self, channel, timeout=None):
        """Who is in a presence channel: presence.ok ({clients: [{session, user}]})."""
        return await self.request({"type": "presence", "channel": channel}, timeout)

    async def presence_stats(self, channel, timeout=None):
        """How many are in a presence channel: presence_stats.ok ({clients, users})."""
        return await self.request({"type": "presence_stats", "channel": channel}, timeout)

    async def ping(self, timeout=None):
        """One app-level heartbeat round trip; returns the reply ({ts})."""
        return await self.request({"type": "heartbeat"}, timeout)


# ---- a chat console: python3 wsrelay_client.py [URL [USER [CHANNEL]]] -------------------------

async def _console(url, user, channel):
    client = WsRelayClient(url, token=user)
    client.on("state", lambda state, info: print("[state] %s%s" % (
        state, " in %.1f s" % info["delay"] if state == RECONNECTING else "")))
    client.on("chat", lambda m: print("[%s] %s: %s" % (m["channel"], m["from"], json.dumps(m["data"]))))
    client.on("typing", lambda m: print("[%s] %s %s" % (
        m["channel"], m["from"], "is typing" if m["typing"] else "stopped typing")))
    client.on("join", lambda m: print("[%s] %s joined" % (m["channel"], m["user"])))
    client.on("leave", lambda m: print("[%s] %s left" % (m["channel"], m["user"])))
    client.on("recovery_failed", lambda ev: print("[%s] missed messages could not be replayed" % ev["channel"]))
    client.on("error", lambda err: print("[error] %s" % err))
    info = await client.connect()
    print("connected as %s, session %s; type lines to chat in %s, Ctrl-D to quit"
          % (info["user"], info["session"], channel))
    await client.subscribe(channel)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, input)
            await client.typing(channel, True)
            await client.chat(channel, {"text": line})
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        await client.close()


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    try:
        asyncio.run(_console(args[0] if len(args) > 0 else "ws://127.0.0.1:8000/ws",
                             args[1] if len(args) > 1 else "python",
                             args[2] if len(args) > 2 else "room1"))
    except KeyboardInterrupt:
        pass
