// Live test of examples/clients/js/wsrelay.js against a running wsrelay.
//
//   node [--experimental-websocket] test_wsrelay_client.mjs ws://127.0.0.1:PORT/ws
//
// Run by tests/python/test_client_js.py, which starts the relay (standard
// script, development-mode auth, heartbeat.interval 1, history channels
// "hist*") and serves the "@@ down|up|pause|resume|publish|kick" control
// lines this program prints (answered with "ok" on stdin; see
// tests/clients/relay_control.py). Exit code 0 only if every check passed.

import { createInterface } from "node:readline";
import { WsRelayClient, WsRelayError, State } from "../../../examples/clients/js/wsrelay.js";

const url = process.argv[2];
if (!url) {
  console.error("usage: node test_wsrelay_client.mjs ws://HOST:PORT/ws");
  process.exit(2);
}

let passed = 0;
let failed = 0;
function check(cond, what, detail) {
  if (cond) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL: ${what}${detail !== undefined ? " -- " + JSON.stringify(detail) : ""}`);
  }
  return !!cond;
}
function equal(actual, expected, what) {
  return check(JSON.stringify(actual) === JSON.stringify(expected), what,
    { expected, actual });
}

// ---- control channel to the python wrapper ----------------------------------
const rl = createInterface({ input: process.stdin });
const answers = [];
let answerWaiter = null;
rl.on("line", (line) => {
  if (answerWaiter) {
    const w = answerWaiter;
    answerWaiter = null;
    w(line);
  } else {
    answers.push(line);
  }
});
async function control(cmd) {
  console.log(`@@ ${cmd}`);
  const line = answers.length ? answers.shift() : await new Promise((r) => { answerWaiter = r; });
  if (line !== "ok") throw new Error(`control ${cmd}: ${line}`);
}

// ---- helpers ------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the args of the next `event` whose args satisfy pred. */
function waitFor(client, event, pred = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no '${event}' event within ${ms} ms`));
    }, ms);
    const off = client.on(event, (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

/** Collects the messages of `event` into an array. */
function collect(client, event) {
  const seen = [];
  client.on(event, (msg) => seen.push(msg));
  return seen;
}

async function rejection(promise) {
  try {
    const value = await promise;
    return { resolved: value };
  } catch (err) {
    return err;
  }
}

// ---- the test -------------------------------------------------------------------
async function main() {
  let tokenCalls = 0;
  const a = new WsRelayClient(url, {
    token: async () => { tokenCalls++; return "alice"; }, // asked again on every reconnect
    requestTimeout: 3000,
    connectTimeout: 2000,
    heartbeatTimeout: 1500,
    reconnectDelay: 100,
    reconnectDelayMax: 1000,
  });
  const b = new WsRelayClient(url, {
    token: "bob", requestTimeout: 3000, connectTimeout: 2000, heartbeatTimeout: 1500,
    reconnectDelay: 100, reconnectDelayMax: 1000,
  });
  if (process.env.WSRELAY_TEST_DEBUG) {
    const t00 = Date.now();
    for (const [name, c] of [["a", a], ["b", b]]) {
      c.on("state", (st, i) => console.log(`${Date.now() - t00} ${name} state ${st} ${JSON.stringify(i)}`));
      c.on("close", (i) => console.log(`${Date.now() - t00} ${name} close ${JSON.stringify(i)}`));
    }
  }
  const aStates = [];
  a.on("state", (s) => aStates.push(s));
  const aChats = collect(a, "chat");
  const aCloses = collect(a, "close");
  const aErrors = collect(a, "error");

  // connect + auth
  equal(a.state, State.CLOSED, "state before connect");
  const info = await a.connect();
  await b.connect();
  equal(a.state, State.OPEN, "state after connect");
  equal(info.user, "alice", "auth.ok user");
  equal(info.reconnected, false, "first open is not a reconnect");
  check(/^[0-9a-f]{16}$/.test(a.session), "session id from welcome", a.session);
  equal(a.heartbeat, 1, "welcome.heartbeat (relay config interval 1)");
  equal(aStates.slice(0, 2), ["connecting", "open"], "states on first connect");
  equal(tokenCalls, 1, "token function called once");

  // subscribe
  const sub = await a.subscribe("room1");
  equal([sub.type, sub.channel], ["subscribe.ok", "room1"], "subscribe reply");
  await b.subscribe("room1");
  check(a.channels.has("room1"), "channel remembered");

  // chat seen by a second client (and by the sender)
  const bGot = waitFor(b, "chat", (m) => m.data && m.data.text === "hi");
  const ok = await a.chat("room1", { text: "hi" });
  equal(ok.type, "chat.ok", "chat reply type");
  check(Number.isInteger(ok.seq) && ok.seq >= 1, "chat.ok seq", ok);
  const [bChat] = await bGot;
  equal([bChat.channel, bChat.from, bChat.data, bChat.seq], ["room1", "alice", { text: "hi" }, ok.seq],
    "chat broadcast seen by bob");
  check(typeof bChat.ts === "number", "chat broadcast ts");
  check(aChats.some((m) => m.data && m.data.text === "hi"), "sender sees its own broadcast");

  // typing: bob types, alice sees it; bob does not get his own
  const bTyping = collect(b, "typing");
  const aTyping = waitFor(a, "typing");
  check(b.typing("room1", true), "typing sent");
  const [t] = await aTyping;
  equal([t.channel, t.from, t.typing], ["room1", "bob", true], "typing broadcast");
  await sleep(200);
  equal(bTyping.length, 0, "typing not echoed to the sender");

  // error reply rejects the promise (custom type the standard script does not know)
  let err = await rejection(a.request({ type: "custom.echo", payload: 1 }));
  check(err instanceof WsRelayError, "custom request rejected with WsRelayError", String(err));
  equal(err.code, "unknown_type", "error code of the custom request");
  check(err.reply && err.reply.id !== undefined, "error reply carries the id", err.reply);
  err = await rejection(a.subscribe(""));
  equal(err.code, "bad_request", "subscribe('') refused");
  check(!a.channels.has(""), "refused channel not remembered");

  // timeout: a typing message sent as a request gets no reply on success
  let t0 = Date.now();
  err = await rejection(a.request({ type: "typing", channel: "room1", typing: false }, { timeout: 300 }));
  const took = Date.now() - t0;
  equal(err.code, "timeout", "request without a reply times out");
  check(took >= 250 && took < 2000, "timeout after about 300 ms", took);

  // ids: concurrent requests resolve each with its own reply
  const [h1, h2, h3] = await Promise.all([a.ping(), a.chat("room1", "x"), a.ping()]);
  check(h1.type === "heartbeat" && h3.type === "heartbeat" && h2.type === "chat.ok",
    "concurrent requests matched by id", [h1, h2, h3]);
  check(h1.id !== h3.id, "distinct ids");

  // heartbeat every welcome.heartbeat (1 s)
  const [hb] = await waitFor(a, "heartbeat", () => true, 3000);
  check(typeof hb.rtt === "number" && hb.rtt >= 0, "heartbeat rtt", hb);

  // unsubscribe: room2 joined then left must not come back after reconnect
  await a.subscribe("room2");
  const unsub = await a.unsubscribe("room2");
  equal(unsub.type, "unsubscribe.ok", "unsubscribe reply");
  check(!a.channels.has("room2"), "unsubscribed channel forgotten");

  // ---- reconnect: SIGTERM the relay, queue a chat meanwhile, start a new one on the same port
  const oldSession = a.session;
  aStates.length = 0;
  const aReconnecting = waitFor(a, "state", (s) => s === State.RECONNECTING, 5000);
  const bReconnecting = waitFor(b, "state", (s) => s === State.RECONNECTING, 5000);
  await control("down");
  await aReconnecting;
  await bReconnecting;
  const shutdownClose = aCloses.find((c) => c.code === 1001);
  check(shutdownClose && shutdownClose.wasOpen, "close 1001 (server shutting down) seen", aCloses);
  await sleep(300); // a few failed attempts against the closed port
  // A request made while offline is queued and sent after the reconnect.
  const queued = a.chat("room1", { text: "queued" }, { timeout: 8000 });
  const aOpen = waitFor(a, "open", () => true, 10000);
  const bOpen = waitFor(b, "open", () => true, 10000);
  // alice resubscribes before her queue is flushed, so she sees her own broadcast
  // (bob may still be reconnecting at that moment).
  const aQueued = waitFor(a, "chat", (m) => m.data && m.data.text === "queued", 10000);
  await control("up");
  const [reinfo] = await aOpen;
  await bOpen;
  equal(reinfo.reconnected, true, "open after restart is a reconnect");
  equal(reinfo.user, "alice", "re-authenticated as alice");
  check(a.session !== oldSession, "new session after restart");
  equal(tokenCalls >= 2, true, "token function asked again on reconnect");
  equal(reinfo.channels, ["room1"], "resubscribed channels");
  check(aStates.includes(State.RECONNECTING) && aStates.includes(State.CONNECTING) &&
    aStates[aStates.length - 1] === State.OPEN, "states through the restart", aStates);
  const queuedOk = await queued.catch((e) => e);
  equal(queuedOk.type, "chat.ok", "queued chat sent after reconnect");
  await aQueued.then(() => check(true, "queued chat broadcast after resubscribe"),
    (e) => check(false, "queued chat broadcast after resubscribe", String(e)));

  // a chat on the old channel reaches alice; room2 (unsubscribed) does not
  const aAfter = waitFor(a, "chat", (m) => m.data === "after restart");
  const okAfter = await b.chat("room1", "after restart");
  const [after] = await aAfter;
  equal([after.from, after.channel], ["bob", "room1"], "chat on the old channel after restart");
  equal(okAfter.seq, after.seq, "seq of the new relay");
  const room2Before = aChats.filter((m) => m.channel === "room2").length;
  await b.chat("room2", "not for alice");
  await sleep(300);
  equal(aChats.filter((m) => m.channel === "room2").length, room2Before, "room2 not resubscribed");

  // ---- dead link: freeze the relay; the missing heartbeat reply triggers a reconnect
  // Both clients stay frozen out until each has declared the link dead.
  const hbClose = waitFor(a, "close", (c) => c.reason === "heartbeat timeout", 8000);
  const bHbClose = waitFor(b, "close", (c) => c.reason === "heartbeat timeout", 8000);
  t0 = Date.now();
  await control("pause");
  const [dead] = await hbClose;
  const detect = Date.now() - t0;
  await bHbClose;
  equal(dead.code, 4000, "heartbeat timeout close code");
  check(detect < 5500, "dead link detected within interval + heartbeatTimeout", detect);
  const aBack = waitFor(a, "open", () => true, 15000);
  const bBack = waitFor(b, "open", () => true, 15000);
  await control("resume");
  await aBack;
  await bBack;
  const aLive = waitFor(a, "chat", (m) => m.data === "after freeze");
  await b.chat("room1", "after freeze");
  await aLive;
  check(true, "chat after the heartbeat reconnect");

  await memory(b);

  // ---- close: no more reconnects, requests refused
  await a.close();
  equal(a.state, State.CLOSED, "closed after close()");
  await sleep(400);
  equal(a.state, State.CLOSED, "stays closed");
  err = await rejection(a.chat("room1", "x"));
  equal(err.code, "closed", "request after close() rejected");
  await b.close();
  check(aErrors.every((e) => e.code !== "bad_json"), "no undecodable frames", aErrors);
}

const range = (first, last) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

// ---- channel memory: the history channel hist1 (relay_control.py: hist* keeps
// 1000 publications, with presence and join/leave). The stream is published by
// a plain WebSocket in the python wrapper ("@@ publish").
async function memory(b) {
  const c = new WsRelayClient(url, {
    token: "carol", requestTimeout: 3000, connectTimeout: 2000, heartbeatTimeout: 1500,
    reconnectDelay: 100, reconnectDelayMax: 1000,
  });
  const hist = [];
  c.on("chat", (m) => { if (m.channel === "hist1") hist.push(m); });
  const subOks = [];
  c.on("message", (m) => { if (m.type === "subscribe.ok" && m.channel === "hist1") subOks.push(m); });
  const failures = collect(c, "recovery_failed");
  try {
    await c.connect();
    equal(c.position("hist1"), null, "no position before subscribing");
    const sub = await c.subscribe("hist1");
    check(typeof sub.epoch === "string" && /^[0-9a-f]{12}$/.test(sub.epoch) && sub.seq === 0,
      "subscribe.ok of a history channel: epoch and seq", sub);
    equal(c.position("hist1"), { epoch: sub.epoch, seq: 0 }, "position taken from subscribe.ok");
    equal((await c.subscribe("room1")).epoch, undefined, "a plain channel has no epoch");
    equal(c.position("room1"), null, "no position in a plain channel");

    // join / leave, presence, presence_stats
    const cJoin = waitFor(c, "join", (m) => m.user === "bob");
    await b.subscribe("hist1");
    const [join] = await cJoin;
    equal([join.channel, join.user, join.session], ["hist1", "bob", b.session], "join event");
    const pres = await c.presence("hist1");
    equal([pres.type, pres.clients.map((x) => x.user).sort()], ["presence.ok", ["bob", "carol"]], "presence()");
    check(pres.clients.some((x) => x.session === c.session), "presence lists this session", pres);
    const stats = await c.presenceStats("hist1");
    equal([stats.type, stats.clients, stats.users], ["presence_stats.ok", 2, 2], "presenceStats()");
    const cLeave = waitFor(c, "leave", (m) => m.user === "bob");
    await b.unsubscribe("hist1");
    const [leave] = await cLeave;
    equal([leave.channel, leave.session], ["hist1", b.session], "leave event");
    let err = await rejection(c.history("room1"));
    equal(err.code, "not_available", "history() of a plain channel");
    err = await rejection(c.presence("room1"));
    equal(err.code, "not_available", "presence() of a plain channel");

    // a stream cut in the middle: 1..10, then 11..40 with the socket cut by the
    // relay right after 15 (the publisher goes on), then 41..50
    const got10 = waitFor(c, "chat", (m) => m.channel === "hist1" && m.data.n === 10);
    await control("publish hist1 1 10");
    await got10;
    let beforeCut = -1;
    const cut = waitFor(c, "close", (ci) => {
      beforeCut = hist.length;
      return ci.code === 1008;
    }, 5000);
    const reopened = waitFor(c, "open", () => true, 10000);
    const oldSession = c.session;
    await control(`publish hist1 11 40 kick=${c.session} at=15`);
    const [cutInfo] = await cut;
    check(cutInfo.wasOpen, "the cut closed an open connection (1008)", cutInfo);
    const [reinfo] = await reopened;
    equal(reinfo.reconnected, true, "reconnected by itself after the cut");
    check(c.session !== oldSession, "a new session after the cut");
    const got50 = waitFor(c, "chat", (m) => m.channel === "hist1" && m.data.n === 50, 10000);
    await control("publish hist1 41 50");
    await got50.catch(() => {});
    equal(hist.map((m) => m.data.n), range(1, 50), "every numbered message exactly once, in order");
    equal(hist.map((m) => m.seq), range(1, 50), "seqs 1..50");
    const resub = subOks[subOks.length - 1] || {};
    check(subOks.length === 2 && resub.recovered === true && resub.epoch === sub.epoch && resub.seq > beforeCut,
      "resubscribed with since: recovered, the missed ones replayed", { subOks, beforeCut });
    equal(c.position("hist1"), { epoch: sub.epoch, seq: 50 }, "position after the stream");
    equal(failures.length, 0, "no recovery_failed after the cut");

    // duplicates: a subscribe with an older since on the joined channel makes the
    // relay send 48..50 again; they are dropped, the next one (51) is not
    const dup = await c.request({ type: "subscribe", channel: "hist1", since: { seq: 47, epoch: sub.epoch } });
    equal([dup.recovered, dup.seq], [true, 50], "the relay replays 48..50 again");
    const got51 = waitFor(c, "chat", (m) => m.channel === "hist1" && m.data.n === 51);
    await control("publish hist1 51 51");
    await got51;
    equal(hist.map((m) => m.data.n).slice(46), [47, 48, 49, 50, 51], "replayed duplicates not delivered twice");
    equal(c.position("hist1"), { epoch: sub.epoch, seq: 51 }, "position 51");

    // history()
    const h = await c.history("hist1", 5);
    equal([h.type, h.epoch, h.seq, h.messages.map((m) => m.data.n)], ["history.ok", sub.epoch, 51, range(47, 51)],
      "history(channel, 5)");
    const hs = await c.history("hist1", 100, { seq: 48, epoch: sub.epoch });
    equal([hs.recovered, hs.messages.map((m) => m.seq)], [true, [49, 50, 51]], "history(channel, 100, since)");

    // a restart: a new epoch, so the resubscribe cannot recover -> recovery_failed
    const failed = waitFor(c, "recovery_failed", (ev) => ev.channel === "hist1", 10000);
    const back = waitFor(c, "open", () => true, 10000);
    await control("down");
    await control("up");
    const [ev] = await failed;
    equal(ev.since, { seq: 51, epoch: sub.epoch }, "recovery_failed: since = the old position");
    check(typeof ev.epoch === "string" && ev.epoch !== sub.epoch && ev.seq === 0,
      "recovery_failed: the new epoch and seq", ev);
    await back;
    equal(failures.length, 1, "one recovery_failed (room1 keeps no history)");
    equal(subOks[subOks.length - 1].recovered, false, "subscribe.ok said recovered: false");
    equal(c.position("hist1"), { epoch: ev.epoch, seq: 0 }, "position in the new epoch");
    const gotNew = waitFor(c, "chat", (m) => m.channel === "hist1" && m.data.n === 1);
    await control("publish hist1 1 1");
    const [fresh] = await gotNew;
    equal(fresh.seq, 1, "seq 1 of the new epoch is delivered (not taken for a duplicate)");
    if (b.state !== State.OPEN) await waitFor(b, "open", () => true, 10000);
  } finally {
    await c.close();
  }
}

const overall = setTimeout(() => {
  console.log("FAIL: test did not finish within 50 s");
  process.exit(1);
}, 50000);
try {
  await main();
} catch (err) {
  failed++;
  console.log(`FAIL: test raised ${err && err.stack ? err.stack : err}`);
}
clearTimeout(overall);
rl.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
