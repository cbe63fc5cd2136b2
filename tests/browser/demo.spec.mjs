// End-to-end test of the demo page (examples/demo/) in headless Chromium.
//
//   node tests/browser/demo.spec.mjs --url http://127.0.0.1:PORT/ [options]
//
// Normally run by tests/python/test_demo_browser.py, which installs what is
// missing, starts the relays (the demo's own, with examples/demo/config.json;
// a plain one with OPENAI_API_KEY set, its assistant in front of the fake
// OpenAI upstream; and a plain one without) and passes:
//
//   --url URL             the page (a relay serving examples/demo at /, with
//                         the demo's channel_options: history, presence, join_leave)
//   --admin-token T       the relay's WSRELAY_ADMIN_TOKEN: used to drop a
//                         session (POST /admin/disconnect) to see the page
//                         reconnect and recover what was sent meanwhile
//   --assistant-url URL   a relay with the assistant endpoint (/assistant,
//                         fake upstream): a page there asks its panel
//   --plain-url URL       a plain relay without it: its page shows no panel,
//                         says how to turn the assistant on, and (no channel
//                         memory) shows no online list
//   --screenshot PATH     where to save the screenshot (repeatable)
//   --chromium PATH       default /usr/bin/chromium
//
// Drives Debian's Chromium with playwright-core (tests/browser/package.json):
// two browser contexts (two people, separate storage) log in as ann and bob,
// see each other in the channel's online list (presence, then join/leave: a
// third person comes and goes), join a channel, see each other's typing
// indicator and chat messages (from, time, seq), leave a channel, survive a
// server-side disconnect; ann is cut off while bob writes and, back, has
// exactly what he wrote (resubscribe with since: recovered), and a reconnect
// that cannot recover says so; a page on another relay asks the assistant;
// log out.
// Prints "ok"/"not ok" per check and "N passed, M failed" at the end; exit
// code 0 only if nothing failed.

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

// ---- arguments ------------------------------------------------------------------

function parseArgs(argv) {
  const out = { url: null, plainUrl: null, adminToken: null, assistantUrl: null, screenshots: [],
                chromium: "/usr/bin/chromium" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--url") out.url = next();
    else if (a === "--admin-token") out.adminToken = next();
    else if (a === "--assistant-url") out.assistantUrl = next();
    else if (a === "--plain-url") out.plainUrl = next();
    else if (a === "--screenshot") out.screenshots.push(next());
    else if (a === "--chromium") out.chromium = next();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.url) throw new Error("--url is required");
  return out;
}

const args = parseArgs(process.argv.slice(2));
const base = new URL(args.url);
const T = 8000; // ms: the longest any single thing may take

// ---- results ----------------------------------------------------------------------

let passed = 0;
let failed = 0;
const t0 = Date.now();

function log(line) {
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
}

function check(cond, what, detail) {
  if (cond) {
    passed++;
    log(`ok - ${what}`);
  } else {
    failed++;
    log(`not ok - ${what}${detail !== undefined ? ` -- ${typeof detail === "string" ? detail : JSON.stringify(detail)}` : ""}`);
  }
  return Boolean(cond);
}

/** Runs one step; an exception (e.g. a wait that timed out) is one failure. */
async function step(what, fn) {
  try {
    await fn();
  } catch (err) {
    failed++;
    log(`not ok - ${what}: ${String((err && err.message) || err).split("\n").slice(0, 4).join(" | ")}`);
  }
}

/** Waits until fn (run in the page, with arg) returns something truthy; returns it. */
async function waitIn(page, fn, arg, timeout = T) {
  const handle = await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  return handle.jsonValue();
}

async function connState(page) {
  return page.locator("#conn-state").getAttribute("data-state");
}

async function waitState(page, state, timeout = T) {
  await page.locator(`#conn-state[data-state="${state}"]`).waitFor({ state: "attached", timeout });
}

/** The chat messages shown in the open channel. */
async function shownMessages(page) {
  return page.$$eval("#messages li.msg:not(.system)", (items) => items.map((li) => ({
    from: li.querySelector(".from")?.textContent,
    text: li.querySelector(".text")?.textContent,
    seq: li.querySelector(".seq")?.textContent,
    time: li.querySelector("time")?.textContent,
    datetime: li.querySelector("time")?.getAttribute("datetime"),
    mine: li.classList.contains("mine"),
  })));
}

async function waitForMessage(page, from, text, timeout = T) {
  await waitIn(page, ([f, t]) => [...document.querySelectorAll("#messages li.msg")].some(
    (li) => li.querySelector(".from")?.textContent === f && li.querySelector(".text")?.textContent === t),
  [from, text], timeout);
  return (await shownMessages(page)).find((m) => m.from === from && m.text === text);
}

async function typingText(page) {
  return (await page.locator("#typing").textContent()).trim();
}

/** The users in the open channel's online list, in the page's order (me first). */
async function onlineUsers(page) {
  return page.$$eval("#online-list li", (lis) => lis.map((li) => li.dataset.user));
}

/** Waits until the online list holds exactly `users` (any order), each with one connection. */
async function waitOnline(page, users, timeout = T) {
  await waitIn(page, (want) => {
    if (document.querySelector("#presence").hidden) return false;
    const items = [...document.querySelectorAll("#online-list li")];
    const got = items.map((li) => li.dataset.user).sort();
    return JSON.stringify(got) === JSON.stringify([...want].sort()) &&
           items.every((li) => li.dataset.sessions === "1");
  }, users, timeout);
  return onlineUsers(page);
}

async function sessionOf(page) {
  return (await page.locator("#session-info").textContent()).replace("session ", "");
}

async function adminDisconnect(session) {
  return fetch(new URL("/admin/disconnect", base), {
    method: "POST",
    headers: { Authorization: `Bearer ${args.adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ session, reason: "demo test" }),
  });
}

async function say(page, text) {
  await page.locator("#compose-text").fill(text);
  await page.keyboard.press("Enter");
}

async function channelNames(page) {
  return page.$$eval("#channel-list .pick", (bs) => bs.map((b) => b.dataset.channel));
}

async function login(page, name, channel) {
  await page.locator("#login-name").fill(name);
  await page.locator("#login-channel").fill(channel);
  await page.getByRole("button", { name: "Log in" }).click();
  await waitState(page, "open");
  await page.locator("#app").waitFor({ state: "visible", timeout: T });
}

async function join(page, channel) {
  await page.getByLabel("Join a channel").fill(channel);
  await page.getByRole("button", { name: "Join", exact: true }).click();
  await waitIn(page, (c) => document.querySelector("#chat-title")?.textContent === "# " + c, channel);
}

async function selectChannel(page, channel) {
  await page.locator(`#channel-list .pick[data-channel="${channel}"]`).click();
  await waitIn(page, (c) => document.querySelector("#chat-title")?.textContent === "# " + c, channel);
}

async function getJson(pathname, init) {
  const res = await fetch(new URL(pathname, base), init);
  return { status: res.status, body: await res.json().catch(() => null) };
}

// ---- the run ----------------------------------------------------------------------------

const problems = []; // console errors and uncaught exceptions in the pages

function watch(page, who) {
  page.on("pageerror", (err) => problems.push(`${who}: uncaught ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`${who}: console error: ${msg.text()}`);
  });
}

let browser;
try {
  log(`chromium ${args.chromium}, page ${base.href}`);
  browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    // Playwright gives every launch a fresh temporary user-data-dir (and removes it).
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"],
    timeout: 30000,
  });
  log(`browser ${browser.version()}`);
  const contextOptions = {
    viewport: { width: 1200, height: 720 }, deviceScaleFactor: 1, colorScheme: "light",
    locale: "en-US", timezoneId: "UTC", reducedMotion: "reduce",
  };
  const annCtx = await browser.newContext(contextOptions);
  const bobCtx = await browser.newContext(contextOptions);
  const ann = await annCtx.newPage();
  const bob = await bobCtx.newPage();
  watch(ann, "ann");
  watch(bob, "bob");
  for (const p of [ann, bob]) p.setDefaultTimeout(T);

  await step("the page loads", async () => {
    const res = await ann.goto(base.href, { waitUntil: "load" });
    check(res && res.status() === 200, "GET / answers 200", res && res.status());
    check((await ann.title()) === "wsrelay demo", "the page title is 'wsrelay demo'", await ann.title());
    await bob.goto(base.href, { waitUntil: "load" });
    await ann.locator("#login-name").waitFor({ state: "visible" });
    check(await ann.locator("#login").isVisible(), "the login form is shown first");
    check((await connState(ann)) === "closed", "before login the state is 'closed'", await connState(ann));
    check((await ann.locator("#relay-url").textContent()) === `ws://${base.host}/ws`,
          "the page talks to ws://<its host>/ws", await ann.locator("#relay-url").textContent());
    await ann.waitForLoadState("networkidle");
    const unlabelled = await ann.$$eval("input, button", (els) => els.filter((e) => {
      if (e.tagName === "BUTTON") return !(e.textContent.trim() || e.getAttribute("aria-label"));
      return !(e.labels && e.labels.length) && !e.getAttribute("aria-label");
    }).map((e) => e.id || e.outerHTML.slice(0, 60)));
    check(unlabelled.length === 0, "every input and button has an accessible name", unlabelled);
  });

  await step("ann and bob log in", async () => {
    await login(ann, "ann", "lobby");
    check((await ann.locator("#me-name").textContent()) === "ann", "ann's page says 'signed in as ann'");
    check((await ann.locator("#conn-state").textContent()).trim() === "open",
          "ann's connection state reads 'open'", await ann.locator("#conn-state").textContent());
    check(JSON.stringify(await channelNames(ann)) === '["lobby"]', "ann is in lobby", await channelNames(ann));
    const alone = await waitOnline(ann, ["ann"]);
    check(JSON.stringify(alone) === '["ann"]', "ann's online list (presence on subscribe): just her", alone);
    check((await ann.locator("#presence-title").textContent()).replace(/\s+/g, " ").trim() === "Online in # lobby (1)",
          "the list is titled 'Online in # lobby (1)'", await ann.locator("#presence-title").textContent());
    check(await ann.locator('#online-list li[data-user="ann"] .tag').first().textContent() === " (you)",
          "ann is marked as herself");
    await login(bob, "bob", "lobby");
    check((await connState(bob)) === "open", "bob's connection state is 'open'");
    check((await bob.locator("#chat-title").textContent()) === "# lobby", "bob sees # lobby");
    check(/^session [0-9a-f]{16}$/.test(await bob.locator("#session-info").textContent()),
          "the footer shows the session id", await bob.locator("#session-info").textContent());
    const annSees = await waitOnline(ann, ["ann", "bob"]);
    check(JSON.stringify(annSees) === '["ann","bob"]', "bob joins: ann's list shows him (a join frame)", annSees);
    const bobSees = await waitOnline(bob, ["ann", "bob"]);
    check(JSON.stringify(bobSees) === '["bob","ann"]', "bob's list (presence on subscribe): bob, ann", bobSees);
  });

  await step("joining a channel with the form", async () => {
    await join(ann, "random");
    await join(bob, "random");
    check(JSON.stringify(await channelNames(ann)) === '["lobby","random"]', "ann's list: lobby, random",
          await channelNames(ann));
    check((await bob.locator("#chat-title").textContent()) === "# random", "bob's open channel is # random");
    const st = await getJson("/status");
    check(st.body && st.body.subscriptions === 4 && st.body.connections === 2,
          "the relay has 2 connections with 4 subscriptions", st.body && [st.body.connections, st.body.subscriptions]);
    await selectChannel(ann, "lobby");
    await selectChannel(bob, "lobby");
  });

  await step("typing indicator", async () => {
    await bob.locator("#compose-text").click();
    await bob.keyboard.type("hello ann", { delay: 30 });
    const text = await waitIn(ann, () => {
      const t = document.querySelector("#typing").textContent;
      return t.includes("typing") && t;
    });
    check(text === "bob is typing…", "ann sees 'bob is typing…'", text);
    check((await typingText(bob)) === "", "bob does not see himself typing", await typingText(bob));
  });

  await step("chat from bob to ann", async () => {
    await bob.keyboard.press("Enter");
    const m = await waitForMessage(ann, "bob", "hello ann");
    check(m && m.seq === "#1", "the first lobby message has seq 1", m);
    check(m && /\d{1,2}:\d\d:\d\d/.test(m.time) && !Number.isNaN(Date.parse(m.datetime)),
          "the message shows its time", m);
    check(m && !m.mine, "ann's page shows bob's message as someone else's");
    await waitIn(ann, () => document.querySelector("#typing").textContent === "");
    check(true, "the typing indicator goes away when bob sends");
    const own = await waitForMessage(bob, "bob", "hello ann");
    check(own && own.mine, "bob sees his own message (from the broadcast), marked as his", own);
    check((await bob.locator("#compose-text").inputValue()) === "", "bob's message box is empty after sending");
  });

  await step("chat from ann to bob", async () => {
    await ann.locator("#compose-text").fill("hi bob! welcome to wsrelay — café ok?");
    await ann.getByRole("button", { name: "Send" }).click();
    const m = await waitForMessage(bob, "ann", "hi bob! welcome to wsrelay — café ok?");
    check(m && m.seq === "#2", "the second lobby message has seq 2", m);
  });

  await step("typing stops when idle", async () => {
    await ann.locator("#compose-text").pressSequentially("one sec", { delay: 20 });
    await waitIn(bob, () => document.querySelector("#typing").textContent === "ann is typing…");
    check(true, "bob sees 'ann is typing…'");
    const t1 = Date.now();
    await waitIn(bob, () => document.querySelector("#typing").textContent === "", undefined, 6000);
    const idle = Date.now() - t1;
    check(idle < 5000, "the indicator clears after a short idle (typing:false)", `${idle} ms`);
    await ann.locator("#compose-text").fill("");
  });

  await step("who is online: a third person comes and goes", async () => {
    const ctx = await browser.newContext(contextOptions);
    const carol = await ctx.newPage();
    watch(carol, "carol");
    carol.setDefaultTimeout(T);
    await carol.goto(base.href, { waitUntil: "load" });
    await login(carol, "carol", "lobby");
    const annSees = await waitOnline(ann, ["ann", "bob", "carol"]);
    check(JSON.stringify(annSees) === '["ann","bob","carol"]', "carol joins lobby: she appears in ann's list", annSees);
    const carolSees = await waitOnline(carol, ["ann", "bob", "carol"]);
    check(JSON.stringify(carolSees) === '["carol","ann","bob"]', "carol's own list has all three, her first", carolSees);
    // Joining a channel that keeps history shows what was said before.
    await waitForMessage(carol, "ann", "hi bob! welcome to wsrelay — café ok?");
    const earlier = (await shownMessages(carol)).map((m) => `${m.seq} ${m.from}: ${m.text}`);
    check(JSON.stringify(earlier) === JSON.stringify(["#1 bob: hello ann", "#2 ann: hi bob! welcome to wsrelay — café ok?"]),
          "carol's page shows the lobby's earlier messages (history), once each, in order", earlier);
    await carol.getByRole("button", { name: "Log out" }).click();
    await waitState(carol, "closed");
    const after = await waitOnline(ann, ["ann", "bob"]);
    check(JSON.stringify(after) === '["ann","bob"]', "carol logs out: she leaves ann's list (a leave frame)", after);
    await waitOnline(bob, ["ann", "bob"]);
    check(true, "and bob's");
    await ctx.close();
  });

  await step("unread counter in another channel", async () => {
    await bob.locator("#channel-list .pick[data-channel=random]").waitFor();
    await ann.locator("#channel-list .pick[data-channel=random]").click();
    await ann.locator("#compose-text").fill("anyone here?");
    await ann.keyboard.press("Enter");
    const badge = await waitIn(bob, () => document.querySelector(
      '#channel-list .pick[data-channel="random"] .unread')?.textContent);
    check(badge === "1", "bob's # random shows 1 unread", badge);
    await selectChannel(bob, "random");
    const m = await waitForMessage(bob, "ann", "anyone here?");
    check(m && m.seq === "#1", "seq counts per channel (# random starts at 1)", m);
  });

  await step("leaving a channel", async () => {
    await bob.getByRole("button", { name: "Leave channel random" }).click();
    await waitIn(bob, () => !document.querySelector('#channel-list .pick[data-channel="random"]'));
    check((await bob.locator("#chat-title").textContent()) === "# lobby", "bob is back in # lobby");
    const st = await getJson("/status");
    check(st.body && st.body.subscriptions === 3, "the relay has 3 subscriptions after bob left random",
          st.body && st.body.subscriptions);
    check((await ann.locator("#chat-title").textContent()) === "# random", "ann has # random open");
    const inRandom = await waitOnline(ann, ["ann"]);
    check(JSON.stringify(inRandom) === '["ann"]', "bob left # random: ann's list of # random has only her", inRandom);
    await selectChannel(ann, "lobby");
    const inLobby = await waitOnline(ann, ["ann", "bob"]);
    check(JSON.stringify(inLobby) === '["ann","bob"]', "ann's list of # lobby still has bob", inLobby);
  });

  if (args.adminToken) {
    await step("automatic reconnect after the relay drops bob", async () => {
      const session = await sessionOf(bob);
      await bob.evaluate(() => {
        window.__states = [];
        window.wsrelayDemo.client.on("state", (s) => window.__states.push(s));
      });
      const res = await adminDisconnect(session);
      check(res.ok, "POST /admin/disconnect drops bob's session", res.status);
      await waitIn(bob, () => window.__states.includes("reconnecting") && window.__states.at(-1) === "open");
      const states = await bob.evaluate(() => window.__states);
      check(states.includes("reconnecting") && states.at(-1) === "open",
            "bob's page goes reconnecting → open by itself", states);
      const newSession = (await bob.locator("#session-info").textContent()).replace("session ", "");
      check(newSession !== session, "bob has a new session", [session, newSession]);
      check((await bob.locator("#me-name").textContent()) === "bob", "bob is still signed in as bob");
      await ann.locator("#compose-text").fill("still there, bob?");
      await ann.keyboard.press("Enter");
      const m = await waitForMessage(bob, "ann", "still there, bob?");
      check(m && m.seq === "#3", "after the reconnect bob gets lobby messages again (resubscribed)", m);
      check(await bob.locator("#messages li.system").count() >= 1, "bob's log notes the reconnect");
      const annSees = await waitOnline(ann, ["ann", "bob"]);
      check(JSON.stringify(annSees) === '["ann","bob"]',
            "ann's list has bob once again (his old session left, the new one joined)", annSees);
    });

    await step("ann is cut off while bob writes; back, she has exactly what he wrote", async () => {
      await selectChannel(ann, "lobby");
      const session = await sessionOf(ann);
      const before = await shownMessages(ann);
      const lastSeq = Number(before.at(-1).seq.slice(1));
      const st0 = await getJson("/status");
      await ann.evaluate(() => {
        const c = window.wsrelayDemo.client;
        window.__states = [];
        c.on("state", (s) => window.__states.push(s));
        // Hold the next login until bob has written: the client asks for the
        // token on every connect, so its new socket waits unauthenticated
        // (and subscribed nowhere) until the test opens the gate.
        const token = c.options.token;
        window.__gate = new Promise((resolve) => {
          window.__openGate = () => { c.options.token = token; resolve(token); };
        });
        c.options.token = () => window.__gate;
      });
      const res = await adminDisconnect(session);
      check(res.ok, "POST /admin/disconnect drops ann's session", res.status);
      // The relay has dropped her: bob sees her leave (join_leave), her page reconnects.
      await waitOnline(bob, ["bob"]);
      check(true, "bob sees ann leave the lobby");
      await waitIn(ann, () => window.__states.includes("reconnecting"));
      const texts = ["while you were away (1)", "while you were away (2)", "while you were away (3)"];
      for (const text of texts) {
        await say(bob, text);
        await waitForMessage(bob, "bob", text);
      }
      const early = (await shownMessages(ann)).filter((m) => texts.includes(m.text));
      check(early.length === 0, "ann's page, still cut off, has none of them yet", early);
      await ann.evaluate(() => window.__openGate());
      await waitIn(ann, (ts) => ts.every((t) => [...document.querySelectorAll("#messages li.msg .text")]
        .some((p) => p.textContent === t)), texts);
      await waitState(ann, "open");
      check((await sessionOf(ann)) !== session, "ann is back with a new session");
      const after = await shownMessages(ann);
      const got = after.filter((m) => texts.includes(m.text));
      check(JSON.stringify(got.map((m) => `${m.seq} ${m.from}: ${m.text}`)) ===
            JSON.stringify(texts.map((t, i) => `#${lastSeq + 1 + i} bob: ${t}`)),
            "the messages sent meanwhile are on her page, in order, once each, with their seq", got);
      check(JSON.stringify(after.slice(0, before.length)) === JSON.stringify(before),
            "what she had before is unchanged", after.length);
      const seqs = after.map((m) => Number(m.seq.slice(1)));
      check(seqs.every((n, i) => i === 0 || n > seqs[i - 1]), "no message is shown twice (seqs rise)", seqs);
      const note = await ann.evaluate((t) => {
        const items = [...document.querySelectorAll("#messages li")];
        const first = items.findIndex((li) => li.querySelector(".text")?.textContent === t);
        const prev = items[first - 1];
        return prev && prev.classList.contains("system") ? prev.textContent : null;
      }, texts[0]);
      check(note === "reconnected — 3 messages sent meanwhile:", "a note above them says they were recovered", note);
      check(await ann.locator("#messages li.system.lost").count() === 0, "no 'could not be recovered' note");
      const st1 = await getJson("/status");
      const r0 = st0.body && st0.body.recoveries, r1 = st1.body && st1.body.recoveries;
      check(r0 && r1 && r1.recovered >= r0.recovered + 2 && r1.not_recovered === r0.not_recovered,
            "the relay counts her two channels (lobby, random) as recovered", [r0, r1]);
      await waitOnline(bob, ["ann", "bob"]);
      check(true, "bob sees ann join again");
      await waitOnline(ann, ["ann", "bob"]);
      check(true, "ann's list is fresh (presence asked again after the reconnect)");
      await say(bob, "welcome back, ann");
      await waitForMessage(ann, "bob", "welcome back, ann");
      const live = (await shownMessages(ann)).filter((m) => m.text === "welcome back, ann");
      check(live.length === 1 && live[0].seq === `#${lastSeq + 4}`, "then live messages come as before", live);
    });

  }

  if (args.plainUrl) {
    await step("no assistant without OPENAI_API_KEY", async () => {
      const ctx = await browser.newContext(contextOptions);
      const page = await ctx.newPage();
      watch(page, "plain");
      await page.goto(args.plainUrl, { waitUntil: "networkidle" });
      await page.locator("#assistant-off").waitFor({ state: "visible" });
      check(/OPENAI_API_KEY/.test(await page.locator("#assistant-off").textContent()),
            "the login card says the assistant is off and how to turn it on");
      await login(page, "dave", "lobby");
      check(await page.locator("#assistant").isHidden(), "no assistant panel on a relay without /assistant");
      // A plain relay keeps no channel memory: no online list, and no error either.
      await page.evaluate(() => window.wsrelayDemo.client.ping());
      check(await page.locator("#presence").isHidden(), "no online list on a relay without presence");
      check(await page.locator("#notice").isHidden(), "and no error notice about it");
      await ctx.close();
    });
  }

  if (args.assistantUrl) {
    await step("assistant panel", async () => {
      const ctx = await browser.newContext(contextOptions);
      const eve = await ctx.newPage();
      watch(eve, "eve");
      eve.setDefaultTimeout(T);
      const home = new URL(args.assistantUrl);
      await eve.goto(home.href, { waitUntil: "networkidle" });
      check(await eve.locator("#assistant-off").isHidden(), "no 'assistant: off' hint on a relay with one");
      await login(eve, "eve", "lobby");
      await eve.locator("#assistant").waitFor({ state: "visible" });
      check(true, "the relay lists /assistant in /status: eve sees the assistant panel");
      check((await eve.locator("#assistant-path").textContent()) === `ws://${home.host}/assistant`,
            "the panel talks to ws://<its host>/assistant", await eve.locator("#assistant-path").textContent());
      check((await eve.locator("#assistant-state").getAttribute("data-state")) === "closed",
            "the panel is not connected before the first question");
      await eve.evaluate(() => {
        // Every text the answer shows while it streams, to see it grow.
        window.__answers = [];
        new MutationObserver(() => {
          const items = document.querySelectorAll("#assistant-log li.assistant .text");
          if (items.length) window.__answers.push(items[items.length - 1].textContent);
        }).observe(document.querySelector("#assistant-log"), { subtree: true, childList: true, characterData: true });
      });
      await eve.getByLabel("Ask the assistant").fill("what is wsrelay?");
      await eve.getByRole("button", { name: "Ask" }).click();
      const answer = await waitIn(eve, () => {
        // aria-busy is set while the answer streams, removed at response.done
        const items = [...document.querySelectorAll("#assistant-log li.assistant:not([aria-busy]) .text")];
        return items.length && items.at(-1).textContent;
      });
      check(answer === "echo: what is wsrelay?", "the fake upstream's answer is shown", answer);
      const seen = await eve.evaluate(() => window.__answers);
      check(seen.some((t) => t.length > 0 && t.length < answer.length),
            "the answer is shown as it streams (partial text first)", seen);
      check((await eve.locator("#assistant-state").getAttribute("data-state")) === "open",
            "the panel's connection state is 'open'");
      const questions = await eve.$$eval("#assistant-log li.user .text", (ts) => ts.map((t) => t.textContent));
      check(JSON.stringify(questions) === '["what is wsrelay?"]', "the question is shown in the panel", questions);
      await ctx.close();
    });
  }

  // The screenshot for the README: ann's view, with bob typing.
  await step("screenshot", async () => {
    const chat = async (page, text) => {
      await say(page, text);
      await waitForMessage(page === ann ? bob : ann, page === ann ? "ann" : "bob", text);
    };
    await chat(bob, "yes! does this work from Unity too?");
    await chat(ann, "same protocol from JS, Python and C# (Unity) clients");
    await bob.locator("#compose-text").fill("");
    await bob.locator("#compose-text").pressSequentially("nice, and the", { delay: 20 });
    await waitIn(ann, () => document.querySelector("#typing").textContent === "bob is typing…");
    await ann.locator("#compose-text").fill("Channels, who is online, typing, reconnect that recovers");
    await ann.locator("#compose-text").blur();
    for (const file of args.screenshots) {
      fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      await ann.screenshot({ path: file });
      const size = fs.statSync(file).size;
      check(size > 10000, `screenshot saved to ${file}`, `${size} bytes`);
    }
    await ann.locator("#compose-text").fill("");
  });

  if (args.adminToken) {
    await step("a reconnect that cannot recover says so", async () => {
      const session = await sessionOf(ann);
      await ann.evaluate(() => {
        window.__states = [];
        window.wsrelayDemo.client.on("state", (s) => window.__states.push(s));
        // As if the relay had restarted meanwhile: the stream ann read is gone
        // (a new epoch), so her `since` cannot be served.
        window.wsrelayDemo.positions.get("lobby").epoch = "000000000000";
      });
      const res = await adminDisconnect(session);
      check(res.ok, "POST /admin/disconnect drops ann's session again", res.status);
      await waitIn(ann, () => window.__states.includes("reconnecting") && window.__states.at(-1) === "open");
      const lost = ann.locator("#messages li.system.lost");
      await lost.waitFor({ state: "attached" });
      check((await lost.textContent()) === "reconnected — the messages sent meanwhile could not be recovered",
            "her log says the messages sent meanwhile could not be recovered", await lost.textContent());
      const banner = ann.locator("#notice");
      await banner.waitFor({ state: "visible" });
      check(/could not be recovered/.test(await banner.textContent()), "and a notice says so",
            await banner.textContent());
      await say(bob, "a fresh start");
      const m = await waitForMessage(ann, "bob", "a fresh start");
      check(m && (await shownMessages(ann)).filter((x) => x.text === "a fresh start").length === 1,
            "after it, new messages arrive as before", m);
    });
  }

  await step("log out", async () => {
    await bob.getByRole("button", { name: "Log out" }).click();
    await waitState(bob, "closed");
    check(await bob.locator("#login").isVisible(), "after logging out bob sees the login form");
    const left = await waitOnline(ann, ["ann"]);
    check(JSON.stringify(left) === '["ann"]', "bob's logout takes him off ann's list", left);
    await waitIn(ann, () => document.querySelector("#typing").textContent === "", undefined, 9000);
    check(true, "bob's typing indicator does not outlive his logout");
  });

  check(problems.length === 0, "no uncaught exceptions or console errors in the pages", problems);
} catch (err) {
  failed++;
  log(`not ok - the test run: ${(err && err.stack) || err}`);
} finally {
  if (browser) await browser.close().catch(() => {});
}

log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
