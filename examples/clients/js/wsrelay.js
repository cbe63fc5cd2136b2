// wsrelay.js - a small client for the wsrelay.v1 protocol (docs/protocol.md).
//
// One ES module, no dependencies. Works in browsers (global WebSocket) and in
// Node (Node >= 22 has a global WebSocket; Node 20/21 with
// `--experimental-websocket`; or pass any WHATWG-style implementation, e.g.
// the npm `ws` package, as options.WebSocket).
//
//   import { WsRelayClient } from "./wsrelay.js";
//   const client = new WsRelayClient("ws://127.0.0.1:8000/ws", { token: "alice" });
//   client.on("chat", (msg) => console.log(msg.from, msg.data));
//   await client.connect();
//   await client.subscribe("room1");
//   await client.chat("room1", { text: "hi" });
//
// What it does for you:
//   * waits for `welcome`, authenticates with `token` (a string, or a function
//     returning a string or a Promise of one: called again on every reconnect,
//     so a fresh JWT can be fetched), resubscribes to every channel you
//     subscribed to;
//   * request/response: every request gets an `id`; the Promise resolves with
//     the reply carrying the same id, rejects with a WsRelayError on an
//     `error` reply (err.code = the server's code), on timeout
//     (code "timeout") and when the connection drops first ("disconnected");
//   * requests made while (re)connecting are queued and sent once the
//     connection is open again (their timeout keeps running);
//   * app-level `heartbeat` every welcome.heartbeat seconds; no reply within
//     heartbeatTimeout => the link is declared dead and re-established;
//   * automatic reconnect with exponential backoff and jitter;
//   * channel memory (history channels, docs/protocol.md): remembers each
//     channel's position (epoch + last seq seen) and resubscribes with
//     `since`, so what was published while offline arrives as ordinary
//     events; "recovery_failed" when the server cannot replay it; a broadcast
//     already delivered (seq <= the position) is dropped; history(),
//     presence(), presenceStats(), "join"/"leave" events;
//   * events: "state" (connecting/open/reconnecting/closed), "open", "close",
//     "welcome", "chat", "typing", "join", "leave", "recovery_failed",
//     "error", "heartbeat", "message" (every server message).

/** Connection states, in the order a client goes through them. */
export const State = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/** An error reply from the server, or a client-side failure of a request. */
export class WsRelayError extends Error {
  /**
   * @param {string} code  the server's error code (bad_request, unauthorized,
   *   unknown_type, ...) or a client one: "timeout", "disconnected", "closed",
   *   "bad_json", "transport", "client_error" (your token function failed)
   * @param {string} message
   * @param {object} [reply]  the server's error message, if there was one
   */
  constructor(code, message, reply) {
    super(message);
    this.name = "WsRelayError";
    this.code = code;
    this.reply = reply;
  }
}

const DEFAULTS = {
  token: null, // string | () => string | Promise<string>; null or "" = no auth
  channels: [], // channels to subscribe to on (every) connect
  WebSocket: null, // WebSocket constructor; default: globalThis.WebSocket
  protocols: undefined, // Sec-WebSocket-Protocol: leave out, or "wsrelay"
  requestTimeout: 10000, // ms per request
  connectTimeout: 10000, // ms: socket open + welcome + auth + resubscribe
  heartbeatInterval: null, // ms; null = the server's welcome.heartbeat
  heartbeatTimeout: 10000, // ms without a heartbeat reply => reconnect
  reconnect: true,
  reconnectDelay: 500, // ms, first retry delay (before jitter)
  reconnectDelayMax: 15000, // ms, cap of the exponential backoff
  reconnectJitter: 0.5, // each delay is scaled by a random factor in [1-jitter, 1]
  maxReconnectAttempts: Infinity, // consecutive failed attempts before giving up
};

const OPEN = 1; // WebSocket.OPEN

function idKey(id) {
  return JSON.stringify(id);
}

function decodeText(data) {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}

export class WsRelayClient {
  /**
   * @param {string} url  e.g. "ws://127.0.0.1:8000/ws"
   * @param {object} [options]  see DEFAULTS above and README.md
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.WebSocket = this.options.WebSocket || globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new TypeError(
        "no WebSocket implementation: pass options.WebSocket (e.g. from the npm 'ws' package), " +
          "or use a browser, Node >= 22, or node --experimental-websocket");
    }
    /** Channels this client wants to be in; restored after every reconnect. */
    this.channels = new Set(this.options.channels || []);
    /** channel -> {epoch, seq}: where this client is in a history channel's stream. */
    this._positions = new Map();
    /** One of State. */
    this.state = State.CLOSED;
    /** From the last welcome / auth.ok. */
    this.session = null;
    this.user = null;
    this.heartbeat = null; // seconds, as announced by the server
    /** Last heartbeat round trip in ms. */
    this.rtt = null;

    this._listeners = new Map();
    this._pending = new Map(); // idKey -> record, sent and awaiting a reply
    this._queue = []; // records waiting for the connection to open
    this._nextId = 1;
    this._conn = null; // the current connection attempt
    this._attempt = 0; // consecutive failed attempts
    this._wanted = false; // connect() called, close() not
    this._reconnectTimer = null;
    this._everOpened = false;
    this._connectWaiters = [];
    this._openInfo = null;
  }

  // ---- events -----------------------------------------------------------------

  /** Adds a listener; returns a function that removes it. */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  /** Calls fn once, at the next `event`. */
  once(event, fn) {
    const off = this.on(event, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // A listener's bug must not break the client; surface it asynchronously.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }

  _setState(state, info = {}) {
    if (this.state === state && state !== State.CONNECTING) return;
    this.state = state;
    this._emit("state", state, info);
  }

  // ---- connection -------------------------------------------------------------

  /**
   * Opens the connection (and keeps it open until close()). Resolves with
   * {session, user, reconnected, channels} once authenticated and subscribed;
   * retries per the reconnect options meanwhile. Rejects if the client is
   * closed first: close(), a refused token, or maxReconnectAttempts reached.
   */
  connect() {
    if (this.state === State.OPEN) return Promise.resolve(this._openInfo);
    const promise = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (!this._wanted) {
      this._wanted = true;
      this._attempt = 0;
      this._everOpened = false;
      this._open();
    }
    return promise;
  }

  /**
   * Closes the connection and stops reconnecting. Pending and queued requests
   * reject with code "closed". Resolves once the socket has closed (at most
   * about 1 s).
   */
  close(code = 1000, reason = "") {
    this._wanted = false;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const err = new WsRelayError("closed", "client closed");
    this._failAll(err);
    this._rejectConnectWaiters(err);
    const conn = this._conn;
    if (!conn) {
      this._setState(State.CLOSED, { code, reason });
      return Promise.resolve();
    }
    const ws = conn.ws;
    const done = ws
      ? new Promise((resolve) => {
          const timer = setTimeout(resolve, 1000);
          const prev = ws.onclose;
          ws.onclose = (ev) => {
            clearTimeout(timer);
            if (prev) prev(ev);
            resolve();
          };
        })
      : Promise.resolve();
    this._drop(conn, code, reason);
    try {
      if (ws) ws.close(code, reason);
    } catch (_) {
      // already closing
    }
    return done;
  }

  _open() {
    this._reconnectTimer = null;
    const conn = { ws: null, welcomed: false, open: false, connectTimer: null, hbTimer: null };
    this._conn = conn;
    this._setState(State.CONNECTING, { attempt: this._attempt });
    let ws;
    try {
      ws = this.options.protocols === undefined
        ? new this.WebSocket(this.url)
        : new this.WebSocket(this.url, this.options.protocols);
    } catch (err) {
      // A bad URL or protocol list: retrying cannot help.
      const e = new WsRelayError("transport", "cannot open a WebSocket: " + ((err && err.message) || err));
      this._emit("error", e);
      this._shutdown(e);
      return;
    }
    conn.ws = ws;
    try {
      ws.binaryType = "arraybuffer";
    } catch (_) {
      // not settable on every implementation
    }
    conn.connectTimer = setTimeout(
      () => this._abandon(conn, 4000, "connect timeout"), this.options.connectTimeout);
    ws.onmessage = (ev) => {
      if (conn === this._conn) this._onMessage(conn, ev.data);
    };
    ws.onerror = () => {
      // Normally followed by a close event, which does the work. Node 20's
      // built-in WebSocket (undici, --experimental-websocket) fires only
      // "error" when the connection is refused and stays CONNECTING forever,
      // so a failed handshake is given up here; an open socket gets 1 s for
      // its close event.
      if (conn !== this._conn) return;
      if (ws.readyState === 0) this._abandon(conn, 1006, "connection failed");
      else setTimeout(() => this._abandon(conn, 1006, "connection error"), 1000);
    };
    ws.onclose = (ev) => this._drop(conn, ev.code, ev.reason);
  }

  /** Gives up on a connection at once (dead link), without waiting for its close. */
  _abandon(conn, code, reason) {
    if (conn !== this._conn) return;
    this._drop(conn, code, reason); // first: whatever close() fires now is stale
    try {
      // A client may only send 1000 or 3000-4999; 1006 just means "gone".
      if (code === 1000 || (code >= 3000 && code <= 4999)) conn.ws.close(code, reason);
      else conn.ws.close();
    } catch (_) {
      // ignore
    }
  }

  _drop(conn, code, reason) {
    if (conn !== this._conn) return; // a stale socket's late close
    this._conn = null;
    clearTimeout(conn.connectTimer);
    clearTimeout(conn.hbTimer);
    const wasOpen = conn.open;
    for (const rec of [...this._pending.values()]) {
      if (rec.conn === conn) {
        this._fail(rec, new WsRelayError(
          "disconnected", `connection closed (${code}${reason ? " " + reason : ""}) before the reply`));
      }
    }
    this._emit("close", { code, reason, wasOpen });
    if (!this._wanted) {
      this._setState(State.CLOSED, { code, reason });
      return;
    }
    if (!this.options.reconnect || this._attempt >= this.options.maxReconnectAttempts) {
      this._shutdown(new WsRelayError("closed", `connection closed (${code}) and not reconnecting`), code);
      return;
    }
    const delay = this._backoff(this._attempt);
    this._attempt += 1;
    this._setState(State.RECONNECTING, { attempt: this._attempt, delay, code, reason });
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  /** Stops for good (refused token, no more attempts): everything waiting fails with err. */
  _shutdown(err, code = 1000) {
    this._wanted = false;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._failAll(err);
    this._rejectConnectWaiters(err);
    const conn = this._conn;
    if (conn) {
      this._drop(conn, 1000, err.message); // sets CLOSED
      try {
        if (conn.ws) conn.ws.close(1000, "");
      } catch (_) {
        // ignore
      }
    } else {
      this._setState(State.CLOSED, { code, reason: err.message, error: err });
    }
  }

  _backoff(attempt) {
    const o = this.options;
    const base = Math.min(o.reconnectDelayMax, o.reconnectDelay * 2 ** attempt);
    return Math.round(base * (1 - o.reconnectJitter * Math.random()));
  }

  _rejectConnectWaiters(err) {
    const waiters = this._connectWaiters.splice(0);
    for (const w of waiters) w.reject(err);
  }

  async _handshake(conn) {
    try {
      let token = this.options.token;
      if (typeof token === "function") token = await token();
      if (conn !== this._conn) return;
      if (token !== null && token !== undefined && token !== "") {
        const ok = await this._call(conn, { type: "auth", token }, this.options.requestTimeout);
        this.user = ok.user;
      }
      const channels = [...this.channels];
      const results = await Promise.allSettled(channels.map((channel) =>
        this._call(conn, this._resubscribeMsg(channel), this.options.requestTimeout)));
      if (conn !== this._conn) return;
      results.forEach((r, i) => {
        if (r.status === "fulfilled") return;
        if (r.reason.code === "timeout" || r.reason.code === "disconnected") throw r.reason;
        this.channels.delete(channels[i]); // refused by the server: forget it
        this._positions.delete(channels[i]);
        this._emit("error", r.reason);
      });
      clearTimeout(conn.connectTimer);
      conn.open = true;
      const info = {
        session: this.session, user: this.user, reconnected: this._everOpened, channels: [...this.channels],
      };
      this._everOpened = true;
      this._attempt = 0;
      this._openInfo = info;
      this.state = State.OPEN; // before the flush, so new requests go straight out
      for (const rec of this._queue.splice(0)) this._transmit(rec, conn);
      this._startHeartbeat(conn);
      this._emit("state", State.OPEN, info);
      this._emit("open", info);
      for (const w of this._connectWaiters.splice(0)) w.resolve(info);
    } catch (err) {
      if (conn !== this._conn) return;
      if (err instanceof WsRelayError && (err.code === "unauthorized" || err.code === "bad_request")) {
        // The token was refused: retrying with the same token cannot help.
        this._emit("error", err);
        this._shutdown(err);
      } else {
        if (!(err instanceof WsRelayError)) {
          // e.g. the token function failed: report it, then try again later
          this._emit("error", new WsRelayError("client_error", "handshake failed: " + (err && err.message)));
        }
        this._abandon(conn, 4000, "handshake failed: " + (err && err.message));
      }
    }
  }

  _startHeartbeat(conn) {
    const interval = this.options.heartbeatInterval ?? (this.heartbeat > 0 ? this.heartbeat * 1000 : null);
    if (!interval) return;
    const beat = () => {
      if (conn !== this._conn) return;
      const t0 = Date.now();
      this._call(conn, { type: "heartbeat" }, this.options.heartbeatTimeout).then((reply) => {
        if (conn !== this._conn) return;
        this.rtt = Date.now() - t0;
        this._emit("heartbeat", { rtt: this.rtt, ts: reply.ts });
        conn.hbTimer = setTimeout(beat, interval);
      }, (err) => {
        if (conn === this._conn && err.code === "timeout") this._abandon(conn, 4000, "heartbeat timeout");
      });
    };
    conn.hbTimer = setTimeout(beat, interval);
  }

  // ---- incoming -----------------------------------------------------------------

  _onMessage(conn, data) {
    let msg;
    try {
      msg = JSON.parse(decodeText(data));
    } catch (_) {
      this._emit("error", new WsRelayError("bad_json", "the server sent a frame that is not JSON"));
      return;
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) return;
    if (this._isDuplicate(msg)) return;
    this._emit("message", msg);
    if (!conn.welcomed) {
      if (msg.type === "welcome") {
        conn.welcomed = true;
        this.session = msg.session;
        this.heartbeat = msg.heartbeat;
        this._emit("welcome", msg);
        this._handshake(conn);
      }
      return;
    }
    if (msg.id !== undefined) {
      const rec = this._pending.get(idKey(msg.id));
      if (rec) {
        this._settle(rec, msg);
        return;
      }
    }
    if (msg.type === "chat") this._emit("chat", msg);
    else if (msg.type === "typing") this._emit("typing", msg);
    else if (msg.type === "join") this._emit("join", msg);
    else if (msg.type === "leave") this._emit("leave", msg);
    else if (msg.type === "error") this._emit("error", new WsRelayError(msg.code, msg.message, msg));
  }

  // ---- channel memory ---------------------------------------------------------------

  /**
   * Where this client is in a history channel's stream: {epoch, seq} (the
   * last seq delivered), or null (not a history channel, or not subscribed).
   */
  position(channel) {
    const pos = this._positions.get(channel);
    return pos ? { epoch: pos.epoch, seq: pos.seq } : null;
  }

  _resubscribeMsg(channel) {
    const pos = this._positions.get(channel);
    return pos
      ? { type: "subscribe", channel, since: { seq: pos.seq, epoch: pos.epoch } }
      : { type: "subscribe", channel };
  }

  /**
   * A broadcast of a channel whose position is known (no id, a seq): true if
   * it was delivered already (seq <= the position); otherwise it moves the
   * position on.
   */
  _isDuplicate(msg) {
    if (msg.id !== undefined || typeof msg.channel !== "string" || !Number.isInteger(msg.seq)) return false;
    const pos = this._positions.get(msg.channel);
    if (!pos) return false;
    if (msg.seq <= pos.seq) return true;
    pos.seq = msg.seq;
    return false;
  }

  /**
   * The reply to a subscribe (ours or one sent with request()), handled as it
   * arrives, before the broadcasts behind it: takes the channel's position
   * from it and reports a recovery that failed.
   */
  _onSubscribed(request, reply) {
    const channel = request.channel;
    if (typeof channel !== "string" || !this.channels.has(channel)) return;
    const since = request.since && typeof request.since === "object" ? request.since : null;
    const known = this._positions.get(channel);
    const hasPosition = typeof reply.epoch === "string" && Number.isInteger(reply.seq);
    if (hasPosition) {
      // Recovered: what was missed follows this reply, so the position stays
      // at `since` and the replay moves it on.
      let seq = since && reply.recovered === true ? since.seq : reply.seq;
      if (known && known.epoch === reply.epoch) seq = Math.max(seq, known.seq);
      this._positions.set(channel, { epoch: reply.epoch, seq });
    } else {
      this._positions.delete(channel); // the channel keeps no history (now)
    }
    if (since && reply.recovered !== true) {
      this._emit("recovery_failed", {
        channel,
        since: { seq: since.seq, epoch: since.epoch },
        epoch: hasPosition ? reply.epoch : null,
        seq: hasPosition ? reply.seq : null,
      });
    }
  }

  // ---- requests -------------------------------------------------------------------

  /**
   * Sends `msg` (an object with a string `type`) as a request. An `id` is
   * added unless present. Resolves with the reply that echoes the id; rejects
   * with a WsRelayError on an error reply, on timeout, or if the connection
   * drops before the reply. While (re)connecting the request waits in a
   * queue. Options: {timeout} in ms.
   */
  request(msg, { timeout = this.options.requestTimeout } = {}) {
    if (!msg || typeof msg.type !== "string") {
      return Promise.reject(new TypeError("a request needs a string 'type'"));
    }
    const out = { ...msg };
    if (out.id === undefined) out.id = this._nextId++;
    return new Promise((resolve, reject) => {
      if (!this._wanted) {
        reject(new WsRelayError("closed", "not connected: call connect() first"));
        return;
      }
      const rec = { msg: out, key: idKey(out.id), resolve, reject, timer: null, conn: null };
      rec.timer = setTimeout(() => this._fail(rec, new WsRelayError(
        "timeout", `no reply to '${out.type}' (id ${rec.key}) within ${timeout} ms`)), timeout);
      if (this.state === State.OPEN && this._conn) this._transmit(rec, this._conn);
      else this._queue.push(rec);
    });
  }

  _call(conn, msg, timeout) {
    const out = { ...msg, id: this._nextId++ };
    return new Promise((resolve, reject) => {
      const rec = { msg: out, key: idKey(out.id), resolve, reject, timer: null, conn: null };
      rec.timer = setTimeout(() => this._fail(rec, new WsRelayError(
        "timeout", `no reply to '${out.type}' within ${timeout} ms`)), timeout);
      this._transmit(rec, conn);
    });
  }

  _transmit(rec, conn) {
    rec.conn = conn;
    this._pending.set(rec.key, rec);
    if (!this._sendOn(conn, rec.msg)) {
      this._fail(rec, new WsRelayError("disconnected", "the connection is not open"));
    }
  }

  _settle(rec, reply) {
    this._forget(rec);
    if (rec.msg.type === "subscribe" && reply.type === "subscribe.ok") this._onSubscribed(rec.msg, reply);
    if (reply.type === "error") rec.reject(new WsRelayError(reply.code, reply.message, reply));
    else rec.resolve(reply);
  }

  _fail(rec, err) {
    this._forget(rec);
    rec.reject(err);
  }

  _forget(rec) {
    clearTimeout(rec.timer);
    if (this._pending.get(rec.key) === rec) this._pending.delete(rec.key);
    const i = this._queue.indexOf(rec);
    if (i >= 0) this._queue.splice(i, 1);
  }

  _failAll(err) {
    for (const rec of [...this._pending.values(), ...this._queue]) this._fail(rec, err);
  }

  _sendOn(conn, msg) {
    if (!conn || !conn.ws || conn.ws.readyState !== OPEN) return false;
    try {
      conn.ws.send(JSON.stringify(msg));
      return true;
    } catch (_) {
      return false;
    }
  }

  /** Sends a message without waiting for a reply. False if not connected. */
  send(msg) {
    return this.state === State.OPEN && this._sendOn(this._conn, msg);
  }

  // ---- the wsrelay.v1 requests --------------------------------------------------

  /** Joins a channel (remembered: rejoined after every reconnect). Resolves with subscribe.ok. */
  async subscribe(channel, opts) {
    this.channels.add(channel);
    try {
      return await this.request({ type: "subscribe", channel }, opts);
    } catch (err) {
      if (err.reply) {
        this.channels.delete(channel); // the server refused it
        this._positions.delete(channel);
      }
      throw err;
    }
  }

  /** Leaves a channel (and forgets it and its position). Resolves with unsubscribe.ok. */
  unsubscribe(channel, opts) {
    this.channels.delete(channel);
    this._positions.delete(channel);
    return this.request({ type: "unsubscribe", channel }, opts);
  }

  /** Publishes `data` (any JSON value) to a channel. Resolves with chat.ok ({seq}). */
  chat(channel, data, opts) {
    return this.request({ type: "chat", channel, data: data === undefined ? null : data }, opts);
  }

  /**
   * Tells the channel's other subscribers whether this user is typing. Fire and
   * forget (the server does not reply); returns false if not connected.
   */
  typing(channel, typing = true) {
    return this.send({ type: "typing", channel, typing: !!typing });
  }

  /**
   * A history channel's last publications (oldest first). limit: at most
   * this many (capped by the channel's history_size); since: {seq, epoch},
   * only those after it. Both optional. Resolves with history.ok
   * ({epoch, seq, [recovered], messages}); error "not_available" if the
   * channel keeps no history.
   */
  history(channel, limit, since, opts) {
    const msg = { type: "history", channel };
    if (limit !== undefined && limit !== null) msg.limit = limit;
    if (since !== undefined && since !== null) msg.since = { seq: since.seq, epoch: since.epoch };
    return this.request(msg, opts);
  }

  /** Who is in a presence channel: resolves with presence.ok ({clients: [{session, user}]}). */
  presence(channel, opts) {
    return this.request({ type: "presence", channel }, opts);
  }

  /** How many are in a presence channel: resolves with presence_stats.ok ({clients, users}). */
  presenceStats(channel, opts) {
    return this.request({ type: "presence_stats", channel }, opts);
  }

  /** One app-level heartbeat round trip; resolves with the reply ({ts}). */
  ping(opts) {
    return this.request({ type: "heartbeat" }, opts);
  }
}

export default WsRelayClient;
