// WsRelayClient.cs - a wsrelay.v1 client for Unity (and any .NET with
// System.Net.WebSockets.ClientWebSocket). One file, no dependencies: it
// carries its own small JSON reader/writer (MiniJson) because Unity's
// JsonUtility cannot read arbitrary JSON. See README.md next to this file and
// docs/protocol.md.
//
// Threading: the network runs on background tasks; every event and every
// Task the client hands you is completed inside DispatchPending(), which you
// call from the main thread (MonoBehaviour.Update). So handlers may touch
// Unity objects, and `await client.Chat(...)` resumes on the main thread.
// Request timeouts are checked in DispatchPending() too. Heartbeats and
// reconnects do not depend on the frame rate.
//
// Channel memory (history channels, docs/protocol.md): the client remembers
// each channel's position (epoch + last seq seen) and resubscribes with
// "since" after a reconnect, so what was published meanwhile arrives as the
// ordinary events; RecoveryFailed when the relay cannot replay it. A
// broadcast already delivered (seq <= the position) is dropped.
//
// Language level: C# 6 (compiles with Unity 2018.3+ and Mono's mcs).
// Not for WebGL builds (no System.Net.WebSockets there): use the JavaScript
// client (examples/clients/js) through a .jslib instead.

using System;
using System.Collections;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace WsRelay
{
    public enum ConnectionState { Closed, Connecting, Open, Reconnecting }

    /// <summary>An error reply from the server, or a client-side failure of a request.</summary>
    public class WsRelayException : Exception
    {
        /// <summary>The server's code (bad_request, unauthorized, unknown_type, ...) or a
        /// client one: "timeout", "disconnected", "closed", "bad_json", "client_error" (the
        /// TokenProvider failed; an Error event).</summary>
        public string Code { get; private set; }
        /// <summary>The server's human-readable message (or the client's).</summary>
        public string ServerMessage { get; private set; }
        /// <summary>The server's error message, if there was one.</summary>
        public Dictionary<string, object> Reply { get; private set; }

        public WsRelayException(string code, string message, Dictionary<string, object> reply = null)
            : base(code + ": " + message)
        {
            Code = code;
            ServerMessage = message;
            Reply = reply;
        }
    }

    /// <summary>A chat broadcast.</summary>
    public sealed class ChatMessage
    {
        public string Channel;
        public string From;
        public object Data; // any JSON value: Dictionary<string, object>, List<object>, string, long, double, bool, null
        public long Seq;
        public long Ts; // server time, ms since the Unix epoch
        public Dictionary<string, object> Raw;
    }

    /// <summary>A typing broadcast (never sent back to the typist).</summary>
    public sealed class TypingMessage
    {
        public string Channel;
        public string From;
        public bool IsTyping;
        public Dictionary<string, object> Raw;
    }

    /// <summary>join / leave in a channel with join_leave (never sent to the one who joined or left).</summary>
    public sealed class JoinLeaveMessage
    {
        public string Channel;
        public string User;
        public string Session;
        public Dictionary<string, object> Raw;
    }

    /// <summary>Where a client is in a history channel's stream: the epoch and the last seq delivered.</summary>
    public sealed class StreamPosition
    {
        public string Epoch;
        public long Seq;

        public StreamPosition(string epoch, long seq) { Epoch = epoch; Seq = seq; }
    }

    /// <summary>A resubscribe with "since" that the relay could not recover (recovered: false,
    /// e.g. after a restart: a new epoch): what was published meanwhile is lost.</summary>
    public sealed class RecoveryFailure
    {
        public string Channel;
        /// <summary>The position the client asked to resume from.</summary>
        public StreamPosition Since;
        /// <summary>The channel's position now (from subscribe.ok); Epoch null if the channel keeps no history any more.</summary>
        public string Epoch;
        public long Seq;
        /// <summary>The subscribe.ok reply.</summary>
        public Dictionary<string, object> Reply;
    }

    public sealed class OpenInfo
    {
        public string Session;
        public string User;
        public bool Reconnected;
        public string[] Channels;
    }

    public sealed class CloseInfo
    {
        public int Code;
        public string Reason;
        public bool WasOpen;
    }

    public sealed class StateChange
    {
        public ConnectionState State;
        public int Attempt;
        public float Delay; // seconds until the next attempt (Reconnecting)
        public int Code; // close code that caused it (Reconnecting, Closed)
        public string Reason;
    }

    /// <summary>A wsrelay.v1 client that stays connected until Close().</summary>
    public class WsRelayClient : IDisposable
    {
        // ---- settings (set before Connect) ----------------------------------------

        public string Url { get; private set; }
        /// <summary>Auth token (a JWT, or in development mode the user name); null = no auth.</summary>
        public string Token;
        /// <summary>If set, asked for a token on every (re)connect, on a background thread.</summary>
        public Func<Task<string>> TokenProvider;
        public float RequestTimeout = 10f;
        /// <summary>Socket open + welcome + auth + resubscribe, seconds.</summary>
        public float ConnectTimeout = 10f;
        /// <summary>Seconds between app-level heartbeats; below 0: the server's welcome.heartbeat; 0: off.</summary>
        public float HeartbeatInterval = -1f;
        /// <summary>No heartbeat reply within this many seconds: the link is dead, reconnect.</summary>
        public float HeartbeatTimeout = 10f;
        public bool AutoReconnect = true;
        public float ReconnectDelay = 0.5f;
        public float ReconnectDelayMax = 15f;
        /// <summary>Each delay is scaled by a random factor in [1 - jitter, 1].</summary>
        public float ReconnectJitter = 0.5f;
        /// <summary>Consecutive failed attempts before giving up; below 0: never give up.</summary>
        public int MaxReconnectAttempts = -1;
        /// <summary>Where exceptions thrown by your event handlers go (Unity: Debug.LogException).</summary>
        public Action<Exception> ListenerException;

        // ---- events: all raised inside DispatchPending() ------------------------------

        public event Action<StateChange> StateChanged;
        public event Action<OpenInfo> Opened;
        public event Action<CloseInfo> Closed;
        public event Action<Dictionary<string, object>> WelcomeReceived;
        public event Action<ChatMessage> ChatReceived;
        public event Action<TypingMessage> TypingReceived;
        public event Action<JoinLeaveMessage> JoinReceived;
        public event Action<JoinLeaveMessage> LeaveReceived;
        /// <summary>A resubscribe after a reconnect could not recover what was missed.</summary>
        public event Action<RecoveryFailure> RecoveryFailed;
        /// <summary>Error replies nobody waits for, refused channels on resubscribe, a refused token.</summary>
        public event Action<WsRelayException> Error;
        /// <summary>Heartbeat round trip, seconds.</summary>
        public event Action<float> HeartbeatReceived;
        /// <summary>Every message from the server (custom scripts' types too).</summary>
        public event Action<Dictionary<string, object>> MessageReceived;

        // ---- live state -----------------------------------------------------------------

        volatile ConnectionState state = ConnectionState.Closed;
        public ConnectionState State { get { return state; } }
        public string Session { get; private set; }
        public string User { get; private set; }
        /// <summary>The server's heartbeat interval from welcome, seconds.</summary>
        public int HeartbeatSeconds { get; private set; }
        /// <summary>Last heartbeat round trip in seconds, -1 before the first.</summary>
        public float Rtt { get; private set; }

        /// <summary>The channels this client is in (restored after every reconnect).</summary>
        public string[] Channels
        {
            get { lock (gate) { var a = new string[channels.Count]; channels.CopyTo(a); return a; } }
        }

        // ---- internals ---------------------------------------------------------------------

        sealed class Pending
        {
            public string Key;
            public string Type;
            public Dictionary<string, object> Msg;
            public string Json;
            public bool Internal;
            public double Deadline;
            public Conn Conn;
            public TaskCompletionSource<Dictionary<string, object>> Tcs;
        }

        sealed class Conn
        {
            public ClientWebSocket Ws;
            public CancellationTokenSource Cts;
            public TaskCompletionSource<Dictionary<string, object>> Welcome =
                new TaskCompletionSource<Dictionary<string, object>>(TaskCreationOptions.RunContinuationsAsynchronously);
            public volatile bool Open;
            public int CloseCode; // 0 = still open
            public string CloseReason = "";
            public bool Abandoned;
            public readonly ConcurrentQueue<string> Outbox = new ConcurrentQueue<string>();
            public readonly SemaphoreSlim OutboxSignal = new SemaphoreSlim(0);
        }

        readonly object gate = new object();
        readonly HashSet<string> channels = new HashSet<string>();
        readonly Dictionary<string, StreamPosition> positions = new Dictionary<string, StreamPosition>();
        readonly Dictionary<string, Pending> pending = new Dictionary<string, Pending>();
        readonly List<Pending> queued = new List<Pending>();
        readonly ConcurrentQueue<Action> mainQueue = new ConcurrentQueue<Action>();
        List<TaskCompletionSource<OpenInfo>> connectWaiters = new List<TaskCompletionSource<OpenInfo>>();
        readonly Stopwatch clock = Stopwatch.StartNew();
        static readonly System.Random random = new System.Random();
        long nextId;
        Conn current;
        bool wanted;
        int generation;
        bool everOpened;
        OpenInfo openInfo;
        CancellationTokenSource lifetime;
        Task runner;

        public WsRelayClient(string url, string token = null)
        {
            Url = url;
            Token = token;
            Rtt = -1f;
        }

        double Now { get { return clock.Elapsed.TotalSeconds; } }

        // ---- main thread ---------------------------------------------------------------------

        /// <summary>Raises the events and completes the Tasks that are due. Call it every
        /// frame from the main thread (MonoBehaviour.Update).</summary>
        public void DispatchPending()
        {
            // Requests past their deadline (replies already received were removed at arrival).
            List<Pending> expired = null;
            double now = Now;
            lock (gate)
            {
                foreach (var p in pending.Values)
                    if (!p.Internal && now >= p.Deadline) (expired ?? (expired = new List<Pending>())).Add(p);
                foreach (var p in queued)
                    if (now >= p.Deadline) (expired ?? (expired = new List<Pending>())).Add(p);
                if (expired != null)
                    foreach (var p in expired) Forget(p);
            }
            if (expired != null)
                foreach (var p in expired)
                    p.Tcs.TrySetException(new WsRelayException("timeout",
                        "no reply to '" + p.Type + "' (id " + p.Key + ") within the timeout"));

            // Only what is queued now: handlers that cause more wait for the next frame.
            int n = mainQueue.Count;
            Action action;
            for (int i = 0; i < n && mainQueue.TryDequeue(out action); i++)
            {
                try { action(); }
                catch (Exception e)
                {
                    var h = ListenerException;
                    if (h != null) h(e); else Console.Error.WriteLine("WsRelayClient: a handler threw: " + e);
                }
            }
        }

        void Post(Action action) { mainQueue.Enqueue(action); }

        void Raise<T>(Func<Action<T>> handler, T value)
        {
            Post(() => { var h = handler(); if (h != null) h(value); });
        }

        // ---- connection ----------------------------------------------------------------------

        /// <summary>Starts the client (it then stays connected until Close()). Completes once
        /// authenticated and subscribed; retries meanwhile. Fails if the client is closed
        /// first (Close(), a refused token, MaxReconnectAttempts).</summary>
        public Task<OpenInfo> Connect()
        {
            lock (gate)
            {
                if (wanted && state == ConnectionState.Open && openInfo != null) return Task.FromResult(openInfo);
                var tcs = new TaskCompletionSource<OpenInfo>();
                connectWaiters.Add(tcs);
                if (!wanted)
                {
                    wanted = true;
                    everOpened = false;
                    int gen = ++generation;
                    lifetime = new CancellationTokenSource();
                    var token = lifetime.Token;
                    runner = Task.Run(() => RunAsync(gen, token));
                }
                return tcs.Task;
            }
        }

        /// <summary>Closes the connection and stops reconnecting; waiting requests fail with
        /// "closed". The returned Task completes (on a background thread) once the socket is closed.</summary>
        public Task Close(int code = 1000, string reason = "")
        {
            Conn conn;
            Task run;
            CancellationTokenSource life;
            lock (gate)
            {
                if (!wanted && runner == null) return Task.FromResult(true);
                conn = current;
                run = runner;
                life = lifetime;
                runner = null;
                generation++;
            }
            Finish(new WsRelayException("closed", "client closed"));
            return Task.Run(async () =>
            {
                if (conn != null && conn.Ws.State == WebSocketState.Open)
                {
                    try
                    {
                        using (var cts = new CancellationTokenSource(2000))
                            await conn.Ws.CloseOutputAsync((WebSocketCloseStatus)code, reason, cts.Token);
                        // The server's close comes back and ends the connection.
                        if (run != null) await Task.WhenAny(run, Task.Delay(2000));
                    }
                    catch (Exception) { }
                }
                if (life != null) life.Cancel();
                if (run != null) await Task.WhenAny(run, Task.Delay(1000));
            });
        }

        public void Dispose() { Close(); }

        /// <summary>Stops for good: everything waiting fails with err.</summary>
        void Finish(WsRelayException err)
        {
            List<Pending> failed = new List<Pending>();
            List<TaskCompletionSource<OpenInfo>> waiters;
            lock (gate)
            {
                wanted = false;
                foreach (var p in pending.Values) if (!p.Internal) failed.Add(p);
                failed.AddRange(queued);
                foreach (var p in failed) Forget(p);
                waiters = connectWaiters;
                connectWaiters = new List<TaskCompletionSource<OpenInfo>>();
            }
            foreach (var p in failed) { var t = p.Tcs; Post(() => t.TrySetException(err)); }
            foreach (var w in waiters) { var t = w; Post(() => t.TrySetException(err)); }
        }

        void SetState(ConnectionState s, int attempt = 0, float delay = 0, int code = 0, string reason = null)
        {
            if (state == s && s != ConnectionState.Connecting) return;
            state = s;
            var change = new StateChange { State = s, Attempt = attempt, Delay = delay, Code = code, Reason = reason };
            Raise(() => StateChanged, change);
        }

        bool Current(int gen) { lock (gate) return wanted && gen == generation; }

        float Backoff(int attempt)
        {
            double r;
            lock (random) r = random.NextDouble();
            double baseDelay = Math.Min(ReconnectDelayMax, ReconnectDelay * Math.Pow(2, attempt));
            return (float)(baseDelay * (1 - ReconnectJitter * r));
        }

        async Task RunAsync(int gen, CancellationToken life)
        {
            int attempt = 0;
            try
            {
                while (Current(gen))
                {
                    SetState(ConnectionState.Connecting, attempt);
                    var closed = await ConnectionAsync(life);
                    if (closed.WasOpen) attempt = 0;
                    Raise(() => Closed, closed);
                    if (!Current(gen)) break;
                    if (!AutoReconnect || (MaxReconnectAttempts >= 0 && attempt >= MaxReconnectAttempts))
                    {
                        Finish(new WsRelayException("closed", "connection closed (" + closed.Code + ") and not reconnecting"));
                        break;
                    }
                    float delay = Backoff(attempt);
                    attempt++;
                    SetState(ConnectionState.Reconnecting, attempt, delay, closed.Code, closed.Reason);
                    try { await Task.Delay(TimeSpan.FromSeconds(delay), life); }
                    catch (OperationCanceledException) { break; }
                }
            }
            catch (Exception e)
            {
                Raise(() => Error, new WsRelayException("internal", e.ToString()));
            }
            finally
            {
                lock (gate) { if (gen == generation || !wanted) SetState(ConnectionState.Closed); }
            }
        }

        static string Describe(Exception e)
        {
            while (e.InnerException != null) e = e.InnerException;
            return e.Message;
        }

        async Task<CloseInfo> ConnectionAsync(CancellationToken life)
        {
            var ws = new ClientWebSocket();
            var conn = new Conn { Ws = ws, Cts = CancellationTokenSource.CreateLinkedTokenSource(life) };
            using (var cts = CancellationTokenSource.CreateLinkedTokenSource(life))
            {
                cts.CancelAfter(TimeSpan.FromSeconds(ConnectTimeout));
                try
                {
                    await ws.ConnectAsync(new Uri(Url), cts.Token);
                }
                catch (Exception e)
                {
                    ws.Dispose();
                    return new CloseInfo
                    {
                        Code = 1006, WasOpen = false,
                        Reason = cts.IsCancellationRequested ? "connect timeout" : "connection failed: " + Describe(e),
                    };
                }
            }
            lock (gate) current = conn;
            var receive = ReceiveLoop(conn);
            var writer = WriteLoop(conn);
            // The whole handshake (welcome, auth, resubscribe) has ConnectTimeout.
            var handshakeTimer = Task.Delay(TimeSpan.FromSeconds(ConnectTimeout), conn.Cts.Token).ContinueWith(t =>
            {
                if (!t.IsCanceled && !conn.Open) Abandon(conn, 4000, "connect timeout");
            });
            try
            {
                await Handshake(conn, receive);
                await HeartbeatLoop(conn, receive);
                await receive;
            }
            catch (WsRelayException e)
            {
                if (e.Code == "unauthorized" || e.Code == "bad_request")
                {
                    // The token was refused: retrying with the same token cannot help.
                    Raise(() => Error, e);
                    Finish(e);
                    Abandon(conn, 1000, "");
                }
                else if (!receive.IsCompleted)
                {
                    Abandon(conn, 4000, "handshake failed: " + e.ServerMessage);
                }
            }
            catch (Exception e)
            {
                // e.g. the TokenProvider failed: report it, then try again later
                Raise(() => Error, new WsRelayException("client_error", "handshake failed: " + Describe(e)));
                Abandon(conn, 4000, "client error: " + Describe(e));
            }
            finally
            {
                List<Pending> failed = new List<Pending>();
                lock (gate)
                {
                    if (current == conn) current = null;
                    foreach (var p in pending.Values) if (p.Conn == conn) failed.Add(p);
                    foreach (var p in failed) Forget(p);
                }
                var err = new WsRelayException("disconnected", "the connection closed before the reply");
                foreach (var p in failed)
                {
                    var t = p.Tcs;
                    if (p.Internal) t.TrySetException(err); else Post(() => t.TrySetException(err));
                }
                conn.Cts.Cancel();
                try { await Task.WhenAny(receive, Task.Delay(1000)); } catch (Exception) { }
                if (conn.Abandoned) ws.Abort();
                ws.Dispose();
            }
            GC.KeepAlive(writer);
            GC.KeepAlive(handshakeTimer);
            return new CloseInfo { Code = conn.CloseCode == 0 ? 1006 : conn.CloseCode, Reason = conn.CloseReason, WasOpen = conn.Open };
        }

        /// <summary>Gives up on a connection at once (dead link, refused handshake).</summary>
        void Abandon(Conn conn, int code, string reason)
        {
            lock (gate)
            {
                if (conn.CloseCode == 0) { conn.CloseCode = code; conn.CloseReason = reason; }
                conn.Abandoned = true;
            }
            conn.Cts.Cancel(); // ends ReceiveAsync (which aborts the socket) and the writer
        }

        async Task Handshake(Conn conn, Task receive)
        {
            await Task.WhenAny(conn.Welcome.Task, receive);
            if (!conn.Welcome.Task.IsCompleted)
                throw new WsRelayException("disconnected", "the connection closed before the welcome");
            string token = Token;
            if (TokenProvider != null) token = await TokenProvider();
            if (!string.IsNullOrEmpty(token))
            {
                var ok = await CallAsync(conn, new Dictionary<string, object> { { "type", "auth" }, { "token", token } }, RequestTimeout);
                User = ok.ContainsKey("user") ? ok["user"] as string : null;
            }
            string[] chans = Channels;
            var calls = new Task<Dictionary<string, object>>[chans.Length];
            for (int i = 0; i < chans.Length; i++)
                calls[i] = CallAsync(conn, ResubscribeMsg(chans[i]), RequestTimeout);
            for (int i = 0; i < chans.Length; i++)
            {
                try { await calls[i]; }
                catch (WsRelayException e)
                {
                    if (e.Reply == null) throw; // timeout / disconnected: try the connection again
                    lock (gate) { channels.Remove(chans[i]); positions.Remove(chans[i]); } // refused by the server: forget it
                    Raise(() => Error, e);
                }
            }
            OpenInfo info;
            List<TaskCompletionSource<OpenInfo>> waiters;
            lock (gate)
            {
                if (current != conn || !wanted) throw new WsRelayException("disconnected", "closed during the handshake");
                conn.Open = true;
                info = new OpenInfo { Session = Session, User = User, Reconnected = everOpened, Channels = Channels };
                everOpened = true;
                openInfo = info;
                SetState(ConnectionState.Open);
                foreach (var p in queued) Transmit(p, conn); // requests made while offline
                queued.Clear();
                waiters = connectWaiters;
                connectWaiters = new List<TaskCompletionSource<OpenInfo>>();
            }
            Raise(() => Opened, info);
            foreach (var w in waiters) { var t = w; Post(() => t.TrySetResult(info)); }
        }

        async Task HeartbeatLoop(Conn conn, Task receive)
        {
            float interval = HeartbeatInterval >= 0 ? HeartbeatInterval : HeartbeatSeconds;
            if (interval <= 0) return;
            while (true)
            {
                var tick = Task.Delay(TimeSpan.FromSeconds(interval), conn.Cts.Token);
                if (await Task.WhenAny(receive, tick) == receive || tick.IsCanceled) return;
                var sw = Stopwatch.StartNew();
                try
                {
                    await CallAsync(conn, new Dictionary<string, object> { { "type", "heartbeat" } }, HeartbeatTimeout);
                }
                catch (WsRelayException e)
                {
                    if (e.Code == "timeout") Abandon(conn, 4000, "heartbeat timeout");
                    return;
                }
                Rtt = (float)sw.Elapsed.TotalSeconds;
                Raise(() => HeartbeatReceived, Rtt);
            }
        }

        async Task ReceiveLoop(Conn conn)
        {
            var buffer = new byte[16 * 1024];
            var message = new MemoryStream();
            try
            {
                while (true)
                {
                    var r = await conn.Ws.ReceiveAsync(new ArraySegment<byte>(buffer), conn.Cts.Token);
                    if (r.MessageType == WebSocketMessageType.Close)
                    {
                        lock (gate)
                        {
                            if (conn.CloseCode == 0)
                            {
                                conn.CloseCode = r.CloseStatus.HasValue ? (int)r.CloseStatus.Value : 1005;
                                conn.CloseReason = r.CloseStatusDescription ?? "";
                            }
                        }
                        if (conn.Ws.State == WebSocketState.CloseReceived)
                        {
                            try
                            {
                                using (var cts = new CancellationTokenSource(1000))
                                    await conn.Ws.CloseOutputAsync(r.CloseStatus ?? WebSocketCloseStatus.NormalClosure, "", cts.Token);
                            }
                            catch (Exception) { }
                        }
                        return;
                    }
                    message.Write(buffer, 0, r.Count);
                    if (!r.EndOfMessage) continue;
                    if (r.MessageType == WebSocketMessageType.Text)
                        OnText(conn, Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length));
                    message.SetLength(0);
                }
            }
            catch (Exception e)
            {
                lock (gate)
                {
                    if (conn.CloseCode == 0) { conn.CloseCode = 1006; conn.CloseReason = Describe(e); }
                }
            }
        }

        async Task WriteLoop(Conn conn)
        {
            try
            {
                while (true)
                {
                    await conn.OutboxSignal.WaitAsync(conn.Cts.Token);
                    string text;
                    if (!conn.Outbox.TryDequeue(out text)) continue;
                    var bytes = Encoding.UTF8.GetBytes(text);
                    await conn.Ws.SendAsync(new ArraySegment<byte>(bytes), WebSocketMessageType.Text, true, conn.Cts.Token);
                }
            }
            catch (Exception e)
            {
                if (!conn.Cts.IsCancellationRequested) Abandon(conn, 1006, "send failed: " + Describe(e));
            }
        }

        // ---- incoming (network thread) ----------------------------------------------------------

        void OnText(Conn conn, string text)
        {
            Dictionary<string, object> msg;
            try { msg = MiniJson.Parse(text) as Dictionary<string, object>; }
            catch (FormatException)
            {
                Raise(() => Error, new WsRelayException("bad_json", "the server sent a frame that is not JSON"));
                return;
            }
            if (msg == null) return;
            if (IsDuplicate(msg)) return;
            Raise(() => MessageReceived, msg);
            string type = msg.ContainsKey("type") ? msg["type"] as string : null;
            if (!conn.Welcome.Task.IsCompleted)
            {
                if (type == "welcome")
                {
                    Session = msg.ContainsKey("session") ? msg["session"] as string : null;
                    HeartbeatSeconds = msg.ContainsKey("heartbeat") ? (int)MiniJson.ToLong(msg["heartbeat"]) : 0;
                    Raise(() => WelcomeReceived, msg);
                    conn.Welcome.TrySetResult(msg);
                }
                return;
            }
            if (msg.ContainsKey("id"))
            {
                Pending p = null;
                lock (gate)
                {
                    string key = MiniJson.Serialize(msg["id"]);
                    if (pending.TryGetValue(key, out p)) Forget(p);
                    // Before the broadcasts behind it (this thread reads them next).
                    if (p != null && p.Type == "subscribe" && type == "subscribe.ok") OnSubscribed(p.Msg, msg);
                }
                if (p != null)
                {
                    var tcs = p.Tcs;
                    if (type == "error")
                    {
                        var err = ErrorOf(msg);
                        if (p.Internal) tcs.TrySetException(err); else Post(() => tcs.TrySetException(err));
                    }
                    else if (p.Internal) tcs.TrySetResult(msg);
                    else Post(() => tcs.TrySetResult(msg));
                    return;
                }
            }
            if (type == "chat")
            {
                var m = new ChatMessage
                {
                    Channel = Str(msg, "channel"), From = Str(msg, "from"),
                    Data = msg.ContainsKey("data") ? msg["data"] : null,
                    Seq = msg.ContainsKey("seq") ? MiniJson.ToLong(msg["seq"]) : 0,
                    Ts = msg.ContainsKey("ts") ? MiniJson.ToLong(msg["ts"]) : 0,
                    Raw = msg,
                };
                Raise(() => ChatReceived, m);
            }
            else if (type == "typing")
            {
                var m = new TypingMessage
                {
                    Channel = Str(msg, "channel"), From = Str(msg, "from"),
                    IsTyping = msg.ContainsKey("typing") && msg["typing"] is bool && (bool)msg["typing"],
                    Raw = msg,
                };
                Raise(() => TypingReceived, m);
            }
            else if (type == "join" || type == "leave")
            {
                var m = new JoinLeaveMessage
                {
                    Channel = Str(msg, "channel"), User = Str(msg, "user"), Session = Str(msg, "session"), Raw = msg,
                };
                if (type == "join") Raise(() => JoinReceived, m); else Raise(() => LeaveReceived, m);
            }
            else if (type == "error")
            {
                Raise(() => Error, ErrorOf(msg));
            }
        }

        // ---- channel memory ---------------------------------------------------------------------

        /// <summary>Where this client is in a history channel's stream (a copy), or null: not a
        /// history channel, or not subscribed. Any thread.</summary>
        public StreamPosition Position(string channel)
        {
            lock (gate)
            {
                StreamPosition pos;
                return positions.TryGetValue(channel, out pos) ? new StreamPosition(pos.Epoch, pos.Seq) : null;
            }
        }

        Dictionary<string, object> ResubscribeMsg(string channel)
        {
            var msg = new Dictionary<string, object> { { "type", "subscribe" }, { "channel", channel } };
            lock (gate)
            {
                StreamPosition pos;
                if (positions.TryGetValue(channel, out pos))
                    msg["since"] = new Dictionary<string, object> { { "seq", pos.Seq }, { "epoch", pos.Epoch } };
            }
            return msg;
        }

        /// <summary>A broadcast of a channel whose position is known (no id, a seq): true if it was
        /// delivered already (seq &lt;= the position); otherwise it moves the position on.</summary>
        bool IsDuplicate(Dictionary<string, object> msg)
        {
            object seqValue;
            string channel = Str(msg, "channel");
            if (msg.ContainsKey("id") || channel == null || !msg.TryGetValue("seq", out seqValue) || !(seqValue is long)) return false;
            long seq = (long)seqValue;
            lock (gate)
            {
                StreamPosition pos;
                if (!positions.TryGetValue(channel, out pos)) return false;
                if (seq <= pos.Seq) return true;
                pos.Seq = seq;
                return false;
            }
        }

        /// <summary>The reply to a subscribe (ours or one sent with Request()), under gate, as it
        /// arrives: takes the channel's position from it and reports a recovery that failed.</summary>
        void OnSubscribed(Dictionary<string, object> request, Dictionary<string, object> reply)
        {
            string channel = Str(request, "channel");
            if (channel == null || !channels.Contains(channel)) return;
            object sinceValue;
            var since = request.TryGetValue("since", out sinceValue) ? sinceValue as Dictionary<string, object> : null;
            StreamPosition known;
            positions.TryGetValue(channel, out known);
            object seqValue, recoveredValue;
            string epoch = Str(reply, "epoch");
            bool hasPosition = epoch != null && reply.TryGetValue("seq", out seqValue) && seqValue is long;
            long seq = hasPosition ? (long)reply["seq"] : 0;
            bool recovered = reply.TryGetValue("recovered", out recoveredValue) && recoveredValue is bool && (bool)recoveredValue;
            long sinceSeq = since != null && since.ContainsKey("seq") ? MiniJson.ToLong(since["seq"]) : 0;
            if (hasPosition)
            {
                // Recovered: what was missed follows this reply, so the position stays at
                // since and the replay moves it on.
                long at = since != null && recovered ? sinceSeq : seq;
                if (known != null && known.Epoch == epoch) at = Math.Max(at, known.Seq);
                positions[channel] = new StreamPosition(epoch, at);
            }
            else
            {
                positions.Remove(channel); // the channel keeps no history (now)
            }
            if (since != null && !recovered)
            {
                var failure = new RecoveryFailure
                {
                    Channel = channel,
                    Since = new StreamPosition(Str(since, "epoch"), sinceSeq),
                    Epoch = hasPosition ? epoch : null,
                    Seq = seq,
                    Reply = reply,
                };
                Raise(() => RecoveryFailed, failure);
            }
        }

        static string Str(Dictionary<string, object> msg, string key)
        {
            object v;
            return msg.TryGetValue(key, out v) ? v as string : null;
        }

        static WsRelayException ErrorOf(Dictionary<string, object> msg)
        {
            return new WsRelayException(Str(msg, "code") ?? "error", Str(msg, "message") ?? "", msg);
        }

        // ---- requests ---------------------------------------------------------------------------

        /// <summary>Sends msg (a "type" string plus fields) and completes with the reply that
        /// echoes its id (one is added unless present). Fails with WsRelayException on an error
        /// reply, on timeout ("timeout"), if the connection drops before the reply
        /// ("disconnected") or the client is closed ("closed"). While (re)connecting the request
        /// waits for the connection (its timeout keeps running). timeout: seconds, below 0 =
        /// RequestTimeout. Call from the main thread.</summary>
        public Task<Dictionary<string, object>> Request(Dictionary<string, object> msg, float timeout = -1f)
        {
            if (msg == null || !msg.ContainsKey("type") || !(msg["type"] is string))
                throw new ArgumentException("a request needs a string \"type\"");
            var outMsg = new Dictionary<string, object>(msg);
            if (!outMsg.ContainsKey("id")) outMsg["id"] = Interlocked.Increment(ref nextId);
            var p = NewPending(outMsg, false);
            p.Deadline = Now + (timeout < 0 ? RequestTimeout : timeout);
            lock (gate)
            {
                if (!wanted)
                {
                    var tcs = new TaskCompletionSource<Dictionary<string, object>>();
                    tcs.SetException(new WsRelayException("closed", "not connected: call Connect() first"));
                    return tcs.Task;
                }
                if (current != null && current.Open) Transmit(p, current);
                else queued.Add(p);
            }
            return p.Tcs.Task;
        }

        Pending NewPending(Dictionary<string, object> msg, bool isInternal)
        {
            return new Pending
            {
                Key = MiniJson.Serialize(msg["id"]),
                Type = (string)msg["type"],
                Msg = msg,
                Json = MiniJson.Serialize(msg),
                Internal = isInternal,
                // Internal requests complete on the network thread; yours in DispatchPending.
                Tcs = isInternal
                    ? new TaskCompletionSource<Dictionary<string, object>>(TaskCreationOptions.RunContinuationsAsynchronously)
                    : new TaskCompletionSource<Dictionary<string, object>>(),
            };
        }

        async Task<Dictionary<string, object>> CallAsync(Conn conn, Dictionary<string, object> msg, float timeout)
        {
            msg["id"] = Interlocked.Increment(ref nextId);
            var p = NewPending(msg, true);
            lock (gate) Transmit(p, conn);
            var delay = Task.Delay(TimeSpan.FromSeconds(timeout), conn.Cts.Token);
            if (await Task.WhenAny(p.Tcs.Task, delay) != p.Tcs.Task)
            {
                lock (gate) Forget(p);
                if (delay.IsCanceled) throw new WsRelayException("disconnected", "the connection closed before the reply");
                throw new WsRelayException("timeout", "no reply to '" + p.Type + "' within " + timeout + " s");
            }
            return await p.Tcs.Task;
        }

        // Under gate.
        void Transmit(Pending p, Conn conn)
        {
            p.Conn = conn;
            pending[p.Key] = p;
            conn.Outbox.Enqueue(p.Json);
            conn.OutboxSignal.Release();
        }

        // Under gate.
        void Forget(Pending p)
        {
            Pending q;
            if (pending.TryGetValue(p.Key, out q) && q == p) pending.Remove(p.Key);
            queued.Remove(p);
        }

        /// <summary>Sends a message without waiting for a reply. False if not open.</summary>
        public bool Send(Dictionary<string, object> msg)
        {
            lock (gate)
            {
                if (current == null || !current.Open) return false;
                current.Outbox.Enqueue(MiniJson.Serialize(msg));
                current.OutboxSignal.Release();
                return true;
            }
        }

        // ---- the wsrelay.v1 requests -------------------------------------------------------------

        /// <summary>Joins a channel (remembered: rejoined after every reconnect).</summary>
        public async Task<Dictionary<string, object>> Subscribe(string channel, float timeout = -1f)
        {
            lock (gate) channels.Add(channel);
            try
            {
                return await Request(new Dictionary<string, object> { { "type", "subscribe" }, { "channel", channel } }, timeout);
            }
            catch (WsRelayException e)
            {
                if (e.Reply != null) lock (gate) { channels.Remove(channel); positions.Remove(channel); } // the server refused it
                throw;
            }
        }

        /// <summary>Leaves a channel (and forgets it and its position).</summary>
        public Task<Dictionary<string, object>> Unsubscribe(string channel, float timeout = -1f)
        {
            lock (gate) { channels.Remove(channel); positions.Remove(channel); }
            return Request(new Dictionary<string, object> { { "type", "unsubscribe" }, { "channel", channel } }, timeout);
        }

        /// <summary>Publishes data (any JSON value: Dictionary, List, string, number, bool, null)
        /// to a channel; completes with chat.ok ({"seq"}).</summary>
        public Task<Dictionary<string, object>> Chat(string channel, object data, float timeout = -1f)
        {
            return Request(new Dictionary<string, object> { { "type", "chat" }, { "channel", channel }, { "data", data } }, timeout);
        }

        /// <summary>Tells the channel's other subscribers whether this user is typing. Fire and
        /// forget (no reply); false if not connected.</summary>
        public bool Typing(string channel, bool typing = true)
        {
            return Send(new Dictionary<string, object> { { "type", "typing" }, { "channel", channel }, { "typing", typing } });
        }

        /// <summary>A history channel's last publications (oldest first). limit: at most this many
        /// (capped by the channel's history_size); since: only those after it. Both optional.
        /// Completes with history.ok ({"epoch", "seq", ["recovered"], "messages"}); fails with
        /// "not_available" if the channel keeps no history.</summary>
        public Task<Dictionary<string, object>> History(string channel, int? limit = null, StreamPosition since = null, float timeout = -1f)
        {
            var msg = new Dictionary<string, object> { { "type", "history" }, { "channel", channel } };
            if (limit.HasValue) msg["limit"] = limit.Value;
            if (since != null) msg["since"] = new Dictionary<string, object> { { "seq", since.Seq }, { "epoch", since.Epoch } };
            return Request(msg, timeout);
        }

        /// <summary>Who is in a presence channel: presence.ok ({"clients": [{"session", "user"}]}).</summary>
        public Task<Dictionary<string, object>> Presence(string channel, float timeout = -1f)
        {
            return Request(new Dictionary<string, object> { { "type", "presence" }, { "channel", channel } }, timeout);
        }

        /// <summary>How many are in a presence channel: presence_stats.ok ({"clients", "users"}).</summary>
        public Task<Dictionary<string, object>> PresenceStats(string channel, float timeout = -1f)
        {
            return Request(new Dictionary<string, object> { { "type", "presence_stats" }, { "channel", channel } }, timeout);
        }

        /// <summary>One app-level heartbeat round trip; completes with the reply ({"ts"}).</summary>
        public Task<Dictionary<string, object>> Ping(float timeout = -1f)
        {
            return Request(new Dictionary<string, object> { { "type", "heartbeat" } }, timeout);
        }
    }

    /// <summary>A small JSON reader/writer. Parse gives Dictionary&lt;string, object&gt;,
    /// List&lt;object&gt;, string, long (integers), double, bool or null.</summary>
    public static class MiniJson
    {
        public static object Parse(string json)
        {
            int i = 0;
            object v = ParseValue(json, ref i, 0);
            SkipWs(json, ref i);
            if (i != json.Length) throw new FormatException("trailing characters at " + i);
            return v;
        }

        public static long ToLong(object v)
        {
            if (v is long) return (long)v;
            if (v is double) return (long)(double)v;
            if (v is int) return (int)v;
            return 0;
        }

        static void SkipWs(string s, ref int i)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
        }

        static object ParseValue(string s, ref int i, int depth)
        {
            if (depth > 1000) throw new FormatException("nested too deep");
            SkipWs(s, ref i);
            if (i >= s.Length) throw new FormatException("unexpected end");
            char c = s[i];
            if (c == '{')
            {
                i++;
                var obj = new Dictionary<string, object>();
                SkipWs(s, ref i);
                if (i < s.Length && s[i] == '}') { i++; return obj; }
                while (true)
                {
                    SkipWs(s, ref i);
                    if (i >= s.Length || s[i] != '"') throw new FormatException("expected a key at " + i);
                    string key = ParseString(s, ref i);
                    SkipWs(s, ref i);
                    if (i >= s.Length || s[i] != ':') throw new FormatException("expected ':' at " + i);
                    i++;
                    obj[key] = ParseValue(s, ref i, depth + 1);
                    SkipWs(s, ref i);
                    if (i < s.Length && s[i] == ',') { i++; continue; }
                    if (i < s.Length && s[i] == '}') { i++; return obj; }
                    throw new FormatException("expected ',' or '}' at " + i);
                }
            }
            if (c == '[')
            {
                i++;
                var list = new List<object>();
                SkipWs(s, ref i);
                if (i < s.Length && s[i] == ']') { i++; return list; }
                while (true)
                {
                    list.Add(ParseValue(s, ref i, depth + 1));
                    SkipWs(s, ref i);
                    if (i < s.Length && s[i] == ',') { i++; continue; }
                    if (i < s.Length && s[i] == ']') { i++; return list; }
                    throw new FormatException("expected ',' or ']' at " + i);
                }
            }
            if (c == '"') return ParseString(s, ref i);
            if (Literal(s, ref i, "true")) return true;
            if (Literal(s, ref i, "false")) return false;
            if (Literal(s, ref i, "null")) return null;
            return ParseNumber(s, ref i);
        }

        static bool Literal(string s, ref int i, string word)
        {
            if (string.CompareOrdinal(s, i, word, 0, word.Length) != 0) return false;
            i += word.Length;
            return true;
        }

        static string ParseString(string s, ref int i)
        {
            i++; // opening quote
            var sb = new StringBuilder();
            while (true)
            {
                if (i >= s.Length) throw new FormatException("unterminated string");
                char c = s[i++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                if (i >= s.Length) throw new FormatException("unterminated escape");
                char e = s[i++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (i + 4 > s.Length) throw new FormatException("bad \\u escape");
                        sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    default: throw new FormatException("bad escape \\" + e);
                }
            }
        }

        static object ParseNumber(string s, ref int i)
        {
            int start = i;
            bool isFloat = false;
            while (i < s.Length)
            {
                char c = s[i];
                if (c >= '0' && c <= '9' || c == '-' || c == '+') { i++; continue; }
                if (c == '.' || c == 'e' || c == 'E') { isFloat = true; i++; continue; }
                break;
            }
            if (i == start) throw new FormatException("unexpected character at " + i);
            string text = s.Substring(start, i - start);
            long l;
            if (!isFloat && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return l;
            double d;
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) return d;
            throw new FormatException("bad number '" + text + "'");
        }

        public static string Serialize(object value)
        {
            var sb = new StringBuilder();
            Write(sb, value);
            return sb.ToString();
        }

        static void Write(StringBuilder sb, object v)
        {
            if (v == null) { sb.Append("null"); return; }
            if (v is string) { WriteString(sb, (string)v); return; }
            if (v is bool) { sb.Append((bool)v ? "true" : "false"); return; }
            if (v is double) { WriteDouble(sb, (double)v); return; }
            if (v is float) { WriteDouble(sb, (float)v); return; }
            if (v is int || v is long || v is short || v is byte || v is sbyte || v is uint || v is ulong || v is ushort || v is decimal)
            {
                sb.Append(Convert.ToString(v, CultureInfo.InvariantCulture));
                return;
            }
            if (v is char) { WriteString(sb, v.ToString()); return; }
            var dict = v as IDictionary;
            if (dict != null)
            {
                sb.Append('{');
                bool first = true;
                foreach (DictionaryEntry e in dict)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(sb, Convert.ToString(e.Key, CultureInfo.InvariantCulture));
                    sb.Append(':');
                    Write(sb, e.Value);
                }
                sb.Append('}');
                return;
            }
            var list = v as IEnumerable;
            if (list != null)
            {
                sb.Append('[');
                bool first = true;
                foreach (var item in list)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Write(sb, item);
                }
                sb.Append(']');
                return;
            }
            WriteString(sb, v.ToString());
        }

        static void WriteDouble(StringBuilder sb, double d)
        {
            if (double.IsNaN(d) || double.IsInfinity(d)) { sb.Append("null"); return; }
            sb.Append(d.ToString("R", CultureInfo.InvariantCulture));
        }

        static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }
}
