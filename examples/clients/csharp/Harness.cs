// Harness.cs - a tiny console host for WsRelayClient that behaves like Unity:
// a "main thread" runs a frame loop that calls DispatchPending() on every
// client and runs the continuations posted to its SynchronizationContext (as
// UnitySynchronizationContext does), so `await` resumes on the main thread.
//
//   mcs -out:Harness.exe WsRelayClient.cs Harness.cs
//   mono Harness.exe chat ws://127.0.0.1:8000/ws alice room1     # a chat console
//   mono Harness.exe test ws://127.0.0.1:PORT/ws                  # the live test
//
// "chat" mode: connects as the user, joins the channel, prints what arrives;
// each line typed on stdin is sent as a chat ({"text": line}).
//
// "test" mode is run by tests/python/test_client_csharp.py against a relay it
// controls: lines "@@ down|up|pause|resume" on stdout ask it to stop the relay
// (SIGTERM), start it again on the same port, freeze it (SIGSTOP) or thaw it,
// "@@ publish CHANNEL FIRST LAST [kick=SESSION at=N]" to publish numbered
// chats from a plain WebSocket (cutting SESSION after chat N); it answers
// "ok" on stdin (tests/clients/relay_control.py). Prints "FAIL: ..." per failed check and
// "N passed, M failed"; exit code 0 only if all passed.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using WsRelay;

/// <summary>What UnitySynchronizationContext does: continuations posted from any thread
/// run on the main thread, in the frame loop.</summary>
sealed class MainThreadContext : SynchronizationContext
{
    readonly ConcurrentQueue<KeyValuePair<SendOrPostCallback, object>> queue =
        new ConcurrentQueue<KeyValuePair<SendOrPostCallback, object>>();

    public override void Post(SendOrPostCallback d, object state)
    {
        queue.Enqueue(new KeyValuePair<SendOrPostCallback, object>(d, state));
    }

    public override void Send(SendOrPostCallback d, object state)
    {
        throw new NotSupportedException("Send is not supported on the main-thread context");
    }

    public void RunPending()
    {
        int n = queue.Count;
        KeyValuePair<SendOrPostCallback, object> item;
        for (int i = 0; i < n && queue.TryDequeue(out item); i++) item.Key(item.Value);
    }
}

static class Harness
{
    static readonly List<WsRelayClient> clients = new List<WsRelayClient>();
    static int mainThreadId;
    static int offMainThread; // events or continuations seen on another thread
    static int passed, failed;

    static int Main(string[] args)
    {
        if (args.Length < 2 || (args[0] != "test" && args[0] != "chat"))
        {
            Console.Error.WriteLine("usage: mono Harness.exe test URL | chat URL USER CHANNEL");
            return 2;
        }
        mainThreadId = Thread.CurrentThread.ManagedThreadId;
        var context = new MainThreadContext();
        SynchronizationContext.SetSynchronizationContext(context);
        Task body = args[0] == "test" ? Test(args[1]) : ChatConsole(args[1], args.Length > 2 ? args[2] : "unity",
            args.Length > 3 ? args[3] : "room1");
        var watch = Stopwatch.StartNew();
        // The frame loop: what Unity's player loop does every frame.
        while (!body.IsCompleted)
        {
            context.RunPending();
            foreach (var c in clients.ToArray()) c.DispatchPending();
            Thread.Sleep(5);
            if (args[0] == "test" && watch.Elapsed.TotalSeconds > 50)
            {
                Fail("the test did not finish within 50 s");
                break;
            }
        }
        if (body.IsFaulted)
        {
            Fail("test raised " + body.Exception.InnerException);
        }
        if (args[0] != "test") return body.IsFaulted ? 1 : 0;
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 && passed > 0 ? 0 : 1;
    }

    // ---- helpers ---------------------------------------------------------------------------

    static WsRelayClient NewClient(string url, string token)
    {
        var c = new WsRelayClient(url, token);
        clients.Add(c);
        // Every event must arrive on the main thread.
        Action onMain = () => { if (Thread.CurrentThread.ManagedThreadId != mainThreadId) Interlocked.Increment(ref offMainThread); };
        c.StateChanged += s => onMain();
        c.ChatReceived += m => onMain();
        c.TypingReceived += m => onMain();
        c.JoinReceived += m => onMain();
        c.LeaveReceived += m => onMain();
        c.RecoveryFailed += f => onMain();
        c.Opened += i => onMain();
        c.Closed += i => onMain();
        c.Error += e => onMain();
        c.HeartbeatReceived += r => onMain();
        c.MessageReceived += m => onMain();
        return c;
    }

    static void Fail(string what)
    {
        failed++;
        Console.WriteLine("FAIL: " + what);
    }

    static bool Check(bool cond, string what, object detail = null)
    {
        if (cond) { passed++; return true; }
        Fail(detail == null ? what : what + " -- " + MiniJson.Serialize(detail is string ? detail : detail.ToString()));
        return false;
    }

    static void Equal(object actual, object expected, string what)
    {
        string a = MiniJson.Serialize(actual), e = MiniJson.Serialize(expected);
        Check(a == e, what, "expected " + e + ", got " + a);
    }

    static void OnMain(string where)
    {
        Check(Thread.CurrentThread.ManagedThreadId == mainThreadId, "on the main thread: " + where);
    }

    /// <summary>The next event value satisfying pred; subscribe before triggering it.</summary>
    static async Task<T> Next<T>(Action<Action<T>> add, Action<Action<T>> remove, Func<T, bool> pred, double seconds, string what)
    {
        var tcs = new TaskCompletionSource<T>();
        Action<T> handler = v => { if (pred(v)) tcs.TrySetResult(v); };
        add(handler);
        try
        {
            var done = await Task.WhenAny(tcs.Task, Task.Delay(TimeSpan.FromSeconds(seconds)));
            if (done != tcs.Task) throw new TimeoutException("no " + what + " within " + seconds + " s");
            return tcs.Task.Result;
        }
        finally { remove(handler); }
    }

    static Task<ChatMessage> NextChat(WsRelayClient c, Func<ChatMessage, bool> pred, double seconds = 5)
    {
        return Next<ChatMessage>(h => c.ChatReceived += h, h => c.ChatReceived -= h, pred, seconds, "chat");
    }

    static Task<StateChange> NextState(WsRelayClient c, ConnectionState s, double seconds = 5)
    {
        return Next<StateChange>(h => c.StateChanged += h, h => c.StateChanged -= h, x => x.State == s, seconds, "state " + s);
    }

    static Task<OpenInfo> NextOpen(WsRelayClient c, double seconds)
    {
        return Next<OpenInfo>(h => c.Opened += h, h => c.Opened -= h, x => true, seconds, "open");
    }

    static Task<CloseInfo> NextClose(WsRelayClient c, Func<CloseInfo, bool> pred, double seconds)
    {
        return Next<CloseInfo>(h => c.Closed += h, h => c.Closed -= h, pred, seconds, "close");
    }

    static async Task<WsRelayException> Failure(Task t)
    {
        try { await t; }
        catch (WsRelayException e) { return e; }
        return null;
    }

    // stdin lines, read on a background thread
    static readonly BlockingCollection<string> stdinLines = new BlockingCollection<string>();

    static void StartStdinReader()
    {
        var t = new Thread(() =>
        {
            string line;
            while ((line = Console.ReadLine()) != null) stdinLines.Add(line);
            stdinLines.CompleteAdding();
        });
        t.IsBackground = true;
        t.Start();
    }

    static async Task Control(string command)
    {
        Console.WriteLine("@@ " + command);
        Console.Out.Flush();
        string answer = await Task.Run(() => stdinLines.Take());
        if (answer != "ok") throw new Exception("control " + command + ": " + answer);
    }

    static Dictionary<string, object> Text(string text)
    {
        return new Dictionary<string, object> { { "text", text } };
    }

    static string TextOf(object data)
    {
        var d = data as Dictionary<string, object>;
        return d != null && d.ContainsKey("text") ? d["text"] as string : data as string;
    }

    static long N(ChatMessage m)
    {
        var d = m.Data as Dictionary<string, object>;
        return d != null && d.ContainsKey("n") ? MiniJson.ToLong(d["n"]) : -1;
    }

    static List<object> Range(long first, long last)
    {
        var list = new List<object>();
        for (long i = first; i <= last; i++) list.Add(i);
        return list;
    }

    static List<object> Pos(StreamPosition p)
    {
        return p == null ? null : new List<object> { p.Epoch, p.Seq };
    }

    // ---- channel memory: the history channel hist1 (relay_control.py: hist* keeps 1000
    // publications, with presence and join/leave). The stream comes from a plain WebSocket
    // publisher in the python wrapper ("@@ publish").
    static async Task Memory(string url, WsRelayClient b)
    {
        var c = NewClient(url, "carol");
        c.RequestTimeout = 3f;
        c.ConnectTimeout = 2f;
        c.HeartbeatTimeout = 1.5f;
        c.ReconnectDelay = 0.1f;
        c.ReconnectDelayMax = 1f;
        var hist = new List<ChatMessage>();
        c.ChatReceived += m => { if (m.Channel == "hist1") hist.Add(m); };
        var subOks = new List<Dictionary<string, object>>();
        c.MessageReceived += m =>
        {
            if (m.ContainsKey("type") && (m["type"] as string) == "subscribe.ok" && (m["channel"] as string) == "hist1") subOks.Add(m);
        };
        var failures = new List<RecoveryFailure>();
        c.RecoveryFailed += f => failures.Add(f);
        try
        {
            await c.Connect();
            Check(c.Position("hist1") == null, "no position before subscribing");
            var sub = await c.Subscribe("hist1");
            string epoch = sub.ContainsKey("epoch") ? sub["epoch"] as string : null;
            Check(epoch != null && System.Text.RegularExpressions.Regex.IsMatch(epoch, "^[0-9a-f]{12}$")
                && sub.ContainsKey("seq") && MiniJson.ToLong(sub["seq"]) == 0, "subscribe.ok of a history channel: epoch and seq",
                MiniJson.Serialize(sub));
            Equal(Pos(c.Position("hist1")), new List<object> { epoch, 0L }, "position taken from subscribe.ok");
            var plain = await c.Subscribe("room1");
            Check(!plain.ContainsKey("epoch"), "a plain channel has no epoch");
            Check(c.Position("room1") == null, "no position in a plain channel");

            // join / leave, presence, presence_stats
            var cJoin = Next<JoinLeaveMessage>(h => c.JoinReceived += h, h => c.JoinReceived -= h, m => m.User == "bob", 5, "join");
            await b.Subscribe("hist1");
            var join = await cJoin;
            Equal(new object[] { join.Channel, join.User, join.Session }, new object[] { "hist1", "bob", b.Session }, "join event");
            var pres = await c.Presence("hist1");
            var clients = ((List<object>)pres["clients"]).Cast<Dictionary<string, object>>().ToList();
            Equal(clients.Select(x => (string)x["user"]).OrderBy(x => x, StringComparer.Ordinal).ToList(),
                new List<string> { "bob", "carol" }, "Presence()");
            Check(clients.Any(x => (string)x["session"] == c.Session), "presence lists this session");
            var stats = await c.PresenceStats("hist1");
            Equal(new object[] { stats["type"], stats["clients"], stats["users"] }, new object[] { "presence_stats.ok", 2, 2 },
                "PresenceStats()");
            var cLeave = Next<JoinLeaveMessage>(h => c.LeaveReceived += h, h => c.LeaveReceived -= h, m => m.User == "bob", 5, "leave");
            await b.Unsubscribe("hist1");
            var leave = await cLeave;
            Equal(new object[] { leave.Channel, leave.Session }, new object[] { "hist1", b.Session }, "leave event");
            var err = await Failure(c.History("room1"));
            Equal(err == null ? null : err.Code, "not_available", "History() of a plain channel");
            err = await Failure(c.Presence("room1"));
            Equal(err == null ? null : err.Code, "not_available", "Presence() of a plain channel");

            // a stream cut in the middle: 1..10, then 11..40 with the socket cut by the relay
            // right after 15 (the publisher goes on), then 41..50
            var got10 = NextChat(c, m => m.Channel == "hist1" && N(m) == 10);
            await Control("publish hist1 1 10");
            await got10;
            int beforeCut = -1;
            var cut = NextClose(c, ci => { beforeCut = hist.Count; return ci.Code == 1008; }, 5);
            var reopened = NextOpen(c, 10);
            string oldSession = c.Session;
            await Control("publish hist1 11 40 kick=" + c.Session + " at=15");
            var cutInfo = await cut;
            Check(cutInfo.WasOpen, "the cut closed an open connection (1008)");
            var reinfo = await reopened;
            Equal(reinfo.Reconnected, true, "reconnected by itself after the cut");
            Check(c.Session != oldSession, "a new session after the cut");
            var got50 = NextChat(c, m => m.Channel == "hist1" && N(m) == 50, 10);
            await Control("publish hist1 41 50");
            try { await got50; } catch (TimeoutException) { }
            Equal(hist.Select(m => (object)N(m)).ToList(), Range(1, 50), "every numbered message exactly once, in order");
            Equal(hist.Select(m => (object)m.Seq).ToList(), Range(1, 50), "seqs 1..50");
            var resub = subOks.Count > 0 ? subOks[subOks.Count - 1] : new Dictionary<string, object>();
            Check(subOks.Count == 2 && resub.ContainsKey("recovered") && Equals(resub["recovered"], true)
                && (resub["epoch"] as string) == epoch && MiniJson.ToLong(resub["seq"]) > beforeCut,
                "resubscribed with since: recovered, the missed ones replayed",
                MiniJson.Serialize(subOks) + " before the cut: " + beforeCut);
            Equal(Pos(c.Position("hist1")), new List<object> { epoch, 50L }, "position after the stream");
            Equal(failures.Count, 0, "no RecoveryFailed after the cut");

            // duplicates: a subscribe with an older since on the joined channel makes the relay
            // send 48..50 again; they are dropped, the next one (51) is not
            var dup = await c.Request(new Dictionary<string, object>
            {
                { "type", "subscribe" }, { "channel", "hist1" },
                { "since", new Dictionary<string, object> { { "seq", 47 }, { "epoch", epoch } } },
            });
            Equal(new object[] { dup["recovered"], dup["seq"] }, new object[] { true, 50 }, "the relay replays 48..50 again");
            var got51 = NextChat(c, m => m.Channel == "hist1" && N(m) == 51);
            await Control("publish hist1 51 51");
            await got51;
            Equal(hist.Skip(46).Select(m => (object)N(m)).ToList(), Range(47, 51), "replayed duplicates not delivered twice");
            Equal(Pos(c.Position("hist1")), new List<object> { epoch, 51L }, "position 51");

            // History()
            var h5 = await c.History("hist1", 5);
            var h5n = ((List<object>)h5["messages"]).Select(m => (object)MiniJson.ToLong(
                ((Dictionary<string, object>)((Dictionary<string, object>)m)["data"])["n"])).ToList();
            Equal(new object[] { h5["type"], h5["epoch"], h5["seq"], h5n }, new object[] { "history.ok", epoch, 51, Range(47, 51) },
                "History(channel, 5)");
            var hs = await c.History("hist1", 100, new StreamPosition(epoch, 48));
            var hsSeqs = ((List<object>)hs["messages"]).Select(m => ((Dictionary<string, object>)m)["seq"]).ToList();
            Equal(new object[] { hs["recovered"], hsSeqs }, new object[] { true, Range(49, 51) }, "History(channel, 100, since)");

            // a restart: a new epoch, so the resubscribe cannot recover -> RecoveryFailed
            var failed = Next<RecoveryFailure>(h => c.RecoveryFailed += h, h => c.RecoveryFailed -= h, f => f.Channel == "hist1", 10,
                "RecoveryFailed");
            var back = NextOpen(c, 10);
            var bBack = NextOpen(b, 10);
            await Control("down");
            await Control("up");
            var ev = await failed;
            OnMain("RecoveryFailed handler");
            Equal(Pos(ev.Since), new List<object> { epoch, 51L }, "RecoveryFailed: Since = the old position");
            Check(ev.Epoch != null && ev.Epoch != epoch && ev.Seq == 0, "RecoveryFailed: the new epoch and seq", ev.Epoch + " " + ev.Seq);
            await back;
            await bBack;
            Equal(failures.Count, 1, "one RecoveryFailed (room1 keeps no history)");
            Equal(subOks[subOks.Count - 1]["recovered"], false, "subscribe.ok said recovered: false");
            Equal(Pos(c.Position("hist1")), new List<object> { ev.Epoch, 0L }, "position in the new epoch");
            var gotNew = NextChat(c, m => m.Channel == "hist1" && N(m) == 1);
            await Control("publish hist1 1 1");
            var fresh = await gotNew;
            Equal(fresh.Seq, 1, "seq 1 of the new epoch is delivered (not taken for a duplicate)");
        }
        finally
        {
            await c.Close();
        }
    }

    // ---- chat console --------------------------------------------------------------------------

    static async Task ChatConsole(string url, string user, string channel)
    {
        var c = NewClient(url, user);
        c.StateChanged += s => Console.WriteLine("[state] " + s.State.ToString().ToLowerInvariant()
            + (s.State == ConnectionState.Reconnecting ? " in " + s.Delay.ToString("0.0") + " s" : ""));
        c.ChatReceived += m => Console.WriteLine("[" + m.Channel + "] " + m.From + ": " + MiniJson.Serialize(m.Data));
        c.TypingReceived += m => Console.WriteLine("[" + m.Channel + "] " + m.From + (m.IsTyping ? " is typing" : " stopped typing"));
        c.Error += e => Console.WriteLine("[error] " + e.Message);
        var info = await c.Connect();
        Console.WriteLine("connected as " + info.User + ", session " + info.Session);
        await c.Subscribe(channel);
        StartStdinReader();
        while (true)
        {
            string line = await Task.Run(() => { string l; return stdinLines.TryTake(out l, -1) ? l : null; });
            if (line == null) break;
            c.Typing(channel, true);
            await c.Chat(channel, Text(line));
        }
        await c.Close();
    }

    // ---- the live test ---------------------------------------------------------------------------

    static async Task Test(string url)
    {
        StartStdinReader();
        int tokenCalls = 0;
        var a = NewClient(url, null);
        a.TokenProvider = () => { Interlocked.Increment(ref tokenCalls); return Task.FromResult("alice"); };
        var b = NewClient(url, "bob");
        foreach (var c in new[] { a, b })
        {
            c.RequestTimeout = 3f;
            c.ConnectTimeout = 2f;
            c.HeartbeatTimeout = 1.5f;
            c.ReconnectDelay = 0.1f;
            c.ReconnectDelayMax = 1f;
        }
        if (Environment.GetEnvironmentVariable("WSRELAY_TEST_DEBUG") != null)
        {
            var t00 = Stopwatch.StartNew();
            a.StateChanged += s => Console.WriteLine(t00.ElapsedMilliseconds + " a state " + s.State + " " + s.Code + " " + s.Reason);
            b.StateChanged += s => Console.WriteLine(t00.ElapsedMilliseconds + " b state " + s.State + " " + s.Code + " " + s.Reason);
            a.Closed += i => Console.WriteLine(t00.ElapsedMilliseconds + " a closed " + i.Code + " " + i.Reason);
        }
        var aStates = new List<ConnectionState>();
        a.StateChanged += s => aStates.Add(s.State);
        var aChats = new List<ChatMessage>();
        a.ChatReceived += m => aChats.Add(m);
        var aCloses = new List<CloseInfo>();
        a.Closed += i => aCloses.Add(i);

        // connect + auth
        Equal(a.State.ToString(), "Closed", "state before connect");
        var info = await a.Connect();
        OnMain("continuation of Connect()");
        await b.Connect();
        Equal(a.State.ToString(), "Open", "state after connect");
        Equal(info.User, "alice", "auth.ok user");
        Equal(info.Reconnected, false, "first open is not a reconnect");
        Check(a.Session != null && System.Text.RegularExpressions.Regex.IsMatch(a.Session, "^[0-9a-f]{16}$"), "session id", a.Session);
        Equal(a.HeartbeatSeconds, 1, "welcome.heartbeat (relay config interval 1)");
        Equal(aStates.Take(2).Select(s => s.ToString()).ToList(), new List<object> { "Connecting", "Open" }, "states on first connect");
        Equal(tokenCalls, 1, "token provider called once");

        // subscribe
        var sub = await a.Subscribe("room1");
        OnMain("continuation of Subscribe()");
        Equal(new object[] { sub["type"], sub["channel"] }, new object[] { "subscribe.ok", "room1" }, "subscribe reply");
        await b.Subscribe("room1");
        Check(a.Channels.Contains("room1"), "channel remembered");

        // chat seen by a second client (and by the sender)
        var bGot = NextChat(b, m => TextOf(m.Data) == "hi");
        var ok = await a.Chat("room1", Text("hi"));
        Equal(ok["type"], "chat.ok", "chat reply type");
        long seq = MiniJson.ToLong(ok["seq"]);
        Check(seq >= 1, "chat.ok seq", seq);
        var bChat = await bGot;
        Equal(new object[] { bChat.Channel, bChat.From, TextOf(bChat.Data), bChat.Seq }, new object[] { "room1", "alice", "hi", seq },
            "chat broadcast seen by bob");
        Check(bChat.Ts > 0, "chat broadcast ts");
        Check(aChats.Any(m => TextOf(m.Data) == "hi"), "sender sees its own broadcast");

        // typing
        int bTyping = 0;
        b.TypingReceived += m => bTyping++;
        var aTyping = Next<TypingMessage>(h => a.TypingReceived += h, h => a.TypingReceived -= h, m => true, 5, "typing");
        Check(b.Typing("room1", true), "typing sent");
        var t = await aTyping;
        Equal(new object[] { t.Channel, t.From, t.IsTyping }, new object[] { "room1", "bob", true }, "typing broadcast");
        await Task.Delay(200);
        Equal(bTyping, 0, "typing not echoed to the sender");

        // an error reply fails the Task (a custom type the standard script does not know)
        var err = await Failure(a.Request(new Dictionary<string, object> { { "type", "custom.echo" }, { "payload", 1 } }));
        OnMain("continuation of a failed Request()");
        Check(err != null, "custom request fails with WsRelayException");
        Equal(err == null ? null : err.Code, "unknown_type", "error code of the custom request");
        Check(err != null && err.Reply != null && err.Reply.ContainsKey("id"), "error reply carries the id");
        err = await Failure(a.Subscribe(""));
        Equal(err == null ? null : err.Code, "bad_request", "Subscribe(\"\") refused");
        Check(!a.Channels.Contains(""), "refused channel not remembered");

        // timeout: typing sent as a request gets no reply on success
        var sw = Stopwatch.StartNew();
        err = await Failure(a.Request(new Dictionary<string, object> { { "type", "typing" }, { "channel", "room1" }, { "typing", false } }, 0.3f));
        double took = sw.Elapsed.TotalSeconds;
        OnMain("continuation of a timed-out Request()");
        Equal(err == null ? null : err.Code, "timeout", "request without a reply times out");
        Check(took >= 0.25 && took < 2, "timeout after about 0.3 s", took);

        // concurrent requests, each completed by its own reply
        var h1 = a.Ping();
        var h2 = a.Chat("room1", "x");
        var h3 = a.Ping();
        await Task.WhenAll(h1, h2, h3);
        Check((string)h1.Result["type"] == "heartbeat" && (string)h2.Result["type"] == "chat.ok" && (string)h3.Result["type"] == "heartbeat",
            "concurrent requests matched by id");
        Check(MiniJson.Serialize(h1.Result["id"]) != MiniJson.Serialize(h3.Result["id"]), "distinct ids");

        // app-level heartbeat every welcome.heartbeat (1 s)
        float rtt = await Next<float>(h => a.HeartbeatReceived += h, h => a.HeartbeatReceived -= h, r => true, 3, "heartbeat");
        Check(rtt >= 0 && a.Rtt >= 0, "heartbeat rtt", rtt);

        // unsubscribe: room2 joined then left must not come back after reconnect
        await a.Subscribe("room2");
        var unsub = await a.Unsubscribe("room2");
        Equal(unsub["type"], "unsubscribe.ok", "unsubscribe reply");
        Check(!a.Channels.Contains("room2"), "unsubscribed channel forgotten");

        // ---- reconnect: SIGTERM, a request queued meanwhile, a new relay on the same port
        string oldSession = a.Session;
        aStates.Clear();
        var aReconnecting = NextState(a, ConnectionState.Reconnecting);
        var bReconnecting = NextState(b, ConnectionState.Reconnecting);
        await Control("down");
        await aReconnecting;
        await bReconnecting;
        Check(aCloses.Any(c => c.Code == 1001 && c.WasOpen), "close 1001 (server shutting down) seen",
            string.Join(",", aCloses.Select(c => c.Code + " " + c.Reason)));
        await Task.Delay(300); // a few failed attempts against the closed port
        var queued = a.Chat("room1", Text("queued"), 8f);
        var aOpen = NextOpen(a, 10);
        var bOpen = NextOpen(b, 10);
        var aQueued = NextChat(a, m => TextOf(m.Data) == "queued", 10);
        await Control("up");
        var reinfo = await aOpen;
        await bOpen;
        Equal(reinfo.Reconnected, true, "open after restart is a reconnect");
        Equal(reinfo.User, "alice", "re-authenticated as alice");
        Check(a.Session != oldSession, "new session after restart");
        Check(tokenCalls >= 2, "token provider asked again on reconnect", tokenCalls);
        Equal(reinfo.Channels, new[] { "room1" }, "resubscribed channels");
        Check(aStates.Contains(ConnectionState.Reconnecting) && aStates.Contains(ConnectionState.Connecting)
            && aStates.Last() == ConnectionState.Open, "states through the restart", string.Join(",", aStates));
        var queuedOk = await queued;
        Equal(queuedOk["type"], "chat.ok", "queued chat sent after reconnect");
        await aQueued;
        Check(true, "queued chat broadcast after resubscribe");

        // a chat on the old channel reaches alice; room2 (unsubscribed) does not
        var aAfter = NextChat(a, m => (m.Data as string) == "after restart");
        var okAfter = await b.Chat("room1", "after restart");
        var after = await aAfter;
        Equal(new object[] { after.From, after.Channel }, new object[] { "bob", "room1" }, "chat on the old channel after restart");
        Equal(MiniJson.ToLong(okAfter["seq"]), after.Seq, "seq of the new relay");
        int room2Before = aChats.Count(m => m.Channel == "room2");
        await b.Chat("room2", "not for alice");
        await Task.Delay(300);
        Equal(aChats.Count(m => m.Channel == "room2"), room2Before, "room2 not resubscribed");

        // ---- dead link: freeze the relay until both clients have noticed
        var aDead = NextClose(a, c => c.Reason == "heartbeat timeout", 8);
        var bDead = NextClose(b, c => c.Reason == "heartbeat timeout", 8);
        sw.Restart();
        await Control("pause");
        CloseInfo dead;
        try
        {
            dead = await aDead;
            await bDead;
        }
        finally
        {
            await Control("resume");
        }
        double detect = sw.Elapsed.TotalSeconds;
        Equal(dead.Code, 4000, "heartbeat timeout close code");
        Check(detect < 5.5, "dead link detected within interval + HeartbeatTimeout", detect);
        if (a.State != ConnectionState.Open) await NextOpen(a, 15);
        if (b.State != ConnectionState.Open) await NextOpen(b, 15);
        var aLive = NextChat(a, m => (m.Data as string) == "after freeze");
        await b.Chat("room1", "after freeze");
        await aLive;
        Check(true, "chat after the heartbeat reconnect");

        await Memory(url, b);

        // ---- close: no more reconnects, requests refused
        await a.Close();
        await Task.Delay(100);
        Equal(a.State.ToString(), "Closed", "closed after Close()");
        await Task.Delay(400);
        Equal(a.State.ToString(), "Closed", "stays closed");
        err = await Failure(a.Chat("room1", "x"));
        Equal(err == null ? null : err.Code, "closed", "request after Close() fails with 'closed'");
        await b.Close();
        Equal(offMainThread, 0, "events raised off the main thread");

        // JSON round trip of the bundled MiniJson
        var round = MiniJson.Serialize(MiniJson.Parse("{\"a\":[1,2.5,\"\\u00e9\\n\",true,null,{}],\"b\":-3}"));
        Equal(round, "{\"a\":[1,2.5,\"\u00e9\\n\",true,null,{}],\"b\":-3}", "MiniJson round trip");
    }
}
