// The wsrelay demo page: log in, join channels, chat, typing indicators,
// who is online, connection state and automatic reconnect that recovers the
// messages sent meanwhile, all over the standard protocol wsrelay.v1
// (docs/protocol.md). Plain ES module, no build step.
//
// The connection work (auth, ids and replies, heartbeats, reconnect with
// backoff, re-auth) is done by the JavaScript client library,
// examples/clients/js/wsrelay.js (./wsrelay.js here is a symlink to it). The
// page subscribes itself (raw `subscribe` requests, not client.subscribe) so
// that after a reconnect it can resubscribe with `since` = the last seq and
// epoch it saw; the relay then replays what was missed (channel memory:
// channel_options in examples/demo/config.json). It also asks for `presence`
// on every (re)subscribe and follows `join`/`leave` frames. On a relay without
// channel memory (a plain `wsrelay`) the page works as before: no online
// list, and a reconnect says that nothing is replayed.
//
// Query parameters (all optional):
//   ?relay=ws://host:port/ws      the relay to talk to (default: this page's
//                                  host, path /ws; ws://127.0.0.1:8000/ws from file://)
//   ?assistant=ws://host:port/ws  show the assistant panel and talk to that
//                                  endpoint (a relay running examples/realtime-relay)
//   ?name=ann&channel=lobby       prefill the login form
//
// The assistant panel is also shown when this relay's GET /status lists an
// endpoint at /assistant (then it talks to ws(s)://<this host>/assistant):
// a plain `wsrelay` has one when started with OPENAI_API_KEY set. Without it
// the login card says how to turn the assistant on.

import { WsRelayClient, State } from "./wsrelay.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const MAX_MESSAGES = 500; // kept per channel
const TYPING_REFRESH_MS = 3000; // while typing, re-send typing:true this often
const TYPING_IDLE_MS = 2500; // no input for this long => typing:false
const TYPING_EXPIRE_MS = 7000; // forget a remote typer we hear nothing more from
const HISTORY_ON_JOIN = 50; // earlier messages shown when joining a channel that keeps history
const ASSISTANT_PATH = "/assistant";

function defaultRelayUrl() {
  if (location.protocol === "http:" || location.protocol === "https:") {
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  }
  return "ws://127.0.0.1:8000/ws";
}

const relayUrl = params.get("relay") || defaultRelayUrl();

// ---- state -------------------------------------------------------------------

/** @type {WsRelayClient | null} */
let client = null;
let me = null; // the user name the relay gave us
/**
 * name -> {messages: [], unread: number, typers: Map<user, timer>,
 *          presence: Map<session, user> | null (null: not known, or the channel has no presence)}
 */
const channels = new Map();
/**
 * name -> {epoch, seq}: how far this page has read each channel that keeps
 * history (from subscribe.ok, then every chat's seq). Sent as `since` when
 * resubscribing after a drop; also drops a broadcast seen twice.
 */
const positions = new Map();
let active = null; // the channel shown
const typingOut = { channel: null, lastSent: 0, idleTimer: null };

// ---- small helpers ------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "datetime" ||
             key === "type" || key === "title") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function byteLength(s) {
  return new TextEncoder().encode(s).length;
}

function timeText(ts) {
  const d = new Date(typeof ts === "number" ? ts : Date.now());
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function messageText(data) {
  if (data && typeof data === "object" && typeof data.text === "string") return data.text;
  if (typeof data === "string") return data;
  return JSON.stringify(data);
}

let noticeTimer = null;
function notice(text, bad = false) {
  const n = $("notice");
  n.textContent = text;
  n.classList.toggle("bad", bad);
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
}

// ---- connection state ---------------------------------------------------------

const STATE_TEXT = {
  [State.CONNECTING]: "connecting",
  [State.OPEN]: "open",
  [State.RECONNECTING]: "reconnecting",
  [State.CLOSED]: "closed",
};

function showState(state, info = {}) {
  const box = $("conn-state");
  box.dataset.state = state;
  let text = STATE_TEXT[state] || state;
  if (state === State.RECONNECTING && typeof info.delay === "number") {
    text += ` (attempt ${info.attempt}, in ${(info.delay / 1000).toFixed(1)} s)`;
  }
  $("conn-text").textContent = text;
  box.title = info.code ? `last close: ${info.code}${info.reason ? " " + info.reason : ""}` : "";
  const usable = state === State.OPEN;
  $("join-submit").disabled = !usable;
  updateComposer();
}

// ---- login / logout -------------------------------------------------------------

function showLogin(errorText) {
  $("login").hidden = false;
  $("app").hidden = true;
  $("whoami").hidden = true;
  $("login-submit").disabled = false;
  $("login-submit").textContent = "Log in";
  $("login-cancel").hidden = true;
  const err = $("login-error");
  err.hidden = !errorText;
  err.textContent = errorText || "";
  $("login-name").focus();
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("whoami").hidden = false;
  $("me-name").textContent = me;
  renderChannels();
  renderMessages();
  $(active ? "compose-text" : "join-name").focus();
}

let cancelled = false;

async function login(name, token, firstChannel) {
  cancelled = false;
  $("login-submit").disabled = true;
  $("login-submit").textContent = "Logging in…";
  $("login-cancel").hidden = false; // the relay may be down: the client keeps retrying
  $("login-error").hidden = true;
  if (client) await client.close();
  channels.clear();
  positions.clear();
  active = null;
  client = new WsRelayClient(relayUrl, {
    token: token || name,
    // No `channels` here: the page (re)subscribes itself, with `since` after a drop.
    // Keep trying for a long while: the relay may be restarting.
    reconnectDelayMax: 10000,
  });
  window.wsrelayDemo.client = client;
  client.on("state", showState);
  client.on("message", onFrame);
  client.on("chat", onChat);
  client.on("typing", onTyping);
  client.on("open", onOpen);
  client.on("welcome", (w) => { $("session-info").textContent = `session ${w.session}`; });
  client.on("error", (err) => {
    if (err.code === "unauthorized" && client.state !== State.OPEN) return; // shown by the login form
    notice(`${err.code}: ${err.message}`, true);
  });
  try {
    const info = await client.connect();
    me = info.user;
    try { localStorage.setItem("wsrelay-demo-name", name); } catch (_) { /* private mode */ }
    if (firstChannel) {
      try {
        await subscribe(firstChannel);
        selectChannel(firstChannel);
      } catch (err) {
        if (err.code === "closed") throw err; // cancelled meanwhile
        notice(`Could not join ${firstChannel}: ${err.message}`, true);
      }
    }
    showApp();
  } catch (err) {
    client = null;
    showState(State.CLOSED);
    if (err.code === "closed" && cancelled) showLogin("Cancelled.");
    else showLogin(err.code === "unauthorized" ? `The relay refused the login: ${err.message}`
                                               : `Could not log in: ${err.message}`);
  }
}

async function logout() {
  stopTyping();
  const c = client;
  client = null;
  me = null;
  channels.clear();
  positions.clear();
  active = null;
  renderPresence();
  if (c) await c.close();
  $("session-info").textContent = "";
  showState(State.CLOSED);
  showLogin();
}

function onOpen(info) {
  me = info.user;
  $("me-name").textContent = me;
  if (!info.reconnected) return;
  // Back after a drop: the library has re-authenticated; the page resubscribes.
  for (const [name, ch] of channels) {
    for (const timer of ch.typers.values()) clearTimeout(timer);
    ch.typers.clear();
    resubscribe(name);
  }
  renderTyping();
}

/**
 * Subscribes again after a drop. In a channel that keeps history the request
 * carries `since` (the last seq and epoch seen): with `recovered: true` every
 * missed message follows the reply, in order, before any newer one; with
 * `recovered: false` they are gone (the relay restarted, or its history no
 * longer reaches back) and the page says so.
 */
async function resubscribe(name) {
  const c = client;
  const pos = positions.get(name);
  const since = pos ? { seq: pos.seq, epoch: pos.epoch } : null;
  let ok;
  try {
    ok = await c.request(since ? { type: "subscribe", channel: name, since } : { type: "subscribe", channel: name });
  } catch (err) {
    if (c !== client || !channels.has(name)) return;
    if (err.reply) { // refused now (e.g. a new token without this channel): forget it
      forgetChannel(name);
      notice(`Could not rejoin ${name}: ${err.message}`, true);
    }
    return; // dropped again: the next open resubscribes
  }
  if (c !== client || !channels.has(name)) return;
  // This runs before the replayed messages (they follow the reply), so the
  // note comes first and they are listed under it.
  if (since && ok.recovered === true) {
    const missed = ok.seq - since.seq;
    pushMessage(name, {
      system: true, kind: "recovered",
      text: missed > 0 ? `reconnected — ${missed} message${missed === 1 ? "" : "s"} sent meanwhile:`
                       : "reconnected — nothing was sent meanwhile",
    });
  } else if (since) {
    pushMessage(name, {
      system: true, kind: "lost",
      text: "reconnected — the messages sent meanwhile could not be recovered",
    });
    notice(`Reconnected to # ${name}, but the messages sent meanwhile could not be recovered ` +
           "(the relay restarted or no longer keeps them).", true);
  } else {
    pushMessage(name, { system: true, kind: "not-kept", text: "reconnected — messages sent meanwhile are not replayed (this channel keeps no history)" });
  }
  fetchPresence(name);
}

// ---- channels ---------------------------------------------------------------------

function addChannel(name) {
  if (!channels.has(name)) channels.set(name, { messages: [], unread: 0, typers: new Map(), presence: null });
  return channels.get(name);
}

function forgetChannel(name) {
  const ch = channels.get(name);
  if (!ch) return;
  if (typingOut.channel === name) stopTyping();
  for (const timer of ch.typers.values()) clearTimeout(timer);
  channels.delete(name);
  positions.delete(name);
  if (active === name) active = channels.keys().next().value ?? null;
  renderChannels();
  renderMessages();
  renderTyping();
  renderPresence();
}

/**
 * Joins a channel: subscribe (its subscribe.ok is taken by onFrame), then the
 * messages it already holds (history) and who is in it (presence), where the
 * relay keeps them. Rejects if the relay refuses the channel.
 */
async function subscribe(name) {
  const ok = await client.request({ type: "subscribe", channel: name });
  const ch = addChannel(name);
  if (typeof ok.epoch === "string") loadHistory(name, ok);
  fetchPresence(name);
  return ch;
}

/** The messages sent before we joined (up to subscribe.ok's seq), shown above the live ones. */
async function loadHistory(name, ok) {
  const c = client;
  let page;
  try {
    page = await c.request({ type: "history", channel: name, limit: HISTORY_ON_JOIN });
  } catch (_) {
    return; // no history here after all, or dropped: nothing to show
  }
  const ch = channels.get(name);
  if (c !== client || !ch || page.epoch !== ok.epoch || !Array.isArray(page.messages)) return;
  const earlier = page.messages
    .filter((m) => m && m.type === "chat" && typeof m.seq === "number" && m.seq <= ok.seq)
    .map((m) => ({ from: m.from, data: m.data, seq: m.seq, ts: m.ts }));
  if (!earlier.length) return;
  ch.messages.unshift(...earlier);
  if (ch.messages.length > MAX_MESSAGES) ch.messages.splice(0, ch.messages.length - MAX_MESSAGES);
  if (name === active) renderMessages();
}

function selectChannel(name) {
  if (active !== name) stopTyping();
  active = name;
  const ch = channels.get(name);
  if (ch) ch.unread = 0;
  renderChannels();
  renderMessages();
  renderTyping();
  renderPresence();
}

async function join(name) {
  if (!client) return;
  name = name.trim();
  if (!name) return notice("Type a channel name first.");
  if (byteLength(name) > 128) return notice("Channel names are at most 128 bytes.", true);
  if (channels.has(name)) return selectChannel(name);
  try {
    await subscribe(name);
    selectChannel(name);
    $("join-name").value = "";
    $("compose-text").focus();
  } catch (err) {
    notice(`Could not join ${name}: ${err.message}`, true);
  }
}

async function leave(name) {
  if (!client || !channels.has(name)) return;
  forgetChannel(name);
  try {
    await client.request({ type: "unsubscribe", channel: name });
  } catch (err) {
    notice(`Leaving ${name} failed: ${err.message}`, true);
  }
}

function renderChannels() {
  const list = $("channel-list");
  list.replaceChildren();
  for (const [name, ch] of channels) {
    const pick = el("button", { type: "button", class: "pick", "data-channel": name,
                                "aria-current": String(name === active) }, "# " + name);
    if (ch.unread > 0 && name !== active) {
      pick.append(el("span", { class: "unread", "aria-label": `${ch.unread} unread` }, String(ch.unread)));
    }
    pick.addEventListener("click", () => selectChannel(name));
    const x = el("button", { type: "button", class: "leave-x", title: `Leave ${name}`,
                             "aria-label": `Leave channel ${name}` }, "×");
    x.addEventListener("click", () => leave(name));
    list.append(el("li", {}, pick, x));
  }
  $("no-channels").hidden = channels.size > 0;
  $("chat-title").textContent = active ? "# " + active : "No channel";
  $("leave").disabled = !active;
  updateComposer();
}

// ---- messages ---------------------------------------------------------------------

function messageNode(m) {
  if (m.system) return el("li", { class: "msg system" + (m.kind ? " " + m.kind : ""), "data-kind": m.kind || "" }, m.text);
  const iso = new Date(m.ts).toISOString();
  return el("li", { class: "msg" + (m.from === me ? " mine" : ""), "data-seq": String(m.seq),
                    "data-from": m.from },
    el("div", { class: "meta" },
      el("span", { class: "from" }, m.from),
      el("time", { datetime: iso, title: iso }, timeText(m.ts)),
      el("span", { class: "seq", title: "sequence number in this channel" }, "#" + m.seq)),
    el("p", { class: "text" }, messageText(m.data)));
}

function pushMessage(channel, m) {
  const ch = channels.get(channel);
  if (!ch) return;
  ch.messages.push(m);
  if (ch.messages.length > MAX_MESSAGES) ch.messages.splice(0, ch.messages.length - MAX_MESSAGES);
  if (channel === active) {
    const log = $("messages");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(messageNode(m));
    while (log.children.length > MAX_MESSAGES) log.firstChild.remove();
    if (atBottom || m.from === me) log.scrollTop = log.scrollHeight;
  } else if (!m.system) {
    ch.unread += 1;
    renderChannels();
  }
}

function renderMessages() {
  const log = $("messages");
  const ch = active ? channels.get(active) : null;
  log.replaceChildren(...(ch ? ch.messages.map(messageNode) : []));
  log.scrollTop = log.scrollHeight;
}

function onChat(msg) {
  const ch = channels.get(msg.channel);
  if (!ch) return;
  const pos = positions.get(msg.channel);
  if (pos && Number.isInteger(msg.seq)) {
    if (msg.seq <= pos.seq) return; // shown already
    pos.seq = msg.seq;
  }
  // A chat from someone ends their typing indicator.
  const timer = ch.typers.get(msg.from);
  if (timer !== undefined) {
    clearTimeout(timer);
    ch.typers.delete(msg.from);
    if (msg.channel === active) renderTyping();
  }
  pushMessage(msg.channel, { from: msg.from, data: msg.data, seq: msg.seq, ts: msg.ts });
}

// ---- frames the client library has no event for: subscribe.ok, presence, join/leave -----
// Taken here, in the order they arrive (the "message" event comes before the
// reply settles its request's Promise): a presence.ok is who was in the
// channel at that point of the stream, and the join/leave frames after it
// are the changes since.

function onFrame(msg) {
  switch (msg.type) {
    case "subscribe.ok": onSubscribed(msg); break;
    case "presence.ok": onPresence(msg); break;
    case "join": case "leave": onJoinLeave(msg); break;
    default: break;
  }
}

/** Where this page now is in the channel's stream. */
function onSubscribed(ok) {
  if (typeof ok.channel !== "string") return;
  if (typeof ok.epoch !== "string" || !Number.isInteger(ok.seq)) {
    positions.delete(ok.channel); // a channel that keeps no history
    return;
  }
  const pos = positions.get(ok.channel);
  // Recovered: the missed messages follow, each advances pos.seq (onChat).
  if (ok.recovered === true && pos && pos.epoch === ok.epoch) return;
  // New, or not recovered: what comes next is newer than ok.seq.
  positions.set(ok.channel, { epoch: ok.epoch, seq: ok.seq });
}

function onPresence(msg) {
  const ch = channels.get(msg.channel);
  if (!ch || !Array.isArray(msg.clients)) return;
  ch.presence = new Map();
  for (const c of msg.clients) if (c && typeof c.session === "string") ch.presence.set(c.session, c.user);
  if (msg.channel === active) renderPresence();
}

function onJoinLeave(msg) {
  const ch = channels.get(msg.channel);
  if (!ch || !ch.presence || typeof msg.session !== "string") return;
  if (msg.type === "join") ch.presence.set(msg.session, msg.user);
  else ch.presence.delete(msg.session);
  if (msg.channel === active) renderPresence();
}

/** Asks who is in the channel; the answer is taken by onFrame. */
function fetchPresence(name) {
  const c = client;
  c.request({ type: "presence", channel: name }).catch((err) => {
    const ch = channels.get(name);
    if (c !== client || !ch) return;
    if (err.code === "not_available") { // this relay keeps no presence for the channel
      ch.presence = null;
      if (name === active) renderPresence();
    }
  });
}

function renderPresence() {
  const ch = active ? channels.get(active) : null;
  const box = $("presence");
  if (!ch || !ch.presence) {
    box.hidden = true;
    $("online-list").replaceChildren();
    return;
  }
  const sessions = new Map(); // user -> number of sessions
  for (const user of ch.presence.values()) sessions.set(user, (sessions.get(user) || 0) + 1);
  const users = [...sessions.keys()].sort((a, b) => (a === me ? -1 : b === me ? 1 : a.localeCompare(b)));
  $("presence-channel").textContent = "# " + active;
  $("presence-count").textContent = `(${users.length})`;
  $("online-list").replaceChildren(...users.map((user) => {
    const n = sessions.get(user);
    return el("li", { "data-user": user, "data-sessions": String(n), class: user === me ? "me" : "" },
      el("span", { class: "dot", "aria-hidden": "true" }),
      el("span", { class: "who" }, user),
      user === me ? el("span", { class: "tag" }, " (you)") : null,
      n > 1 ? el("span", { class: "tag", title: `${n} connections` }, ` ×${n}`) : null);
  }));
  box.hidden = false;
}

// ---- typing indicators ----------------------------------------------------------------

function onTyping(msg) {
  const ch = channels.get(msg.channel);
  if (!ch || msg.from === me) return;
  clearTimeout(ch.typers.get(msg.from));
  if (msg.typing) {
    ch.typers.set(msg.from, setTimeout(() => {
      ch.typers.delete(msg.from);
      if (msg.channel === active) renderTyping();
    }, TYPING_EXPIRE_MS));
  } else {
    ch.typers.delete(msg.from);
  }
  if (msg.channel === active) renderTyping();
}

function renderTyping() {
  const ch = active ? channels.get(active) : null;
  const names = ch ? [...ch.typers.keys()] : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names[0]}, ${names[1]} and ${names.length - 2} more are typing…`;
  const line = $("typing");
  if (line.textContent !== text) line.textContent = text;
}

/** On every input: typing:true at once (then at most every few seconds), typing:false when idle. */
function onComposeInput() {
  if (!client || !active) return;
  if ($("compose-text").value.trim() === "") {
    stopTyping();
    return;
  }
  if (typingOut.channel !== null && typingOut.channel !== active) stopTyping();
  const now = Date.now();
  if (typingOut.channel === null || now - typingOut.lastSent >= TYPING_REFRESH_MS) {
    if (client.typing(active, true)) {
      typingOut.channel = active;
      typingOut.lastSent = now;
    }
  }
  clearTimeout(typingOut.idleTimer);
  typingOut.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typingOut.idleTimer);
  typingOut.idleTimer = null;
  if (typingOut.channel !== null && client) client.typing(typingOut.channel, false);
  typingOut.channel = null;
  typingOut.lastSent = 0;
}

// ---- sending ---------------------------------------------------------------------------

function updateComposer() {
  const can = Boolean(client && active);
  $("compose-text").disabled = !can;
  $("send").disabled = !can;
  $("compose-text").placeholder = active ? `Message # ${active}` : "Join a channel to chat";
}

async function send() {
  const input = $("compose-text");
  const text = input.value.trim();
  if (!client || !active || !text) return;
  stopTyping();
  input.value = "";
  try {
    // Our own broadcast comes back to us (we are subscribed): it is shown then,
    // with the server's seq and time.
    await client.chat(active, { text });
  } catch (err) {
    notice(`Not sent (${err.code}): ${err.message}`, true);
    if (!input.value) input.value = text;
  }
}

// ---- the assistant panel ------------------------------------------------------------------
// Talks to an endpoint run by examples/realtime-relay/realtime.lua: plain text
// in (one user turn per frame), OpenAI Realtime events out. Connected on the
// first question only, so an idle page costs no upstream session.

const assistant = { url: null, ws: null, queue: [], current: null };

async function findAssistant() {
  const explicit = params.get("assistant");
  if (explicit) return explicit;
  if (location.protocol !== "http:" && location.protocol !== "https:") return null;
  try {
    const res = await fetch("/status", { cache: "no-store" });
    if (!res.ok) return null;
    const status = await res.json();
    const ep = (status.endpoints || []).find((e) => e && e.path === ASSISTANT_PATH);
    if (!ep) {
      // This relay has no assistant: say how to get one (when it serves this page).
      $("assistant-off").hidden = params.has("relay");
      return null;
    }
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${ASSISTANT_PATH}`;
  } catch (_) {
    return null;
  }
}

function assistantState(text, state) {
  const s = $("assistant-state");
  s.textContent = text;
  s.dataset.state = state;
}

function assistantLine(role, text) {
  const li = el("li", { class: "msg " + role },
    el("div", { class: "meta" }, el("span", { class: "from" }, role === "user" ? me || "you" : "assistant")),
    el("p", { class: "text" }, text));
  const log = $("assistant-log");
  log.append(li);
  log.scrollTop = log.scrollHeight;
  return li.querySelector(".text");
}

function assistantConnect() {
  if (assistant.ws && assistant.ws.readyState <= WebSocket.OPEN) return;
  assistantState("connecting", "connecting");
  const ws = new WebSocket(assistant.url);
  assistant.ws = ws;
  ws.onopen = () => {
    assistantState("open", "open");
    for (const text of assistant.queue.splice(0)) ws.send(text);
  };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (_) { return; }
    onAssistantEvent(m);
  };
  ws.onclose = (ev) => {
    if (assistant.ws !== ws) return;
    assistant.ws = null;
    assistant.current = null;
    assistantState(`closed${ev.code ? " (" + ev.code + (ev.reason ? " " + ev.reason : "") + ")" : ""}`, "closed");
  };
}

const DELTA_TYPES = new Set([
  "response.output_text.delta", "response.output_audio_transcript.delta",
  "response.text.delta", "response.audio_transcript.delta",
]);

function onAssistantEvent(m) {
  if (DELTA_TYPES.has(m.type) && typeof m.delta === "string") {
    if (!assistant.current) {
      const node = assistantLine("assistant", "");
      node.parentElement.setAttribute("aria-busy", "true"); // streaming
      assistant.current = { node, text: "" };
    }
    assistant.current.text += m.delta;
    assistant.current.node.textContent = assistant.current.text;
  } else if (m.type === "response.done") {
    if (assistant.current) {
      assistant.current.node.parentElement.removeAttribute("aria-busy");
    } else {
      // Nothing streamed: take the text from the final response, if any.
      const parts = ((m.response && m.response.output) || []).flatMap((o) => o.content || []);
      const text = parts.map((p) => p.text || p.transcript || "").join("");
      if (text) assistantLine("assistant", text);
    }
    assistant.current = null;
  } else if (m.type === "error") {
    const e = m.error || {};
    if (assistant.current) assistant.current.node.parentElement.removeAttribute("aria-busy");
    assistantLine("system", `error${e.code ? " " + e.code : ""}: ${e.message || "unknown"}`);
    assistant.current = null;
  }
}

function askAssistant() {
  const input = $("assistant-text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  assistantLine("user", text);
  assistant.current = null;
  if (assistant.ws && assistant.ws.readyState === WebSocket.OPEN) assistant.ws.send(text);
  else {
    assistant.queue.push(text);
    assistantConnect();
  }
}

async function setupAssistant() {
  assistant.url = await findAssistant();
  if (!assistant.url) return;
  $("assistant").hidden = false;
  $("app").classList.add("with-assistant");
  $("assistant-path").textContent = assistant.url;
  $("assistant-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    askAssistant();
  });
}

// ---- wiring ---------------------------------------------------------------------------------

// For tests and for poking around in the console.
window.wsrelayDemo = {
  client: null,
  get channels() { return channels; },
  get active() { return active; },
  get positions() { return positions; },
};

$("relay-url").textContent = relayUrl;
$("foot-url").textContent = relayUrl;
try {
  $("login-name").value = params.get("name") || localStorage.getItem("wsrelay-demo-name") || "";
} catch (_) {
  $("login-name").value = params.get("name") || "";
}
if (params.get("channel") !== null) $("login-channel").value = params.get("channel");

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = $("login-name").value.trim();
  const token = $("login-token").value.trim();
  const channel = $("login-channel").value.trim();
  if (!name && !token) {
    showLogin("Enter a name.");
    return;
  }
  if (channel && byteLength(channel) > 128) {
    showLogin("Channel names are at most 128 bytes.");
    return;
  }
  login(name, token, channel);
});
$("logout").addEventListener("click", logout);
$("login-cancel").addEventListener("click", () => {
  cancelled = true;
  if (client) client.close(); // connect() rejects with "closed"
});
$("join-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  join($("join-name").value);
});
$("leave").addEventListener("click", () => active && leave(active));
$("compose").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send();
});
$("compose-text").addEventListener("input", onComposeInput);
$("compose-text").addEventListener("blur", () => {
  if ($("compose-text").value.trim() === "") stopTyping();
});
window.addEventListener("pagehide", () => {
  stopTyping();
});

showState(State.CLOSED);
showLogin();
setupAssistant();
