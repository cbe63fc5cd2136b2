// wsrelay-bench: a WebSocket load generator for wsrelay and its peers.
//
// One epoll loop per generator process, no WebSocket library: the client side
// of RFC 6455 is in ws_proto.hpp, and every frame it sends is masked once,
// before the run, with one fixed key (the payload of a publish is the only one
// re-masked per send, for its timestamp). Scenarios and options: --help.
// Loopback only: a URL whose host is not in 127.0.0.0/8 is refused.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "histogram.hpp"
#include "ws_proto.hpp"

namespace bench {
namespace {

using Nanos = std::int64_t;

Nanos now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Nanos>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "wsrelay-bench: %s\n", msg.c_str());
  std::exit(2);
}

// ---------------------------------------------------------------- options --

enum class Scenario { Echo, Latency, Fanout, Relay, Idle, Churn, Recovery, ServeEcho, ServeHttp };
enum class Proto { Standard, Plain };

struct Url {
  std::string text;
  std::string hostport;
  std::string path = "/";
  sockaddr_in addr{};
};

Url parse_url(const std::string& s) {
  Url u;
  u.text = s;
  const std::string scheme = "ws://";
  if (s.compare(0, scheme.size(), scheme) != 0) die("--url: expected ws://HOST:PORT/PATH (got " + s + ")");
  std::string rest = s.substr(scheme.size());
  const auto slash = rest.find('/');
  if (slash != std::string::npos) {
    u.path = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  u.hostport = rest;
  std::string host = rest;
  int port = 80;
  if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = std::atoi(rest.c_str() + colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  u.addr.sin_family = AF_INET;
  u.addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &u.addr.sin_addr) != 1) die("--url: host must be an IPv4 address: " + s);
  if ((ntohl(u.addr.sin_addr.s_addr) >> 24) != 127) die("--url: loopback only (127.0.0.0/8): " + s);
  if (port <= 0 || port > 65535) die("--url: bad port: " + s);
  return u;
}

struct Options {
  Scenario scenario = Scenario::Echo;
  std::string scenario_name = "echo";
  Proto proto = Proto::Standard;
  std::string url = "ws://127.0.0.1:8000/ws";
  std::string pub_url;       // fanout publisher; default: url
  std::string upstream_url;  // relay: the echo upstream, measured directly as the baseline
  std::string subprotocol;
  std::string channel = "bench";
  std::string token = "bench";
  std::string label;
  int conns = 100;
  double rate = 0;  // latency/relay: messages/s in total; churn: cycles/s (0 = closed loop)
  double duration = 5;
  double warmup = 1;
  int inflight = 1;
  int window = 8;
  int size = 36;
  int missed = 100;  // recovery: messages published while the clients are away
  int procs = 1;
  int source_addrs = 32;
  int connect_concurrency = 1000;
  pid_t server_pid = 0;
  bool json = false;
  double setup_timeout = 60;
  double grace = 2;
  std::string listen_host = "127.0.0.1";
  int listen_port = 0;
  pid_t backend_pid = 0;      // a backend the server calls: its CPU in the window
  std::string welcome;        // plain: ready when the first message starts with this (not at the handshake)
  int waiters = 0;            // latency: extra connections to --waiter-url, each keeping one message in flight
  std::string waiter_url;
  std::string waiter_message = "wait";  // "" : the waiters connect and stay silent
};

void usage() {
  std::puts(
      "usage: wsrelay-bench SCENARIO [options]\n"
      "\n"
      "scenarios:\n"
      "  echo      closed loop: --inflight messages per connection, max throughput\n"
      "  latency   open loop at --rate msg/s in total; latency from the scheduled send time\n"
      "  fanout    1 publisher -> --conns subscribers: deliveries/s, publish->receive latency\n"
      "  relay     open loop at --rate through wsrelay to an echo upstream, and directly to\n"
      "            --upstream-url as the baseline: the latency the relay adds\n"
      "  idle      --conns connections set up (auth + subscribe) and silent: server RSS per\n"
      "            connection (needs --server-pid) and the time to establish them all\n"
      "  churn     connect + auth + subscribe + close cycles at --rate/s (0: as fast as\n"
      "            --conns concurrent cycles go)\n"
      "  recovery  a recovery storm on a history channel (standard protocol): --conns\n"
      "            subscribers disconnect, --missed messages are published, all reconnect\n"
      "            at once and subscribe with since; the time until each has all of them\n"
      "            (checked: exactly --missed, in order), server CPU and peak RSS (with\n"
      "            --server-pid). --warmup > 0: one unmeasured storm first. One process.\n"
      "  serve-echo  a plain WebSocket echo server (the relay scenario's upstream):\n"
      "            --listen-port N [--listen-host 127.0.0.1]; runs until SIGTERM/SIGINT\n"
      "  serve-http  a minimal HTTP/1.1 backend (keep-alive, no framework), like\n"
      "            serve-echo: POST /ws/connect -> {\"user\":\"bench\",\"ok\":true} at once;\n"
      "            GET /sleep?s=S -> {\"slept\":S} after S seconds; anything else 404\n"
      "\n"
      "options:\n"
      "  --url ws://127.0.0.1:8000/ws   server (loopback only)\n"
      "  --pub-url URL           fanout publisher's URL (default --url; nchan: /pub/..)\n"
      "  --upstream-url URL      relay: the upstream echo server, for the baseline\n"
      "  --protocol standard|plain  standard: wsrelay.v1 (auth, subscribe, heartbeat, chat);\n"
      "                          plain: raw text frames (peers, relay endpoints)\n"
      "  --subprotocol NAME      Sec-WebSocket-Protocol to ask for\n"
      "  --conns N               connections (fanout: subscribers)            [100]\n"
      "  --rate R                latency/relay msg/s; churn cycles/s; fanout:\n"
      "                          publishes/s (open loop, still within --window;\n"
      "                          0: closed loop, as fast as the window goes)  [0]\n"
      "  --duration S            measured seconds                             [5]\n"
      "  --warmup S              seconds before measuring (idle: settle time) [1]\n"
      "  --inflight N            echo: messages in flight per connection     [1]\n"
      "  --window N              fanout: publishes in flight                  [8]\n"
      "  --size N                plain echo payload bytes (standard: 36)      [36]\n"
      "  --missed N              recovery: messages published while away      [100]\n"
      "  --channel NAME --token NAME   standard protocol channel and token   [bench]\n"
      "  --server-pid PID        read the server's CPU time and RSS from /proc\n"
      "  --procs N               generator processes (connections split)      [1]\n"
      "  --source-addrs N        spread connections over 127.0.0.1..N         [32]\n"
      "  --connect-concurrency N handshakes in progress at once               [1000]\n"
      "  --setup-timeout S       give up setting connections up after S       [60]\n"
      "  --welcome PREFIX        plain protocol: a connection is ready when its first\n"
      "                          message starts with PREFIX (churn: connect -> welcome\n"
      "                          -> close); another first message is an error reply\n"
      "  --waiters N             latency: N more connections to --waiter-url (plain),\n"
      "                          opened with the others; from the start of the warm-up\n"
      "                          each sends --waiter-message and sends it again on\n"
      "                          every reply: a handler waiting on a backend per waiter\n"
      "  --waiter-url URL        the waiters' endpoint\n"
      "  --waiter-message TEXT   what a waiter sends (\"\": connect, stay silent) [wait]\n"
      "  --backend-pid PID       a backend the server calls: its CPU in the window\n"
      "  --label TEXT            carried into the output\n"
      "  --json                  one JSON object instead of the table");
}

Options parse_args(int argc, char** argv) {
  Options o;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    usage();
    std::exit(argc < 2 ? 2 : 0);
  }
  o.scenario_name = argv[1];
  const std::string sc = argv[1];
  if (sc == "echo") o.scenario = Scenario::Echo;
  else if (sc == "latency") o.scenario = Scenario::Latency;
  else if (sc == "fanout") o.scenario = Scenario::Fanout;
  else if (sc == "relay") o.scenario = Scenario::Relay;
  else if (sc == "idle") o.scenario = Scenario::Idle;
  else if (sc == "churn") o.scenario = Scenario::Churn;
  else if (sc == "recovery") o.scenario = Scenario::Recovery;
  else if (sc == "serve-echo") o.scenario = Scenario::ServeEcho;
  else if (sc == "serve-http") o.scenario = Scenario::ServeHttp;
  else die("unknown scenario '" + sc + "' (--help lists them)");
  if (o.scenario == Scenario::Idle) o.warmup = 2;
  bool warmup_set = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die(a + ": needs a value");
      return argv[++i];
    };
    auto num = [&]() -> double {
      const std::string v = val();
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !std::isfinite(d) || d < 0) die(a + ": expected a number >= 0 (got " + v + ")");
      return d;
    };
    if (a == "--url") o.url = val();
    else if (a == "--pub-url") o.pub_url = val();
    else if (a == "--upstream-url") o.upstream_url = val();
    else if (a == "--protocol") {
      const std::string p = val();
      if (p == "standard") o.proto = Proto::Standard;
      else if (p == "plain") o.proto = Proto::Plain;
      else die("--protocol: standard or plain (got " + p + ")");
    } else if (a == "--subprotocol") o.subprotocol = val();
    else if (a == "--channel") o.channel = val();
    else if (a == "--token") o.token = val();
    else if (a == "--label") o.label = val();
    else if (a == "--conns") o.conns = static_cast<int>(num());
    else if (a == "--rate") o.rate = num();
    else if (a == "--duration") o.duration = num();
    else if (a == "--warmup") { o.warmup = num(); warmup_set = true; }
    else if (a == "--inflight") o.inflight = std::max(1, static_cast<int>(num()));
    else if (a == "--window") o.window = std::max(1, static_cast<int>(num()));
    else if (a == "--size") o.size = std::max(2, static_cast<int>(num()));
    else if (a == "--missed") o.missed = std::max(1, static_cast<int>(num()));
    else if (a == "--server-pid") o.server_pid = static_cast<pid_t>(num());
    else if (a == "--procs") o.procs = std::max(1, static_cast<int>(num()));
    else if (a == "--source-addrs") o.source_addrs = std::clamp(static_cast<int>(num()), 1, 250);
    else if (a == "--connect-concurrency") o.connect_concurrency = std::max(1, static_cast<int>(num()));
    else if (a == "--setup-timeout") o.setup_timeout = num();
    else if (a == "--listen-host") o.listen_host = val();
    else if (a == "--listen-port") o.listen_port = static_cast<int>(num());
    else if (a == "--backend-pid") o.backend_pid = static_cast<pid_t>(num());
    else if (a == "--welcome") o.welcome = val();
    else if (a == "--waiters") o.waiters = static_cast<int>(num());
    else if (a == "--waiter-url") o.waiter_url = val();
    else if (a == "--waiter-message") o.waiter_message = val();
    else if (a == "--json") o.json = true;
    else if (a == "--help" || a == "-h") { usage(); std::exit(0); }
    else die("unknown option " + a + " (--help lists them)");
  }
  (void)warmup_set;
  if (o.duration > 3600 || o.warmup > 3600) die("--duration/--warmup: at most 3600 s");
  const bool serving = o.scenario == Scenario::ServeEcho || o.scenario == Scenario::ServeHttp;
  if (o.conns < 1 && !serving) die("--conns: at least 1");
  if (o.conns > 1000000) die("--conns: at most 1000000");
  if ((o.scenario == Scenario::Latency || o.scenario == Scenario::Relay) && o.rate <= 0)
    die(o.scenario_name + ": needs --rate > 0");
  if (o.scenario == Scenario::Relay && o.upstream_url.empty()) die("relay: needs --upstream-url (the echo upstream)");
  if (o.pub_url.empty()) o.pub_url = o.url;
  if (o.scenario == Scenario::Recovery) {
    if (o.proto != Proto::Standard) die("recovery: the standard protocol only (subscribe with since)");
    o.procs = 1;  // the storm's phases need every client in one loop
  }
  if (o.waiters > 0) {
    if (o.scenario != Scenario::Latency) die("--waiters: the latency scenario only");
    if (o.waiter_url.empty()) die("--waiters: needs --waiter-url");
    if (o.waiters > 1000000) die("--waiters: at most 1000000");
    parse_url(o.waiter_url);  // dies on a bad one
  }
  if (!o.welcome.empty() && o.proto != Proto::Plain) die("--welcome: the plain protocol only");
  if (o.procs > o.conns && !serving) o.procs = o.conns;
  return o;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  // As root the hard limit can go up to fs.nr_open; otherwise the soft one to the hard one.
  rlim_t want = 1 << 20;
  if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
    unsigned long v = 0;
    if (std::fscanf(f, "%lu", &v) == 1 && v > 0) want = std::min<rlim_t>(v, 1 << 20);
    std::fclose(f);
  }
  rlimit up{want, want};
  if (rl.rlim_max < want && setrlimit(RLIMIT_NOFILE, &up) == 0) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

rlim_t fd_limit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

// ------------------------------------------------------------ /proc reads --

// utime + stime of the whole process (all threads), seconds; -1 if gone.
// sys, if given, gets the stime part (the kernel's share).
double proc_cpu_seconds(pid_t pid, double* sys = nullptr) {
  if (pid <= 0) return -1;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char buf[2048];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  if (!p) return -1;
  unsigned long long utime = 0, stime = 0;
  // Fields after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
  const auto tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (sys != nullptr) *sys = static_cast<double>(stime) / tick;
  return static_cast<double>(utime + stime) / tick;
}

// A "Vm...:" line of /proc/PID/status in KiB (VmRSS, VmHWM); -1 if gone.
long proc_status_kib(pid_t pid, const char* field = "VmRSS:") {
  if (pid <= 0) return -1;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  const std::size_t len = std::strlen(field);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, field, len) == 0) {
      kib = std::strtol(line + len, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kib;
}

long proc_rss_kib(pid_t pid) { return proc_status_kib(pid, "VmRSS:"); }

// CPU time of every thread in nanoseconds (/proc/PID/task/*/schedstat, the
// first field: time spent on a CPU), for windows too short for the clock
// ticks of /proc/PID/stat; -1 if unreadable.
double proc_cpu_seconds_ns(pid_t pid) {
  if (pid <= 0) return -1;
  char path[96];
  std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* d = opendir(path);
  if (!d) return -1;
  unsigned long long total = 0;
  bool any = false;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::snprintf(path, sizeof path, "/proc/%d/task/%.20s/schedstat", static_cast<int>(pid), e->d_name);
    if (FILE* f = std::fopen(path, "r")) {
      unsigned long long ns = 0;
      if (std::fscanf(f, "%llu", &ns) == 1) {
        total += ns;
        any = true;
      }
      std::fclose(f);
    }
  }
  closedir(d);
  return any ? static_cast<double>(total) / 1e9 : -1;
}

// Resets the process's peak RSS (VmHWM) to its current RSS: "5" written to
// /proc/PID/clear_refs (Linux >= 4.0; needs the rights to ptrace it, i.e.
// our own server). False if refused.
bool proc_reset_peak_rss(pid_t pid) {
  if (pid <= 0) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/clear_refs", static_cast<int>(pid));
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

double own_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ----------------------------------------------------------------- result --

// What one generator process measured; plain data, sent whole through a pipe.
struct Result {
  std::uint64_t messages = 0;  // in the window: replies, deliveries, completed cycles
  std::uint64_t sent = 0;      // in the window: requests or publishes sent, cycles started
  std::uint64_t lost = 0;      // latency: requests of the window never answered
  std::uint64_t conns_ready = 0;
  std::uint64_t connect_fail = 0;
  std::uint64_t handshake_fail = 0;
  std::uint64_t peer_closed = 0;  // closed by the server outside a close we asked for
  std::uint64_t error_replies = 0;
  std::uint64_t cycle_fail = 0;
  std::uint64_t stray = 0;  // frames that matched nothing expected
  double window_s = 0;
  double cpu_s = 0;          // generator CPU seconds in the window, all processes
  double cpu_max_frac = 0;   // the busiest generator process, share of one core
  Nanos first_start = 0;     // first connect started
  Nanos last_ready = 0;      // last connection set up
  double server_cpu_s = -1;  // in the window
  double server_sys_s = -1;  // of which in the kernel
  double backend_cpu_s = -1; // --backend-pid, in the window
  double backend_sys_s = -1;
  Nanos win_start = 0;       // the measured window, CLOCK_MONOTONIC
  Nanos win_end = 0;
  // latency --waiters
  std::uint64_t waiters_ready = 0;
  std::uint64_t waiter_sent = 0;           // messages the waiters sent, all
  std::uint64_t waiter_replies = 0;        // their answers ("done"), all
  std::uint64_t waiter_replies_window = 0; // ... of which in the window
  std::uint64_t waiter_errors = 0;         // answers starting with "error"
  std::uint64_t waiters_lost = 0;          // waiter connections lost after set-up
  long server_rss_before = -1;
  long server_rss_after = -1;
  Histogram lat;    // request -> reply, publish -> receive (recovery: reconnect -> last missed message)
  Histogram setup;  // connect -> ready (idle: per connection; churn: per cycle; recovery: -> subscribe.ok)
  // recovery, the measured storm (messages: missed messages received in it)
  std::uint64_t rec_clients = 0;        // clients that reconnected in the storm
  std::uint64_t rec_complete = 0;       // recovered:true, then exactly --missed, in order, nothing after
  std::uint64_t rec_recovered = 0;      // subscribe.ok with "recovered":true
  std::uint64_t rec_not_recovered = 0;  // subscribe.ok with "recovered":false (or none)
  std::uint64_t rec_out_of_order = 0;   // a missed message with the wrong seq or payload
  std::uint64_t rec_extra = 0;          // broadcasts after the last missed one (before a heartbeat round trip)
  std::uint64_t rec_missing = 0;        // missed messages never received
  double rec_storm_s = -1;              // first reconnect -> every client has all it missed
  double server_cpu_ns_s = -1;          // server CPU in the storm from schedstat (ns resolution)
  double rec_subscribed_s = -1;         // first reconnect -> the last subscribe.ok
  long server_rss_storm_before = -1;    // KiB, just before the storm
  long server_rss_peak_sampled = -1;    // KiB, highest VmRSS sampled during the storm (every ~1 ms)
  long server_hwm_kib = -1;             // KiB, VmHWM after the storm
  bool server_hwm_reset = false;        // VmHWM was reset just before the storm (so it is the storm's peak)

  void merge(const Result& o) {
    messages += o.messages;
    sent += o.sent;
    lost += o.lost;
    conns_ready += o.conns_ready;
    connect_fail += o.connect_fail;
    handshake_fail += o.handshake_fail;
    peer_closed += o.peer_closed;
    error_replies += o.error_replies;
    cycle_fail += o.cycle_fail;
    stray += o.stray;
    window_s = std::max(window_s, o.window_s);
    cpu_s += o.cpu_s;
    cpu_max_frac = std::max(cpu_max_frac, o.cpu_max_frac);
    if (o.first_start && (!first_start || o.first_start < first_start)) first_start = o.first_start;
    last_ready = std::max(last_ready, o.last_ready);
    if (o.server_cpu_s >= 0) server_cpu_s = o.server_cpu_s;
    if (o.server_sys_s >= 0) server_sys_s = o.server_sys_s;
    if (o.server_rss_before >= 0) server_rss_before = o.server_rss_before;
    if (o.server_rss_after >= 0) server_rss_after = o.server_rss_after;
    if (o.backend_cpu_s >= 0) backend_cpu_s = o.backend_cpu_s;
    if (o.backend_sys_s >= 0) backend_sys_s = o.backend_sys_s;
    if (o.win_start && (!win_start || o.win_start < win_start)) win_start = o.win_start;
    win_end = std::max(win_end, o.win_end);
    waiters_ready += o.waiters_ready;
    waiter_sent += o.waiter_sent;
    waiter_replies += o.waiter_replies;
    waiter_replies_window += o.waiter_replies_window;
    waiter_errors += o.waiter_errors;
    waiters_lost += o.waiters_lost;
    lat.merge(o.lat);
    setup.merge(o.setup);
    rec_clients += o.rec_clients;
    rec_complete += o.rec_complete;
    rec_recovered += o.rec_recovered;
    rec_not_recovered += o.rec_not_recovered;
    rec_out_of_order += o.rec_out_of_order;
    rec_extra += o.rec_extra;
    rec_missing += o.rec_missing;
    rec_storm_s = std::max(rec_storm_s, o.rec_storm_s);
    rec_subscribed_s = std::max(rec_subscribed_s, o.rec_subscribed_s);
  }
};

// Shared by the generator processes (anonymous shared mapping made before fork).
struct Shared {
  std::atomic<std::uint64_t> delivered;      // fanout: deliveries so far, every process
  std::atomic<std::uint64_t> subscribers;    // fanout: subscribers set up, every process
  std::atomic<int> ready_procs;
  std::atomic<Nanos> t0;                     // run start, set when the last process is ready
};

// ------------------------------------------------------------- the worker --

enum class St { Connecting, Handshake, Setup, Ready, Closing, Dead };

// Send times waiting for their reply, oldest first (replies come in order).
class TimeRing {
 public:
  bool empty() const { return head_ == tail_; }
  std::size_t size() const { return tail_ - head_; }
  void push(Nanos t) {
    if (tail_ - head_ == buf_.size()) grow();
    buf_[tail_++ & (buf_.size() - 1)] = t;
  }
  Nanos pop() { return buf_[head_++ & (buf_.size() - 1)]; }

 private:
  void grow() {
    std::vector<Nanos> n(buf_.empty() ? 4 : buf_.size() * 2);
    for (std::size_t i = head_; i < tail_; ++i) n[i - head_] = buf_[i & (buf_.size() - 1)];
    tail_ -= head_;
    head_ = 0;
    buf_.swap(n);
  }
  std::vector<Nanos> buf_;
  std::size_t head_ = 0, tail_ = 0;
};

struct Conn {
  int fd = -1;
  std::uint64_t serial = 0;  // picks the source address
  St st = St::Connecting;
  bool publisher = false;
  bool subscribe = false;
  bool want_out = false;     // EPOLLOUT armed
  bool got_auth = false;
  bool in_window = false;    // churn: this cycle was scheduled inside the window
  bool waiter = false;       // latency --waiters: plain, one message in flight, not a bystander
  std::string in;            // bytes of an incomplete frame (or handshake) left from the last read
  std::string out;           // bytes the socket did not take yet
  std::size_t out_off = 0;
  TimeRing pending;
  Nanos start = 0;           // connect started (churn: scheduled start)
  Nanos close_deadline = 0;
  const Url* url = nullptr;
  int client = -1;           // recovery: the client (RecClient) this connection is
  std::string setup_frames;  // sent after the handshake instead of auth (+ subscribe)
};

// recovery: one client across its connections (first subscribe, then storms).
struct RecClient {
  Conn* conn = nullptr;        // the live connection, if any
  std::uint64_t last_seq = 0;  // the last seq this client saw (subscribe.ok, then broadcasts)
  std::uint64_t next_idx = 0;  // storm: the publish index expected next (the payload's digits)
  int got = 0;                 // storm: missed messages received
  bool ok = true;              // no failure so far (set-up, storms)
  bool done = false;           // storm: has all it missed
  bool synced = false;         // storm: heartbeat reply received after them
  bool subscribed = false;     // storm: subscribe.ok received
  bool recovered = false;      // storm: subscribe.ok said recovered:true
  Nanos start = 0;             // storm: reconnect started
};

class Worker {
 public:
  Worker(const Options& o, int index, int first, int count, Shared* sh)
      : o_(o), index_(index), first_(first), count_(count), sh_(sh) {
    url_ = parse_url(o.url);
    pub_url_ = parse_url(o.pub_url);
    build_frames();
  }

  Result run();

 private:
  void build_frames();
  std::string handshake_request(const Url& u) const;
  Conn* open_conn(const Url& u, bool publisher, bool subscribe, Nanos start);
  void arm(Conn* c, bool out);
  void send_bytes(Conn* c, const char* p, std::size_t n);
  void on_writable(Conn* c);
  void on_readable(Conn* c);
  bool parse_handshake(Conn* c, const char*& p, const char* end);
  void on_frame(Conn* c, std::uint8_t opcode, const char* p, std::size_t n);
  void on_message(Conn* c, const char* p, std::size_t n);
  void on_waiter_message(Conn* c, const char* p, std::size_t n);
  void reap();
  void on_ready(Conn* c);
  void fail(Conn* c, std::uint64_t Result::*counter);
  void kill(Conn* c);
  void publish();
  void churn_tick(Nanos now);
  void latency_tick(Nanos now);
  // recovery
  Result run_recovery();
  void on_recovery_message(Conn* c, const char* p, std::size_t n);
  void open_client(int i, bool storm, Nanos start);
  template <class Done>
  bool loop_until(Done done, double timeout_s, bool sample_rss);
  void poll_once(Nanos wait);
  bool measuring(Nanos t) const { return t >= win_start_ && t < win_end_; }

  const Options& o_;
  int index_;
  int first_;
  int count_;
  Shared* sh_;
  Url url_, pub_url_;
  int ep_ = -1;
  std::string f_echo_, f_auth_, f_auth_sub_, f_close_, f_wait_, pub_template_;
  std::size_t pub_ts_at_ = 0;  // offset of the 19 timestamp digits in pub_template_
  std::string hs_main_, hs_pub_, hs_wait_, expected_accept_;
  Url wait_url_;
  std::vector<Conn*> conns_;
  std::vector<Conn*> waiters_;  // latency --waiters (not in conns_: no heartbeat goes to them)
  int waiters_to_start_ = 0;
  std::vector<Conn*> graveyard_;
  Conn* publisher_ = nullptr;
  std::uint64_t serial_ = 0;
  int settling_ = 0;   // connections still connecting or setting up
  int to_start_ = 0;   // idle/echo/...: connections not opened yet
  Result r_;
  std::vector<char> scratch_ = std::vector<char>(256 * 1024);
  // run state
  bool running_ = false;   // sending allowed (warm-up + window)
  Nanos t0_ = 0, win_start_ = 0, win_end_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t delivered_local_ = 0;
  std::uint64_t delivered_flushed_ = 0;  // part of delivered_local_ already added to sh_->delivered
  std::uint64_t subscribers_total_ = 0;
  double rate_ = 0;        // this process's share
  std::uint64_t scheduled_ = 0;
  int churn_active_ = 0;
  Nanos pub_next_ = 0;      // fanout --rate: when the next publish is due
  Nanos next_pub_due_ = 0;  // fanout --rate: the next publish, if only the rate holds it back
  std::vector<epoll_event> events_ = std::vector<epoll_event>(1024);
  // recovery
  std::vector<RecClient> rec_;
  std::vector<int> to_open_;  // clients whose connection is still to be opened
  bool to_open_storm_ = false;
  std::string epoch_;
  std::uint64_t pub_index_ = 0;  // payload digits of the next publish
  std::uint64_t acks_ = 0;       // chat.ok received
  std::uint64_t top_seq_ = 0;    // highest seq in a chat.ok
  bool storm_ = false;           // a storm is on: broadcasts are missed messages
  bool storm_measured_ = false;
  int rec_done_ = 0, rec_synced_ = 0, rec_subscribed_ = 0;
  Nanos storm_start_ = 0, storm_last_done_ = 0, storm_last_sub_ = 0;
  long rss_peak_ = -1;
  Nanos rss_next_ = 0;
};

void Worker::build_frames() {
  std::string echo_payload = "{\"type\":\"heartbeat\",\"id\":1000000001}";  // 36 bytes
  if (o_.proto == Proto::Plain && o_.size != 36) {
    echo_payload = "{\"type\":\"echo\",\"pad\":\"\"}";
    if (o_.size > static_cast<int>(echo_payload.size()))
      echo_payload.insert(echo_payload.size() - 2, static_cast<std::size_t>(o_.size) - echo_payload.size(), 'x');
    else
      echo_payload.resize(static_cast<std::size_t>(o_.size), ' ');
  }
  f_echo_ = ws::client_frame(ws::kText, echo_payload);
  f_auth_ = ws::client_frame(ws::kText, "{\"type\":\"auth\",\"id\":1,\"token\":\"" + o_.token + "\"}");
  f_auth_sub_ = f_auth_ + ws::client_frame(ws::kText, "{\"type\":\"subscribe\",\"id\":2,\"channel\":\"" + o_.channel + "\"}");
  f_close_ = ws::client_frame(ws::kClose, ws::close_payload(1000));
  pub_template_ = "{\"type\":\"chat\",\"channel\":\"" + o_.channel + "\",\"data\":\"@@0000000000000000000\"}";
  pub_ts_at_ = pub_template_.find("@@") + 2;
  hs_main_ = handshake_request(url_);
  hs_pub_ = handshake_request(pub_url_);
  if (o_.waiters > 0) {
    wait_url_ = parse_url(o_.waiter_url);
    hs_wait_ = handshake_request(wait_url_);
    if (!o_.waiter_message.empty()) f_wait_ = ws::client_frame(ws::kText, o_.waiter_message);
  }
  expected_accept_ = ws::accept_key(ws::kClientKey);
}

std::string Worker::handshake_request(const Url& u) const {
  std::string s = "GET " + u.path + " HTTP/1.1\r\nHost: " + u.hostport +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + ws::kClientKey +
                  "\r\nSec-WebSocket-Version: 13\r\n";
  if (!o_.subprotocol.empty()) s += "Sec-WebSocket-Protocol: " + o_.subprotocol + "\r\n";
  return s + "\r\n";
}

Conn* Worker::open_conn(const Url& u, bool publisher, bool subscribe, Nanos start) {
  auto* c = new Conn;
  c->publisher = publisher;
  c->subscribe = subscribe;
  c->url = &u;
  c->start = start;
  c->serial = static_cast<std::uint64_t>(first_) + serial_++;
  if (!r_.first_start) r_.first_start = now_ns();
  conns_.push_back(c);
  settling_++;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail(c, &Result::connect_fail);
    return c;
  }
  const int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Spread over 127.0.0.x so that neither ephemeral ports nor TIME_WAIT run
  // out; the port is chosen at connect time, per destination.
  setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000001u + static_cast<std::uint32_t>(c->serial % static_cast<std::uint64_t>(o_.source_addrs)));
  if (bind(c->fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      (connect(c->fd, reinterpret_cast<const sockaddr*>(&u.addr), sizeof u.addr) != 0 && errno != EINPROGRESS)) {
    fail(c, &Result::connect_fail);
    return c;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = c;
  epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev);
  c->want_out = true;
  return c;
}

void Worker::arm(Conn* c, bool out) {
  if (c->want_out == out || c->fd < 0) return;
  c->want_out = out;
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
  ev.data.ptr = c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Worker::send_bytes(Conn* c, const char* p, std::size_t n) {
  if (c->fd < 0 || c->st == St::Dead) return;
  if (c->out.size() > c->out_off) {  // keep the order: queue behind what is waiting
    c->out.append(p, n);
    return;
  }
  const ssize_t w = ::send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w == static_cast<ssize_t>(n)) return;
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    fail(c, &Result::peer_closed);
    return;
  }
  const std::size_t done = w > 0 ? static_cast<std::size_t>(w) : 0;
  c->out.assign(p + done, n - done);
  c->out_off = 0;
  arm(c, true);
}

void Worker::on_writable(Conn* c) {
  if (c->st == St::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      fail(c, &Result::connect_fail);
      return;
    }
    c->st = St::Handshake;
    c->want_out = true;  // forces arm() to rewrite the mask
    arm(c, false);
    const std::string& hs = c->url == &pub_url_ ? hs_pub_ : c->url == &wait_url_ ? hs_wait_ : hs_main_;
    send_bytes(c, hs.data(), hs.size());
    return;
  }
  while (c->out_off < c->out.size()) {
    const ssize_t w = ::send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      fail(c, &Result::peer_closed);
      return;
    }
    c->out_off += static_cast<std::size_t>(w);
  }
  c->out.clear();
  c->out_off = 0;
  arm(c, false);
}

bool Worker::parse_handshake(Conn* c, const char*& p, const char* end) {
  const std::string_view all(p, static_cast<std::size_t>(end - p));
  const auto eoh = all.find("\r\n\r\n");
  if (eoh == std::string_view::npos) {
    if (all.size() > 16384) fail(c, &Result::handshake_fail);
    return false;
  }
  std::string head(all.substr(0, eoh));
  p += eoh + 4;
  for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const auto accept = head.find("\r\nsec-websocket-accept:");
  bool ok = head.compare(0, 12, "http/1.1 101") == 0 && accept != std::string::npos;
  if (ok) {
    // The key is base64 (case matters): compare against the original bytes.
    std::size_t v = accept + 23;
    const std::string_view orig(all.data(), eoh);
    while (v < orig.size() && orig[v] == ' ') ++v;
    ok = orig.compare(v, expected_accept_.size(), expected_accept_) == 0;
  }
  if (!ok) {
    fail(c, &Result::handshake_fail);
    return false;
  }
  c->st = St::Setup;
  const bool standard = o_.proto == Proto::Standard && !c->waiter;
  if (standard) {
    const std::string& f = !c->setup_frames.empty() ? c->setup_frames : c->subscribe ? f_auth_sub_ : f_auth_;
    send_bytes(c, f.data(), f.size());  // pipelined: no need to wait for the welcome
  } else if (o_.welcome.empty() || c->waiter) {
    on_ready(c);
  }  // else --welcome: ready with the server's first message (on_message)
  return true;
}

void Worker::on_readable(Conn* c) {
  // One read per event (level-triggered): the rest comes with the next wait.
  std::size_t have = c->in.size();
  if (scratch_.size() < have + 65536) scratch_.resize(have + 65536);
  if (have) std::memcpy(scratch_.data(), c->in.data(), have);
  const ssize_t n = ::read(c->fd, scratch_.data() + have, scratch_.size() - have);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    if (c->st == St::Closing) {
      kill(c);
    } else {
      fail(c, c->st == St::Connecting || c->st == St::Handshake ? &Result::handshake_fail : &Result::peer_closed);
    }
    return;
  }
  if (n < 0) return;
  const char* p = scratch_.data();
  const char* end = p + have + static_cast<std::size_t>(n);
  if (c->st == St::Handshake && !parse_handshake(c, p, end)) {
    if (c->st == St::Handshake) c->in.assign(scratch_.data(), have + static_cast<std::size_t>(n));
    return;
  }
  while (p < end && c->st != St::Dead) {
    ws::FrameHeader h;
    const int rc = ws::parse_header(reinterpret_cast<const std::uint8_t*>(p), static_cast<std::size_t>(end - p), h);
    if (rc < 0) {
      fail(c, &Result::peer_closed);
      return;
    }
    if (rc == 0 || static_cast<std::uint64_t>(end - p) < h.header_len + h.len) break;
    char* payload = const_cast<char*>(p) + h.header_len;
    if (h.masked) {
      for (std::uint64_t i = 0; i < h.len; ++i) payload[i] = static_cast<char>(payload[i] ^ h.mask[i & 3]);
    }
    p += h.header_len + h.len;
    // Data frames: a message ends at its FIN frame (the bench's messages are
    // never fragmented by the servers; a fragmented one counts once).
    if (h.opcode >= ws::kClose || h.fin) on_frame(c, h.opcode, payload, static_cast<std::size_t>(h.len));
  }
  if (c->st == St::Dead) return;
  c->in.assign(p, static_cast<std::size_t>(end - p));
}

void Worker::on_frame(Conn* c, std::uint8_t opcode, const char* p, std::size_t n) {
  switch (opcode) {
    case ws::kClose:
      if (c->st == St::Closing) {
        kill(c);
      } else {
        const std::string f = ws::client_frame(ws::kClose, n >= 2 ? std::string_view(p, 2) : std::string_view());
        send_bytes(c, f.data(), f.size());
        fail(c, &Result::peer_closed);
      }
      return;
    case ws::kPing: {
      const std::string f = ws::client_frame(ws::kPong, std::string_view(p, n));
      send_bytes(c, f.data(), f.size());
      return;
    }
    case ws::kPong:
      return;
    default:
      on_message(c, p, n);
  }
}

bool has_type(const char* p, std::size_t n, std::string_view type) {
  // The relay's encoder writes "type" first: {"type":"auth.ok",...
  const std::string_view s(p, n);
  return s.size() > 10 + type.size() && s.compare(0, 9, "{\"type\":\"") == 0 && s.compare(9, type.size(), type) == 0 &&
         s[9 + type.size()] == '"';
}

void Worker::on_message(Conn* c, const char* p, std::size_t n) {
  if (o_.scenario == Scenario::Recovery) {
    on_recovery_message(c, p, n);
    return;
  }
  if (c->waiter) {
    on_waiter_message(c, p, n);
    return;
  }
  const Nanos now = now_ns();
  const bool standard = o_.proto == Proto::Standard;
  if (c->st == St::Setup && !standard) {  // --welcome
    const std::string_view m(p, n);
    if (m.substr(0, o_.welcome.size()) == o_.welcome) {
      on_ready(c);
    } else {
      r_.error_replies++;
      fail(c, &Result::handshake_fail);
    }
    return;
  }
  if (c->st == St::Setup) {
    if (has_type(p, n, "error")) {
      r_.error_replies++;
      fail(c, &Result::handshake_fail);
    } else if (has_type(p, n, "auth.ok")) {
      c->got_auth = true;
      if (!c->subscribe) on_ready(c);
    } else if (has_type(p, n, "subscribe.ok") && c->got_auth) {
      on_ready(c);
    }
    return;  // welcome
  }
  if (c->st != St::Ready) return;
  switch (o_.scenario) {
    case Scenario::Echo:
    case Scenario::Latency:
    case Scenario::Relay: {
      if (c->pending.empty()) {
        r_.stray++;
        return;
      }
      if (standard && has_type(p, n, "error")) r_.error_replies++;
      const Nanos sent = c->pending.pop();
      const bool in = o_.scenario == Scenario::Echo ? measuring(now) : measuring(sent);
      if (in) {
        r_.messages++;
        r_.lat.record(static_cast<std::uint64_t>(now - sent));
      }
      if (o_.scenario == Scenario::Echo && running_) {
        c->pending.push(now_ns());
        send_bytes(c, f_echo_.data(), f_echo_.size());
        if (measuring(now)) r_.sent++;
      }
      return;
    }
    case Scenario::Fanout: {
      if (c->publisher) return;  // chat.ok
      const void* at = memmem(p, n, "@@", 2);
      if (!at || static_cast<std::size_t>(static_cast<const char*>(at) - p) + 21 > n) {
        if (standard && has_type(p, n, "error")) r_.error_replies++;
        else r_.stray++;
        return;
      }
      Nanos ts = 0;
      const char* d = static_cast<const char*>(at) + 2;
      for (int i = 0; i < 19; ++i) ts = ts * 10 + (d[i] - '0');
      delivered_local_++;
      if (measuring(now)) {
        r_.messages++;
        r_.lat.record(static_cast<std::uint64_t>(std::max<Nanos>(0, now - ts)));
      }
      return;
    }
    default:
      if (standard && has_type(p, n, "error")) r_.error_replies++;
      else r_.stray++;
      return;
  }
}

// A waiter's answer: the server's handler got its backend's answer. Each
// waiter keeps one message in flight while the run lasts.
void Worker::on_waiter_message(Conn* c, const char* p, std::size_t n) {
  if (c->st != St::Ready) return;
  const std::string_view m(p, n);
  if (m.substr(0, 5) == "error") {
    r_.waiter_errors++;
  } else {
    r_.waiter_replies++;
    if (measuring(now_ns())) r_.waiter_replies_window++;
  }
  if (running_ && !f_wait_.empty()) {
    send_bytes(c, f_wait_.data(), f_wait_.size());
    r_.waiter_sent++;
  }
}

void Worker::on_ready(Conn* c) {
  c->st = St::Ready;
  settling_--;
  if (c->waiter) {
    r_.waiters_ready++;
    return;
  }
  const Nanos now = now_ns();
  r_.last_ready = std::max(r_.last_ready, now);
  if (o_.scenario == Scenario::Churn) {
    if (c->in_window) r_.setup.record(static_cast<std::uint64_t>(now - c->start));
    c->st = St::Closing;
    c->close_deadline = now + 5'000'000'000LL;
    send_bytes(c, f_close_.data(), f_close_.size());
    return;
  }
  r_.conns_ready++;
  if (o_.scenario == Scenario::Idle) r_.setup.record(static_cast<std::uint64_t>(now - c->start));
  if (o_.scenario == Scenario::Fanout && !c->publisher) sh_->subscribers.fetch_add(1);
}

// The connection is gone for good; `counter` says why.
void Worker::fail(Conn* c, std::uint64_t Result::*counter) {
  if (c->st == St::Dead) return;
  if (o_.scenario == Scenario::Churn) {
    if (c->in_window) r_.cycle_fail++;
    c->in_window = false;  // so that kill() does not count it as a completed cycle
  } else if (running_ || c->st != St::Ready) {
    r_.*counter += 1;
  }
  if (c->st == St::Connecting || c->st == St::Handshake || c->st == St::Setup) settling_--;
  if (c->waiter && c->st == St::Ready) r_.waiters_lost++;
  if (c->st == St::Ready && (o_.scenario == Scenario::Latency || o_.scenario == Scenario::Relay)) {
    while (!c->pending.empty())
      if (measuring(c->pending.pop())) r_.lost++;
  }
  kill(c);
}

void Worker::kill(Conn* c) {
  if (c->st == St::Dead) return;
  if (o_.scenario == Scenario::Churn) {
    if (c->st == St::Closing && c->in_window) r_.messages++;
    churn_active_--;
  }
  c->st = St::Dead;
  if (o_.scenario == Scenario::Recovery && c == publisher_) publisher_ = nullptr;
  if (c->client >= 0 && rec_[static_cast<std::size_t>(c->client)].conn == c)
    rec_[static_cast<std::size_t>(c->client)].conn = nullptr;
  if (c->fd >= 0) {
    close(c->fd);  // also removes it from the epoll set
    c->fd = -1;
  }
  graveyard_.push_back(c);
}

void Worker::publish() {
  if (!publisher_ || publisher_->st != St::Ready) return;
  const std::uint64_t subs = subscribers_total_;
  if (subs == 0) return;
  const std::uint64_t delivered = o_.procs > 1 ? sh_->delivered.load(std::memory_order_relaxed) : delivered_local_;
  const std::uint64_t limit = static_cast<std::uint64_t>(o_.window) * subs;
  std::string batch;
  next_pub_due_ = 0;
  while (published_ * subs - std::min(delivered, published_ * subs) < limit) {
    if (o_.rate > 0) {
      // Open loop: one publish every 1/rate s. One held back by a full
      // window goes out late; the debt is capped at --window publishes, so
      // that a stall is not made up by a long burst at full speed (the
      // publishes/s reported then falls short of --rate: read it).
      const Nanos period = static_cast<Nanos>(1e9 / o_.rate);
      const Nanos now = now_ns();
      if (pub_next_ == 0) pub_next_ = t0_;
      pub_next_ = std::max(pub_next_, now - period * o_.window);
      if (pub_next_ > now) {
        next_pub_due_ = pub_next_;
        break;
      }
      pub_next_ += period;
    }
    std::string payload = pub_template_;
    Nanos t = now_ns();
    for (int i = 18; i >= 0; --i) {
      payload[pub_ts_at_ + static_cast<std::size_t>(i)] = static_cast<char>('0' + t % 10);
      t /= 10;
    }
    batch += ws::client_frame(ws::kText, payload);
    published_++;
    if (measuring(now_ns())) r_.sent++;
  }
  if (!batch.empty()) send_bytes(publisher_, batch.data(), batch.size());
}

void Worker::latency_tick(Nanos now) {
  // Open loop: send k is due at t0 + k / rate, whatever happened to the others.
  std::string batch;
  Conn* batch_conn = nullptr;
  while (true) {
    const Nanos due = t0_ + static_cast<Nanos>(static_cast<double>(scheduled_) * 1e9 / rate_);
    if (due > now || due >= win_end_) break;
    Conn* c = conns_[scheduled_ % conns_.size()];
    scheduled_++;
    if (c->st != St::Ready) {
      if (measuring(due)) r_.lost++;
      continue;
    }
    c->pending.push(due);
    if (measuring(due)) r_.sent++;
    if (batch_conn && batch_conn != c) {
      send_bytes(batch_conn, batch.data(), batch.size());
      batch.clear();
    }
    batch_conn = c;
    batch += f_echo_;
  }
  if (batch_conn) send_bytes(batch_conn, batch.data(), batch.size());
}

void Worker::churn_tick(Nanos now) {
  if (o_.rate > 0) {
    while (true) {
      const Nanos due = t0_ + static_cast<Nanos>(static_cast<double>(scheduled_) * 1e9 / rate_);
      if (due > now || due >= win_end_) break;
      if (churn_active_ >= o_.connect_concurrency) break;  // starts late; latency counts from `due`
      scheduled_++;
      churn_active_++;
      Conn* c = open_conn(url_, false, o_.proto == Proto::Standard, due);
      c->in_window = measuring(due);
      if (c->in_window) r_.sent++;
    }
  } else {
    while (now < win_end_ && churn_active_ < count_) {
      churn_active_++;
      Conn* c = open_conn(url_, false, o_.proto == Proto::Standard, now);
      c->in_window = measuring(now);
      if (c->in_window) r_.sent++;
    }
  }
}

Result Worker::run() {
  if (o_.scenario == Scenario::Recovery) return run_recovery();
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) die("epoll_create1 failed");
  const Nanos begin = now_ns();
  const double cpu_begin = own_cpu_seconds();
  double server_sys_begin = 0;
  const double server_cpu_begin = index_ == 0 ? proc_cpu_seconds(o_.server_pid, &server_sys_begin) : -1;
  const bool standard = o_.proto == Proto::Standard;
  const bool churn = o_.scenario == Scenario::Churn;
  if (!churn) to_start_ = count_;
  if (index_ == 0) waiters_to_start_ = o_.waiters;  // the first process holds the waiters
  if (o_.scenario == Scenario::Fanout && index_ == 0) publisher_ = open_conn(pub_url_, true, false, begin);
  if (o_.scenario == Scenario::Churn || o_.scenario == Scenario::Latency || o_.scenario == Scenario::Relay)
    rate_ = o_.rate / o_.procs;

  enum class Phase { Setup, Barrier, Run, Drain, Done } phase = Phase::Setup;
  double cpu_start = 0, server_cpu_start = -1, server_sys_start = 0, backend_cpu_start = -1, backend_sys_start = 0;
  bool window_open = false;
  Nanos drain_until = 0;
  std::vector<epoll_event> events(1024);

  while (phase != Phase::Done) {
    // Open connections while fewer than --connect-concurrency are being set up.
    while (to_start_ > 0 && settling_ < o_.connect_concurrency) {
      to_start_--;
      open_conn(url_, false, standard && (o_.scenario == Scenario::Fanout || o_.scenario == Scenario::Idle), now_ns());
    }
    while (to_start_ == 0 && waiters_to_start_ > 0 && settling_ < o_.connect_concurrency) {
      waiters_to_start_--;
      Conn* c = open_conn(wait_url_, false, false, now_ns());
      c->waiter = true;
      conns_.pop_back();  // open_conn put it there
      waiters_.push_back(c);
    }
    Nanos now = now_ns();
    if (phase == Phase::Setup) {
      const bool timed_out = now - begin > static_cast<Nanos>(o_.setup_timeout * 1e9);
      if ((to_start_ == 0 && waiters_to_start_ == 0 && settling_ == 0) || timed_out) {
        if (timed_out) {  // give up on what is not set up by now
          for (Conn* c : conns_)
            if (c->st != St::Ready && c->st != St::Dead) fail(c, &Result::handshake_fail);
          for (Conn* c : waiters_)
            if (c->st != St::Ready && c->st != St::Dead) fail(c, &Result::handshake_fail);
          to_start_ = 0;
          waiters_to_start_ = 0;
        }
        if (sh_->ready_procs.fetch_add(1) + 1 == o_.procs) sh_->t0.store(now_ns());
        phase = Phase::Barrier;
      }
    }
    if (phase == Phase::Barrier && sh_->t0.load() != 0) {
      t0_ = sh_->t0.load();
      win_start_ = t0_ + static_cast<Nanos>(o_.warmup * 1e9);
      win_end_ = win_start_ + static_cast<Nanos>(o_.duration * 1e9);
      subscribers_total_ = sh_->subscribers.load();
      reap();
      phase = Phase::Run;
      running_ = true;
      r_.win_start = win_start_;
      r_.win_end = win_end_;
      if (!f_wait_.empty()) {  // every waiter's first message: the warm-up lets them all get in flight
        for (Conn* c : waiters_) {
          if (c->st != St::Ready) continue;
          send_bytes(c, f_wait_.data(), f_wait_.size());
          r_.waiter_sent++;
        }
      }
      if (o_.scenario == Scenario::Echo) {
        for (Conn* c : conns_) {
          if (c->st != St::Ready) continue;
          std::string batch;
          for (int i = 0; i < o_.inflight; ++i) {
            c->pending.push(now_ns());
            batch += f_echo_;
          }
          send_bytes(c, batch.data(), batch.size());
        }
      }
      if (o_.scenario == Scenario::Latency || o_.scenario == Scenario::Relay) {
        std::erase_if(conns_, [this](Conn* c) { return c == publisher_; });
        if (conns_.empty()) phase = Phase::Done;
      }
    }
    now = now_ns();
    if (phase == Phase::Run) {
      if (!window_open && now >= win_start_) {
        window_open = true;
        cpu_start = own_cpu_seconds();
        if (index_ == 0) server_cpu_start = proc_cpu_seconds(o_.server_pid, &server_sys_start);
        if (index_ == 0) backend_cpu_start = proc_cpu_seconds(o_.backend_pid, &backend_sys_start);
        if (index_ == 0 && o_.scenario == Scenario::Idle) r_.server_rss_after = proc_rss_kib(o_.server_pid);
      }
      if (now >= win_end_) {
        if (!window_open) {  // a zero-length window
          window_open = true;
          cpu_start = own_cpu_seconds();
          if (index_ == 0) server_cpu_start = proc_cpu_seconds(o_.server_pid, &server_sys_start);
          if (index_ == 0) backend_cpu_start = proc_cpu_seconds(o_.backend_pid, &backend_sys_start);
          if (index_ == 0 && o_.scenario == Scenario::Idle) r_.server_rss_after = proc_rss_kib(o_.server_pid);
        }
        const double cpu = own_cpu_seconds() - cpu_start;
        r_.window_s = static_cast<double>(now - win_start_) / 1e9;
        r_.cpu_s = cpu;
        r_.cpu_max_frac = r_.window_s > 0 ? cpu / r_.window_s : 0;
        if (o_.scenario == Scenario::Idle) {  // idle: the work was setting the connections up
          r_.cpu_s = own_cpu_seconds() - cpu_begin;
          const double busy = static_cast<double>(std::max<Nanos>(r_.last_ready - begin, 1)) / 1e9;
          r_.cpu_max_frac = std::min(r_.cpu_s / busy, 1.0);
        }
        if (index_ == 0 && o_.scenario == Scenario::Idle) {  // the set-up
          server_cpu_start = server_cpu_begin;
          server_sys_start = server_sys_begin;
        }
        if (index_ == 0 && server_cpu_start >= 0) {
          double sys_end = 0;
          const double end = proc_cpu_seconds(o_.server_pid, &sys_end);
          if (end >= 0) {
            r_.server_cpu_s = end - server_cpu_start;
            r_.server_sys_s = sys_end - server_sys_start;
          }
        }
        if (index_ == 0 && backend_cpu_start >= 0) {
          double sys_end = 0;
          const double end = proc_cpu_seconds(o_.backend_pid, &sys_end);
          if (end >= 0) {
            r_.backend_cpu_s = end - backend_cpu_start;
            r_.backend_sys_s = sys_end - backend_sys_start;
          }
        }
        running_ = false;
        phase = Phase::Drain;
        drain_until = now + static_cast<Nanos>(o_.grace * 1e9);
      } else {
        if (o_.scenario == Scenario::Fanout) {
          if (o_.procs > 1) {  // others' deliveries were counted in shared memory
            sh_->delivered.fetch_add(delivered_local_ - delivered_flushed_);
            delivered_flushed_ = delivered_local_;
          }
          publish();
        }
        if (o_.scenario == Scenario::Latency || o_.scenario == Scenario::Relay) latency_tick(now);
        if (churn) churn_tick(now);
      }
    }
    if (phase == Phase::Drain) {
      bool waiting = false;
      if (o_.scenario == Scenario::Latency || o_.scenario == Scenario::Relay) {
        for (Conn* c : conns_)
          if (c->st == St::Ready && !c->pending.empty()) waiting = true;
      }
      if (churn) waiting = churn_active_ > 0;
      if (!waiting || now >= drain_until) phase = Phase::Done;
    }
    if (churn) {  // close handshakes that never finish
      for (Conn* c : conns_)
        if (c->st == St::Closing && now > c->close_deadline) fail(c, &Result::cycle_fail);
    }
    if (phase == Phase::Done) break;

    // Sleep until the next thing due, with nanosecond precision (epoll_pwait2).
    Nanos wait = 50'000'000;
    if (phase == Phase::Setup || phase == Phase::Barrier) wait = 1'000'000;
    if (phase == Phase::Run) {
      wait = std::min(wait, (window_open ? win_end_ : win_start_) - now);
      if ((o_.scenario == Scenario::Latency || o_.scenario == Scenario::Relay || (churn && o_.rate > 0)) && rate_ > 0) {
        const Nanos due = t0_ + static_cast<Nanos>(static_cast<double>(scheduled_) * 1e9 / rate_);
        wait = std::min(wait, due - now);
      }
      if (o_.scenario == Scenario::Fanout && o_.procs > 1) wait = std::min<Nanos>(wait, 200'000);
      if (o_.scenario == Scenario::Fanout && next_pub_due_ > 0) wait = std::min(wait, next_pub_due_ - now);
    }
    if (phase == Phase::Drain) wait = std::min<Nanos>(wait, 10'000'000);
    wait = std::max<Nanos>(wait, 0);
    timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
    const int n = epoll_pwait2(ep_, events.data(), static_cast<int>(events.size()), &ts, nullptr);
    if (n < 0 && errno != EINTR) die(std::string("epoll_pwait2: ") + std::strerror(errno));
    for (int i = 0; i < n; ++i) {
      Conn* c = static_cast<Conn*>(events[i].data.ptr);
      if (c->st == St::Dead) continue;
      const std::uint32_t e = events[i].events;
      if (e & (EPOLLOUT | EPOLLERR)) on_writable(c);
      if (c->st != St::Dead && (e & (EPOLLIN | EPOLLHUP))) on_readable(c);
    }
    if (!graveyard_.empty() && (churn || phase == Phase::Run)) reap();
  }

  for (Conn* c : conns_) {
    // Requests of the window still unanswered after the grace period.
    const bool open_loop = o_.scenario == Scenario::Latency || o_.scenario == Scenario::Relay;
    while (open_loop && c->st == St::Ready && !c->pending.empty())
      if (measuring(c->pending.pop())) r_.lost++;
    if (c->fd >= 0) close(c->fd);
    if (c->st != St::Dead) delete c;
  }
  for (Conn* c : waiters_) {
    if (c->fd >= 0) close(c->fd);
    if (c->st != St::Dead) delete c;
  }
  for (Conn* c : graveyard_) delete c;
  conns_.clear();
  waiters_.clear();
  graveyard_.clear();
  close(ep_);
  return r_;
}

// Drops the dead connections from conns_ and waiters_, then frees them.
void Worker::reap() {
  std::erase_if(conns_, [](Conn* c) { return c->st == St::Dead; });
  std::erase_if(waiters_, [](Conn* c) { return c->st == St::Dead; });
  for (Conn* c : graveyard_) delete c;
  graveyard_.clear();
}

// --------------------------------------------------------------- recovery --

// The unsigned integer right after `key` in p[0..n) (its last occurrence if
// `last`); false if there is none.
bool find_uint(const char* p, std::size_t n, std::string_view key, std::uint64_t& out, bool last = false) {
  const std::string_view s(p, n);
  const auto at = last ? s.rfind(key) : s.find(key);
  if (at == std::string_view::npos) return false;
  std::size_t i = at + key.size();
  if (i >= n || s[i] < '0' || s[i] > '9') return false;
  std::uint64_t v = 0;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; ++i) v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
  out = v;
  return true;
}

// The string right after `key` (which ends with the opening quote), up to the next quote.
bool find_str(const char* p, std::size_t n, std::string_view key, std::string& out) {
  const std::string_view s(p, n);
  const auto at = s.find(key);
  if (at == std::string_view::npos) return false;
  const auto end = s.find('"', at + key.size());
  if (end == std::string_view::npos) return false;
  out.assign(s.substr(at + key.size(), end - at - key.size()));
  return true;
}

void Worker::on_recovery_message(Conn* c, const char* p, std::size_t n) {
  const Nanos now = now_ns();
  RecClient* k = c->client >= 0 ? &rec_[static_cast<std::size_t>(c->client)] : nullptr;
  if (has_type(p, n, "error")) {
    r_.error_replies++;
    if (k) k->ok = false;
    if (c->st == St::Setup) fail(c, &Result::handshake_fail);
    return;
  }
  if (c->publisher) {
    if (c->st == St::Setup) {
      if (has_type(p, n, "auth.ok")) on_ready(c);
      return;  // the welcome
    }
    if (has_type(p, n, "chat.ok")) {
      acks_++;
      std::uint64_t seq = 0;
      if (find_uint(p, n, "\"seq\":", seq)) top_seq_ = std::max(top_seq_, seq);
    } else {
      r_.stray++;
    }
    return;
  }
  if (!k) return;
  if (c->st == St::Setup) {
    if (has_type(p, n, "auth.ok")) {
      c->got_auth = true;
      return;
    }
    if (!has_type(p, n, "subscribe.ok") || !c->got_auth) return;  // the welcome
    std::string epoch;
    std::uint64_t seq = 0;
    if (!find_str(p, n, "\"epoch\":\"", epoch) || !find_uint(p, n, "\"seq\":", seq))
      die("recovery: subscribe.ok without epoch and seq: channel '" + o_.channel +
          "' keeps no history (the server needs a channel_options rule with history_size for it): " +
          std::string(p, n));
    if (epoch_.empty()) epoch_ = epoch;
    if (epoch != epoch_) k->ok = false;  // a new epoch: what was missed is gone
    if (storm_) {
      k->subscribed = true;
      rec_subscribed_++;
      storm_last_sub_ = now;
      k->recovered = memmem(p, n, "\"recovered\":true", 16) != nullptr;
      if (!k->recovered) k->ok = false;
      if (storm_measured_) {
        r_.setup.record(static_cast<std::uint64_t>(now - k->start));
        (k->recovered ? r_.rec_recovered : r_.rec_not_recovered)++;
      }
    } else {
      k->last_seq = seq;
    }
    on_ready(c);
    return;
  }
  if (c->st != St::Ready) return;
  if (has_type(p, n, "chat")) {
    // {"type":"chat","channel":..,"from":..,"data":"@@<19 digits>","ts":..,"seq":N}
    std::uint64_t seq = 0, idx = 0;
    const bool parsed = find_uint(p, n, ",\"seq\":", seq, true) && find_uint(p, n, "\"@@", idx);
    if (!parsed || !storm_ || k->done) {  // nothing else is published: a duplicate or a stray
      k->ok = false;
      if (storm_measured_) r_.rec_extra++;
      if (parsed) k->last_seq = seq;
      return;
    }
    if (seq != k->last_seq + 1 || idx != k->next_idx) {
      k->ok = false;
      if (storm_measured_) r_.rec_out_of_order++;
    }
    k->last_seq = seq;
    k->next_idx = idx + 1;
    k->got++;
    if (storm_measured_) r_.messages++;
    if (k->got == o_.missed) {
      k->done = true;
      rec_done_++;
      storm_last_done_ = now;
      if (storm_measured_) r_.lat.record(static_cast<std::uint64_t>(now - k->start));
    }
    return;
  }
  if (has_type(p, n, "heartbeat")) {
    if (!k->synced) rec_synced_++;
    k->synced = true;
    return;
  }
  r_.stray++;
}

void Worker::open_client(int i, bool storm, Nanos start) {
  RecClient& k = rec_[static_cast<std::size_t>(i)];
  Conn* c = open_conn(url_, false, true, start);
  if (c->st == St::Dead) {
    k.ok = false;
    return;
  }
  c->client = i;
  k.conn = c;
  k.start = start;
  if (storm) {
    c->setup_frames = f_auth_ + ws::client_frame(ws::kText, "{\"type\":\"subscribe\",\"id\":2,\"channel\":\"" + o_.channel +
                                                               "\",\"since\":{\"seq\":" + std::to_string(k.last_seq) +
                                                               ",\"epoch\":\"" + epoch_ + "\"}}");
  }
}

void Worker::poll_once(Nanos wait) {
  wait = std::max<Nanos>(wait, 0);
  timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
  const int n = epoll_pwait2(ep_, events_.data(), static_cast<int>(events_.size()), &ts, nullptr);
  if (n < 0 && errno != EINTR) die(std::string("epoll_pwait2: ") + std::strerror(errno));
  for (int i = 0; i < n; ++i) {
    Conn* c = static_cast<Conn*>(events_[i].data.ptr);
    if (c->st == St::Dead) continue;
    const std::uint32_t e = events_[i].events;
    if (e & (EPOLLOUT | EPOLLERR)) on_writable(c);
    if (c->st != St::Dead && (e & (EPOLLIN | EPOLLHUP))) on_readable(c);
  }
  if (!graveyard_.empty()) {
    std::erase_if(conns_, [](Conn* c) { return c->st == St::Dead; });
    for (Conn* c : graveyard_) delete c;
    graveyard_.clear();
  }
}

// Runs the loop (opening the connections in to_open_, at most
// --connect-concurrency in their set-up at once) until done() or the timeout.
template <class Done>
bool Worker::loop_until(Done done, double timeout_s, bool sample_rss) {
  const Nanos deadline = now_ns() + static_cast<Nanos>(timeout_s * 1e9);
  while (true) {
    while (!to_open_.empty() && settling_ < o_.connect_concurrency) {
      const int i = to_open_.back();
      to_open_.pop_back();
      open_client(i, to_open_storm_, now_ns());
    }
    if (done()) return true;
    const Nanos now = now_ns();
    if (now > deadline) return false;
    Nanos wait = std::min<Nanos>(deadline - now, 50'000'000);
    if (sample_rss) {
      if (now >= rss_next_) {
        rss_peak_ = std::max(rss_peak_, proc_rss_kib(o_.server_pid));
        rss_next_ = now + 1'000'000;
      }
      wait = std::min(wait, rss_next_ - now);
    }
    if (!to_open_.empty()) wait = std::min<Nanos>(wait, 1'000'000);
    poll_once(wait);
  }
}

// recovery: set up --conns subscribers (auth + subscribe: each notes the
// epoch and seq of its subscribe.ok) and a publisher; then per storm: every
// subscriber closes, --missed messages are published (all acknowledged),
// every subscriber reconnects at once and subscribes with since = the last
// seq it saw; the storm is over when each has received its --missed, checked
// one by one (seq and the payload's index consecutive). A heartbeat round
// trip afterwards catches anything sent after the last one.
Result Worker::run_recovery() {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) die("epoll_create1 failed");
  const pid_t pid = o_.server_pid;
  const std::size_t n = static_cast<std::size_t>(count_);
  rec_.assign(n, RecClient{});
  publisher_ = open_conn(pub_url_, true, false, now_ns());
  to_open_storm_ = false;
  for (int i = count_ - 1; i >= 0; --i) to_open_.push_back(i);
  if (!loop_until([&] { return to_open_.empty() && settling_ == 0; }, o_.setup_timeout, false)) {
    for (Conn* c : conns_)
      if (c->st != St::Ready && c->st != St::Dead) fail(c, &Result::handshake_fail);
    to_open_.clear();
  }
  if (!publisher_ || publisher_->st != St::Ready) die("recovery: the publisher could not sign in");
  std::uint64_t set_up = 0;
  for (auto& k : rec_) {
    if (!k.conn || k.conn->st != St::Ready) k.ok = false;
    if (k.ok) set_up++;
  }
  running_ = true;  // from now on a lost connection counts (fail())

  const int storms = o_.warmup > 0 ? 2 : 1;  // the first one warms up, unmeasured
  for (int s = 0; s < storms; ++s) {
    const bool measured = s == storms - 1;
    // 1. Every subscriber leaves (a close handshake: the server has let go
    // of the session when its close frame arrives).
    for (auto& k : rec_) {
      if (!k.conn) continue;
      Conn* c = k.conn;
      if (c->st != St::Ready) {
        fail(c, &Result::handshake_fail);
        continue;
      }
      c->st = St::Closing;
      send_bytes(c, f_close_.data(), f_close_.size());
    }
    auto all_gone = [&] {
      for (const auto& k : rec_)
        if (k.conn) return false;
      return true;
    };
    if (!loop_until(all_gone, 10, false)) {
      for (auto& k : rec_)
        if (k.conn) {
          k.ok = false;
          fail(k.conn, &Result::peer_closed);
        }
    }
    // 2. --missed messages published while nobody listens, all acknowledged.
    if (!publisher_) die("recovery: the publisher's connection was lost");
    const std::uint64_t acks_before = acks_;
    std::string batch;
    for (int m = 0; m < o_.missed; ++m) {
      std::string payload = pub_template_;
      std::uint64_t v = pub_index_++;
      for (int i = 18; i >= 0; --i) {
        payload[pub_ts_at_ + static_cast<std::size_t>(i)] = static_cast<char>('0' + v % 10);
        v /= 10;
      }
      batch += ws::client_frame(ws::kText, payload);
    }
    send_bytes(publisher_, batch.data(), batch.size());
    if (!loop_until([&] { return !publisher_ || acks_ - acks_before == static_cast<std::uint64_t>(o_.missed); }, 30,
                    false) ||
        !publisher_)
      die("recovery: the publisher's messages were not all acknowledged");
    // 3. The storm: everyone back at once, subscribing with since.
    std::vector<bool> in_storm(n, false);
    for (std::size_t i = n; i-- > 0;) {
      RecClient& k = rec_[i];
      if (!k.ok) continue;
      k.got = 0;
      k.done = k.synced = k.subscribed = k.recovered = false;
      k.next_idx = pub_index_ - static_cast<std::uint64_t>(o_.missed);
      in_storm[i] = true;
      to_open_.push_back(static_cast<int>(i));
    }
    const std::uint64_t taking_part = to_open_.size();
    storm_ = true;
    storm_measured_ = measured;
    rec_done_ = rec_synced_ = rec_subscribed_ = 0;
    bool hwm_reset = false;
    long rss_before = -1;
    double server_cpu_start = -1, server_sys_start = 0, server_ns_start = -1;
    if (measured && pid > 0) {
      hwm_reset = proc_reset_peak_rss(pid);
      rss_before = proc_rss_kib(pid);
      rss_peak_ = rss_before;
      rss_next_ = 0;
      server_cpu_start = proc_cpu_seconds(pid, &server_sys_start);
      server_ns_start = proc_cpu_seconds_ns(pid);
    }
    const double cpu_start = own_cpu_seconds();
    storm_start_ = now_ns();
    storm_last_done_ = storm_last_sub_ = storm_start_;
    to_open_storm_ = true;
    auto storm_over = [&] {
      if (!to_open_.empty()) return false;
      for (std::size_t i = 0; i < n; ++i) {
        const RecClient& k = rec_[i];
        if (!in_storm[i] || k.done || !k.conn) continue;   // finished, or its connection failed
        if (k.subscribed && !k.recovered) continue;          // nothing will come
        return false;
      }
      return true;
    };
    const bool over = loop_until(storm_over, o_.setup_timeout, measured && pid > 0);
    const Nanos end = now_ns();
    const double storm_cpu = own_cpu_seconds() - cpu_start;
    double server_cpu = -1, server_sys = 0, server_ns = -1;
    if (server_ns_start >= 0) {
      const double e = proc_cpu_seconds_ns(pid);
      if (e >= 0) server_ns = e - server_ns_start;
    }
    if (server_cpu_start >= 0) {
      double sys_end = 0;
      const double e = proc_cpu_seconds(pid, &sys_end);
      if (e >= 0) {
        server_cpu = e - server_cpu_start;
        server_sys = sys_end - server_sys_start;
      }
    }
    const long hwm = measured ? proc_status_kib(pid, "VmHWM:") : -1;
    if (measured && pid > 0) rss_peak_ = std::max(rss_peak_, proc_rss_kib(pid));
    // 4. A heartbeat round trip per client: a broadcast queued after the
    // last missed one would arrive before its reply.
    std::vector<bool> pinged(n, false);
    for (std::size_t i = 0; i < n; ++i) {
      RecClient& k = rec_[i];
      if (in_storm[i] && k.done && k.conn && k.conn->st == St::Ready) {
        pinged[i] = true;
        send_bytes(k.conn, f_echo_.data(), f_echo_.size());
      }
    }
    loop_until(
        [&] {
          for (std::size_t i = 0; i < n; ++i)
            if (pinged[i] && !rec_[i].synced && rec_[i].conn) return false;
          return true;
        },
        10, false);
    if (measured) {
      const bool all_done = over && static_cast<std::uint64_t>(rec_done_) == taking_part;
      r_.rec_clients = taking_part;
      r_.rec_storm_s = static_cast<double>((all_done ? storm_last_done_ : end) - storm_start_) / 1e9;
      r_.rec_subscribed_s = static_cast<double>(storm_last_sub_ - storm_start_) / 1e9;
      r_.window_s = r_.rec_storm_s;
      r_.cpu_s = storm_cpu;
      r_.cpu_max_frac = r_.window_s > 0 ? std::min(storm_cpu / (static_cast<double>(end - storm_start_) / 1e9), 1.0) : 0;
      r_.server_cpu_s = server_cpu;
      r_.server_sys_s = server_sys;
      r_.server_cpu_ns_s = server_ns;
      r_.server_rss_storm_before = rss_before;
      r_.server_rss_peak_sampled = rss_peak_;
      r_.server_hwm_kib = hwm;
      r_.server_hwm_reset = hwm_reset;
      r_.sent = static_cast<std::uint64_t>(o_.missed);
      for (std::size_t i = 0; i < n; ++i) {
        const RecClient& k = rec_[i];
        if (!in_storm[i]) continue;
        if (k.ok && k.done && k.synced && k.recovered) r_.rec_complete++;
        r_.rec_missing += static_cast<std::uint64_t>(o_.missed - std::min(k.got, o_.missed));
      }
    }
    storm_ = false;
    storm_measured_ = false;
  }
  r_.conns_ready = set_up;
  for (Conn* c : conns_) {
    if (c->fd >= 0) close(c->fd);
    if (c->st != St::Dead) delete c;
  }
  for (Conn* c : graveyard_) delete c;
  conns_.clear();
  graveyard_.clear();
  rec_.clear();
  publisher_ = nullptr;
  close(ep_);
  return r_;
}

// --------------------------------------------------------- running workers --

Result run_workers(const Options& o) {
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap failed");
  auto* sh = new (mem) Shared{};
  Result total;
  const long rss_before = proc_rss_kib(o.server_pid);
  if (o.procs == 1) {
    Worker w(o, 0, 0, o.conns, sh);
    total = w.run();
  } else {
    std::vector<std::pair<pid_t, int>> kids;
    int first = 0;
    for (int i = 0; i < o.procs; ++i) {
      const int count = o.conns / o.procs + (i < o.conns % o.procs ? 1 : 0);
      int fds[2];
      if (pipe(fds) != 0) die("pipe failed");
      const pid_t pid = fork();
      if (pid < 0) die("fork failed");
      if (pid == 0) {
        close(fds[0]);
        Worker w(o, i, first, count, sh);
        auto r = std::make_unique<Result>(w.run());
        const char* p = reinterpret_cast<const char*>(r.get());
        std::size_t left = sizeof(Result);
        while (left > 0) {
          const ssize_t n = write(fds[1], p, left);
          if (n <= 0) _exit(3);
          p += n;
          left -= static_cast<std::size_t>(n);
        }
        _exit(0);
      }
      close(fds[1]);
      kids.emplace_back(pid, fds[0]);
      first += count;
    }
    bool first_result = true;
    for (auto [pid, fd] : kids) {
      auto r = std::make_unique<Result>();
      char* p = reinterpret_cast<char*>(r.get());
      std::size_t left = sizeof(Result);
      while (left > 0) {
        const ssize_t n = read(fd, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
      }
      close(fd);
      int status = 0;
      waitpid(pid, &status, 0);
      if (left != 0) die("a generator process died (pid " + std::to_string(pid) + ")");
      if (first_result) {
        total = *r;
        first_result = false;
      } else {
        total.merge(*r);
      }
    }
  }
  total.server_rss_before = rss_before;
  munmap(mem, sizeof(Shared));
  return total;
}

// ----------------------------------------------------------------- output --

struct Report {
  const Options* o;
  Result r;
  bool has_baseline = false;
  Result baseline;  // relay: directly against the upstream
};

double per_s(std::uint64_t n, double s) { return s > 0 ? static_cast<double>(n) / s : 0; }

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    out += ch;
  }
  return out;
}

void json_hist(std::string& j, const char* name, const Histogram& h) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "\"%s\":{\"count\":%" PRIu64 ",\"mean_us\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,"
                "\"p999_us\":%.2f,\"max_us\":%.2f}",
                name, h.total, h.mean() / 1e3, h.percentile(0.5) / 1e3, h.percentile(0.9) / 1e3,
                h.percentile(0.99) / 1e3, h.percentile(0.999) / 1e3, static_cast<double>(h.max) / 1e3);
  j += buf;
}

void print_json(const Report& rep) {
  const Options& o = *rep.o;
  const Result& r = rep.r;
  std::string j = "{";
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "\"scenario\":\"%s\",\"label\":\"%s\",\"protocol\":\"%s\",\"url\":\"%s\",\"conns\":%d,\"procs\":%d,"
                "\"rate\":%.1f,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"window_s\":%.3f,",
                o.scenario_name.c_str(), json_escape(o.label).c_str(), o.proto == Proto::Standard ? "standard" : "plain",
                json_escape(o.url).c_str(), o.conns, o.procs, o.rate, o.duration, o.warmup, r.window_s);
  j += buf;
  const double establish = r.last_ready && r.first_start ? static_cast<double>(r.last_ready - r.first_start) / 1e9 : 0;
  std::snprintf(buf, sizeof buf,
                "\"messages\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"per_s\":%.1f,\"sent_per_s\":%.1f,\"lost\":%" PRIu64
                ",\"conns_ready\":%" PRIu64 ",\"establish_s\":%.3f,\"connect_fail\":%" PRIu64
                ",\"handshake_fail\":%" PRIu64 ",\"peer_closed\":%" PRIu64 ",\"error_replies\":%" PRIu64
                ",\"cycle_fail\":%" PRIu64 ",\"stray\":%" PRIu64 ",",
                r.messages, r.sent, per_s(r.messages, r.window_s), per_s(r.sent, r.window_s), r.lost, r.conns_ready,
                establish, r.connect_fail, r.handshake_fail, r.peer_closed, r.error_replies, r.cycle_fail, r.stray);
  j += buf;
  std::snprintf(buf, sizeof buf,
                "\"generator\":{\"cpu_s\":%.3f,\"cpu_frac\":%.3f,\"cpu_max_frac\":%.3f,\"saturated\":%s},",
                r.cpu_s, o.scenario == Scenario::Idle ? r.cpu_max_frac : r.window_s > 0 ? r.cpu_s / r.window_s : 0,
                r.cpu_max_frac, r.cpu_max_frac > 0.9 ? "true" : "false");
  j += buf;
  const long rss_delta = r.server_rss_after >= 0 && r.server_rss_before >= 0 ? r.server_rss_after - r.server_rss_before : 0;
  std::snprintf(buf, sizeof buf,
                "\"server\":{\"pid\":%d,\"cpu_s\":%.3f,\"sys_s\":%.3f,\"per_cpu_s\":%.1f,\"rss_before_kib\":%ld,"
                "\"rss_after_kib\":%ld,\"kib_per_conn\":%.3f},",
                static_cast<int>(o.server_pid), r.server_cpu_s, r.server_sys_s,
                r.server_cpu_s > 0 ? static_cast<double>(r.messages) / r.server_cpu_s : 0.0, r.server_rss_before,
                r.server_rss_after,
                r.conns_ready && r.server_rss_after >= 0 ? static_cast<double>(rss_delta) / static_cast<double>(r.conns_ready) : 0.0);
  j += buf;
  std::snprintf(buf, sizeof buf,
                "\"backend\":{\"pid\":%d,\"cpu_s\":%.3f,\"sys_s\":%.3f},\"window_mono_s\":[%.6f,%.6f],",
                static_cast<int>(o.backend_pid), r.backend_cpu_s, r.backend_sys_s, static_cast<double>(r.win_start) / 1e9,
                static_cast<double>(r.win_end) / 1e9);
  j += buf;
  if (o.waiters > 0) {
    std::snprintf(buf, sizeof buf,
                  "\"waiters\":{\"conns\":%d,\"ready\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"replies\":%" PRIu64
                  ",\"replies_in_window\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"url\":\"%s\"},",
                  o.waiters, r.waiters_ready, r.waiter_sent, r.waiter_replies, r.waiter_replies_window, r.waiter_errors,
                  r.waiters_lost, json_escape(o.waiter_url).c_str());
    j += buf;
  }
  if (o.scenario == Scenario::Recovery) {
    std::snprintf(buf, sizeof buf,
                  "\"recovery\":{\"clients\":%d,\"set_up\":%" PRIu64 ",\"taking_part\":%" PRIu64 ",\"missed\":%d,"
                  "\"complete\":%" PRIu64 ",\"recovered\":%" PRIu64 ",\"not_recovered\":%" PRIu64
                  ",\"out_of_order\":%" PRIu64 ",\"extra\":%" PRIu64 ",\"missing\":%" PRIu64
                  ",\"storm_s\":%.4f,\"subscribed_s\":%.4f,\"server_cpu_s\":%.3f,\"server_sys_s\":%.3f,"
                  "\"server_cpu_schedstat_s\":%.4f,"
                  "\"server_rss_before_kib\":%ld,\"server_rss_peak_sampled_kib\":%ld,\"server_hwm_kib\":%ld,"
                  "\"hwm_reset\":%s},",
                  o.conns, r.conns_ready, r.rec_clients, o.missed, r.rec_complete, r.rec_recovered, r.rec_not_recovered,
                  r.rec_out_of_order, r.rec_extra, r.rec_missing, r.rec_storm_s, r.rec_subscribed_s, r.server_cpu_s,
                  r.server_sys_s, r.server_cpu_ns_s, r.server_rss_storm_before, r.server_rss_peak_sampled, r.server_hwm_kib,
                  r.server_hwm_reset ? "true" : "false");
    j += buf;
  }
  json_hist(j, "latency", r.lat);
  j += ",";
  json_hist(j, "setup", r.setup);
  if (rep.has_baseline) {
    j += ",\"baseline\":{";
    std::snprintf(buf, sizeof buf, "\"url\":\"%s\",\"per_s\":%.1f,\"lost\":%" PRIu64 ",", json_escape(o.upstream_url).c_str(),
                  per_s(rep.baseline.messages, rep.baseline.window_s), rep.baseline.lost);
    j += buf;
    json_hist(j, "latency", rep.baseline.lat);
    j += "},";
    std::snprintf(buf, sizeof buf, "\"added_us\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f}",
                  (r.lat.percentile(0.5) - rep.baseline.lat.percentile(0.5)) / 1e3,
                  (r.lat.percentile(0.99) - rep.baseline.lat.percentile(0.99)) / 1e3,
                  (r.lat.percentile(0.999) - rep.baseline.lat.percentile(0.999)) / 1e3);
    j += buf;
  }
  j += "}";
  std::puts(j.c_str());
}

void print_hist_row(const char* name, const Histogram& h) {
  std::printf("  %-22s %9.1f %9.1f %9.1f %9.1f %9.1f   (n=%" PRIu64 ")\n", name, h.percentile(0.5) / 1e3,
              h.percentile(0.9) / 1e3, h.percentile(0.99) / 1e3, h.percentile(0.999) / 1e3,
              static_cast<double>(h.max) / 1e3, h.total);
}

void print_table(const Report& rep) {
  const Options& o = *rep.o;
  const Result& r = rep.r;
  std::printf("wsrelay-bench %s  %s  protocol=%s  conns=%d  procs=%d%s%s\n", o.scenario_name.c_str(), o.url.c_str(),
              o.proto == Proto::Standard ? "standard" : "plain", o.conns, o.procs,
              o.label.empty() ? "" : "  label=", o.label.c_str());
  if (o.scenario == Scenario::Recovery)
    std::printf("  the storm %.3f s%s\n", r.window_s, o.warmup > 0 ? " (after an unmeasured warm-up storm)" : "");
  else
    std::printf("  window %.2f s (after %.2f s warm-up)\n", r.window_s, o.warmup);
  const char* unit = "msg/s";
  switch (o.scenario) {
    case Scenario::Fanout:
      unit = "deliveries/s";
      std::printf("  %-22s %12.0f\n", "publishes/s", per_s(r.sent, r.window_s));
      break;
    case Scenario::Churn:
      unit = "cycles/s";
      std::printf("  %-22s %12.0f\n", "cycles started/s", per_s(r.sent, r.window_s));
      break;
    default:
      break;
  }
  if (o.scenario == Scenario::Recovery) {
    std::printf("  %-22s %12" PRIu64 " of %d (set up %" PRIu64 "), %d missed messages each\n", "clients in the storm",
                r.rec_clients, o.conns, r.conns_ready, o.missed);
    std::printf("  %-22s %12.3f s  (the last subscribe.ok after %.3f s)\n", "all recovered after", r.rec_storm_s,
                r.rec_subscribed_s);
    std::printf("  %-22s %12" PRIu64 "  (recovered:true %" PRIu64 ", recovered:false %" PRIu64 ", out of order %" PRIu64
                ", extra %" PRIu64 ", missing %" PRIu64 ")%s\n",
                "complete and in order", r.rec_complete, r.rec_recovered, r.rec_not_recovered, r.rec_out_of_order,
                r.rec_extra, r.rec_missing, r.rec_complete == static_cast<std::uint64_t>(o.conns) ? "" : "  **");
    if (r.server_rss_storm_before >= 0)
      std::printf("  %-22s %ld -> peak %ld KiB sampled, VmHWM %ld KiB%s\n", "server RSS", r.server_rss_storm_before,
                  r.server_rss_peak_sampled, r.server_hwm_kib,
                  r.server_hwm_reset ? " (reset before the storm)" : " (since start: not reset)");
  } else if (o.scenario == Scenario::Idle) {
    const double establish = r.last_ready && r.first_start ? static_cast<double>(r.last_ready - r.first_start) / 1e9 : 0;
    std::printf("  %-22s %12" PRIu64 " of %d\n", "connections ready", r.conns_ready, o.conns);
    std::printf("  %-22s %12.3f s\n", "time to establish", establish);
    if (r.server_rss_after >= 0 && r.server_rss_before >= 0 && r.conns_ready)
      std::printf("  %-22s %12.2f KiB  (RSS %ld -> %ld KiB)\n", "server RSS/connection",
                  static_cast<double>(r.server_rss_after - r.server_rss_before) / static_cast<double>(r.conns_ready),
                  r.server_rss_before, r.server_rss_after);
  } else {
    std::printf("  %-22s %12.0f\n", unit, per_s(r.messages, r.window_s));
  }
  if (o.scenario == Scenario::Recovery && r.server_cpu_ns_s >= 0)
    std::printf("  %-22s %12.4f s  (schedstat, ns resolution; /proc/PID/stat below, clock ticks)\n", "server CPU",
                r.server_cpu_ns_s);
  if (r.server_cpu_s >= 0)
    std::printf("  %-22s %12.3f s  (%.0f per server CPU-second; in the kernel %.3f s)\n", "server CPU",
                r.server_cpu_s, r.server_cpu_s > 0 ? static_cast<double>(r.messages) / r.server_cpu_s : 0.0,
                r.server_sys_s);
  if (o.scenario == Scenario::Churn && r.server_rss_before >= 0)
    std::printf("  %-22s %ld -> %ld KiB\n", "server RSS", r.server_rss_before, r.server_rss_after);
  if (r.backend_cpu_s >= 0)
    std::printf("  %-22s %12.3f s  (in the kernel %.3f s)\n", "backend CPU", r.backend_cpu_s, r.backend_sys_s);
  if (o.waiters > 0)
    std::printf("  %-22s %12" PRIu64 " of %d ready; sent %" PRIu64 ", answered %" PRIu64 " (%" PRIu64
                " in the window), errors %" PRIu64 ", lost %" PRIu64 "\n",
                "waiters", r.waiters_ready, o.waiters, r.waiter_sent, r.waiter_replies, r.waiter_replies_window,
                r.waiter_errors, r.waiters_lost);
  std::printf("  %-22s %12.0f%% of a core (busiest process %.0f%%)%s\n", "generator CPU",
              o.scenario == Scenario::Idle ? 100 * r.cpu_max_frac : r.window_s > 0 ? 100 * r.cpu_s / r.window_s : 0,
              100 * r.cpu_max_frac,
              r.cpu_max_frac > 0.9 ? "  ** generator saturated: the server may be faster than this **" : "");
  std::printf("  latency (us)           %9s %9s %9s %9s %9s\n", "p50", "p90", "p99", "p99.9", "max");
  if (rep.has_baseline) print_hist_row("direct to upstream", rep.baseline.lat);
  if (o.scenario == Scenario::Recovery) {
    print_hist_row("reconnect -> subscribed", r.setup);
    print_hist_row("reconnect -> all missed", r.lat);
  } else if (o.scenario != Scenario::Idle) {
    print_hist_row(o.scenario == Scenario::Churn ? "cycle (to subscribed)" : "through server", o.scenario == Scenario::Churn ? r.setup : r.lat);
  }
  if (o.scenario == Scenario::Idle) print_hist_row("connect -> ready", r.setup);
  if (rep.has_baseline)
    std::printf("  %-22s %9.1f %9s %9.1f %9.1f\n", "added by the relay", (r.lat.percentile(0.5) - rep.baseline.lat.percentile(0.5)) / 1e3,
                "", (r.lat.percentile(0.99) - rep.baseline.lat.percentile(0.99)) / 1e3,
                (r.lat.percentile(0.999) - rep.baseline.lat.percentile(0.999)) / 1e3);
  const std::uint64_t problems = r.connect_fail + r.handshake_fail + r.peer_closed + r.error_replies + r.cycle_fail + r.lost;
  std::printf("  problems: connect_fail=%" PRIu64 " handshake_fail=%" PRIu64 " peer_closed=%" PRIu64
              " error_replies=%" PRIu64 " cycle_fail=%" PRIu64 " lost=%" PRIu64 " stray=%" PRIu64 "%s\n",
              r.connect_fail, r.handshake_fail, r.peer_closed, r.error_replies, r.cycle_fail, r.lost, r.stray,
              problems ? "  **" : "");
}

// ------------------------------------------------------------- serve-echo --

// A plain WebSocket echo server: the relay scenario's upstream. Text and
// binary frames come back unmasked with the same opcode, pings get pongs,
// a close gets a close.
volatile sig_atomic_t g_stop = 0;

struct EchoConn {
  int fd = -1;
  bool open = false;
  std::string in, out;
};

// Writes what c->out holds without blocking, then watches c for reads (and
// writes, while something is left). False: the peer is gone.
template <typename Conn>
bool flush_out(int ep, Conn* c) {
    while (!c->out.empty()) {
      const ssize_t w = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      c->out.erase(0, static_cast<std::size_t>(w));
    }
    epoll_event e{};
    e.events = EPOLLIN | (c->out.empty() ? 0u : EPOLLOUT);
    e.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    return true;
}

// A loopback listener for the bench's own servers (serve-echo, serve-http):
// SIGTERM/SIGINT stop them, the socket is in a fresh epoll set (data.ptr
// null), and the address is printed once it listens.
std::pair<int, int> listen_loopback(const Options& o, const char* name, const char* scheme) {
  signal(SIGTERM, [](int) { g_stop = 1; });
  signal(SIGINT, [](int) { g_stop = 1; });
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(o.listen_port));
  if (inet_pton(AF_INET, o.listen_host.c_str(), &a.sin_addr) != 1 || (ntohl(a.sin_addr.s_addr) >> 24) != 127)
    die("--listen-host: a loopback IPv4 address");
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 4096) != 0)
    die(std::string(name) + ": cannot listen: " + std::strerror(errno));
  socklen_t alen = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen);
  std::printf("%s listening on %s://%s:%d/\n", name, scheme, o.listen_host.c_str(), ntohs(a.sin_port));
  std::fflush(stdout);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  return {lfd, ep};
}

int serve_echo(const Options& o) {
  const auto [lfd, ep] = listen_loopback(o, "serve-echo", "ws");
  const int one = 1;  // TCP_NODELAY below
  std::vector<epoll_event> events(512);
  std::vector<char> buf(256 * 1024);
  auto drop = [&](EchoConn* c) {
    close(c->fd);
    delete c;
  };
  auto flush = [&](EchoConn* c) { return flush_out(ep, c); };
  while (!g_stop) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<EchoConn*>(events[i].data.ptr);
      if (!c) {
        while (true) {
          const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto* nc = new EchoConn;
          nc->fd = fd;
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.ptr = nc;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
        continue;
      }
      if (events[i].events & EPOLLOUT) {
        if (!flush(c)) {
          drop(c);
          continue;
        }
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      const ssize_t r = ::read(c->fd, buf.data(), buf.size());
      if (r == 0 || (r < 0 && errno != EAGAIN)) {
        drop(c);
        continue;
      }
      if (r < 0) continue;
      c->in.append(buf.data(), static_cast<std::size_t>(r));
      bool closing = false;
      if (!c->open) {
        const auto eoh = c->in.find("\r\n\r\n");
        if (eoh == std::string::npos) continue;
        std::string head = c->in.substr(0, eoh);
        std::string lower = head;
        for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        const auto k = lower.find("\r\nsec-websocket-key:");
        if (k == std::string::npos) {
          c->out = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          flush(c);
          drop(c);
          continue;
        }
        std::size_t v = k + 20;
        while (v < head.size() && head[v] == ' ') ++v;
        std::size_t e = head.find("\r\n", v);
        if (e == std::string::npos) e = head.size();
        std::string key = head.substr(v, e - v);
        while (!key.empty() && key.back() == ' ') key.pop_back();
        c->out += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                  ws::accept_key(key) + "\r\n\r\n";
        c->in.erase(0, eoh + 4);
        c->open = true;
      }
      std::size_t pos = 0;
      while (pos < c->in.size()) {
        ws::FrameHeader h;
        const auto* p = reinterpret_cast<std::uint8_t*>(c->in.data() + pos);
        const int rc = ws::parse_header(p, c->in.size() - pos, h);
        if (rc < 0) {
          closing = true;
          break;
        }
        if (rc == 0 || c->in.size() - pos < h.header_len + h.len) break;
        char* payload = c->in.data() + pos + h.header_len;
        if (h.masked)
          for (std::uint64_t j = 0; j < h.len; ++j) payload[j] = static_cast<char>(payload[j] ^ h.mask[j & 3]);
        const std::string_view pl(payload, static_cast<std::size_t>(h.len));
        if (h.opcode == ws::kPing) {
          c->out += ws::server_frame(ws::kPong, pl);
        } else if (h.opcode == ws::kClose) {
          c->out += ws::server_frame(ws::kClose, pl.substr(0, std::min<std::size_t>(pl.size(), 2)));
          closing = true;
        } else if (h.opcode != ws::kPong) {
          std::string hdr;
          ws::put_header(hdr, h.opcode, pl.size(), false);
          hdr[0] = static_cast<char>((h.fin ? 0x80 : 0) | h.opcode);
          c->out += hdr;
          c->out += pl;
        }
        pos += h.header_len + h.len;
        if (closing) break;
      }
      c->in.erase(0, pos);
      if (!flush(c) || closing) {
        drop(c);
      }
    }
  }
  return 0;
}

// ------------------------------------------------------------- serve-http --

// A minimal HTTP/1.1 backend, for the scenarios where the server under test
// calls one (connect_backend, backend_inflight) and the backend must not be
// what is measured: keep-alive, no framework, one request at a time per
// connection (libcurl does not pipeline; a pipelined request waits its
// turn). POST /ws/connect answers at once; GET /sleep?s=S answers after S
// seconds from a timer (the loop goes on); anything else gets a 404.
struct HttpConn {
  int fd = -1;
  std::uint64_t id = 0;
  bool waiting = false;      // a /sleep answer is due: the next request waits for it
  bool close_after = false;  // "Connection: close": close once the answer is out
  bool continued = false;    // "100 Continue" sent for the request being read
  std::string in, out, due_body;
};

int serve_http(const Options& o) {
  const auto [lfd, ep] = listen_loopback(o, "serve-http", "http");
  const int one = 1;  // TCP_NODELAY below
  std::vector<epoll_event> events(512);
  std::vector<char> buf(256 * 1024);
  std::unordered_map<std::uint64_t, HttpConn*> live;
  using Due = std::pair<Nanos, std::uint64_t>;  // when, which connection
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> timers;
  std::uint64_t next_id = 1;
  auto drop = [&](HttpConn* c) {
    live.erase(c->id);
    close(c->fd);
    delete c;
  };
  auto flush = [&](HttpConn* c) { return flush_out(ep, c) && !(c->out.empty() && c->close_after); };
  auto answer = [&](HttpConn* c, const char* status, const std::string& body) {
    c->out += std::string("HTTP/1.1 ") + status + "\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + (c->close_after ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
  };
  // Answers every complete request in c->in, in order; false: drop the connection.
  auto handle = [&](HttpConn* c) -> bool {
    while (!c->waiting && !c->close_after) {
      const auto eoh = c->in.find("\r\n\r\n");
      if (eoh == std::string::npos) {
        if (c->in.size() > 65536) return false;
        break;
      }
      std::string head = c->in.substr(0, eoh);
      for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::size_t body_len = 0;
      if (const auto k = head.find("\r\ncontent-length:"); k != std::string::npos)
        body_len = std::strtoul(head.c_str() + k + 17, nullptr, 10);
      if (head.find("\r\ntransfer-encoding:") != std::string::npos) return false;  // not needed here
      if (c->in.size() < eoh + 4 + body_len) {
        if (!c->continued && head.find("\r\nexpect: 100-continue") != std::string::npos) {
          c->out += "HTTP/1.1 100 Continue\r\n\r\n";
          c->continued = true;
        }
        if (body_len > (1u << 20)) return false;
        break;
      }
      const std::string line = c->in.substr(0, c->in.find("\r\n"));  // the method and path keep their case
      c->in.erase(0, eoh + 4 + body_len);
      c->continued = false;
      c->close_after = head.find("\r\nconnection: close") != std::string::npos ||
                       line.compare(line.size() >= 8 ? line.size() - 8 : 0, 8, "HTTP/1.0") == 0;
      const auto sp1 = line.find(' ');
      const auto sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
      if (sp1 == std::string::npos || sp2 == std::string::npos) return false;
      const std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      const std::string path = target.substr(0, target.find('?'));
      if (method == "POST" && path == "/ws/connect") {
        answer(c, "200 OK", "{\"user\":\"bench\",\"ok\":true}");
      } else if (method == "GET" && path == "/sleep") {
        double secs = 5;
        if (const auto q = target.find("s=", target.find('?')); q != std::string::npos && target.find('?') != std::string::npos)
          secs = std::clamp(std::strtod(target.c_str() + q + 2, nullptr), 0.0, 300.0);
        char body[64];
        std::snprintf(body, sizeof body, "{\"slept\":%g}", secs);
        if (secs <= 0) {
          answer(c, "200 OK", body);
        } else {
          c->waiting = true;
          c->due_body = body;
          timers.push({now_ns() + static_cast<Nanos>(secs * 1e9), c->id});
        }
      } else {
        answer(c, "404 Not Found", "{\"error\":\"not found\"}");
      }
    }
    return flush(c);
  };
  while (!g_stop) {
    Nanos wait = 200'000'000;
    const Nanos now = now_ns();
    while (!timers.empty() && timers.top().first <= now) {
      const std::uint64_t id = timers.top().second;
      timers.pop();
      const auto it = live.find(id);
      if (it == live.end()) continue;  // the client went away meanwhile
      HttpConn* c = it->second;
      c->waiting = false;
      answer(c, "200 OK", c->due_body);
      if (!handle(c)) drop(c);
    }
    if (!timers.empty()) wait = std::min(wait, std::max<Nanos>(timers.top().first - now, 0));
    timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
    const int n = epoll_pwait2(ep, events.data(), static_cast<int>(events.size()), &ts, nullptr);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<HttpConn*>(events[i].data.ptr);
      if (!c) {
        while (true) {
          const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto* nc = new HttpConn;
          nc->fd = fd;
          nc->id = next_id++;
          live[nc->id] = nc;
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.ptr = nc;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
        continue;
      }
      if ((events[i].events & EPOLLOUT) && !flush(c)) {
        drop(c);
        continue;
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      const ssize_t r = ::read(c->fd, buf.data(), buf.size());
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(c);
        continue;
      }
      if (r < 0) continue;
      c->in.append(buf.data(), static_cast<std::size_t>(r));
      if (!handle(c)) drop(c);
    }
  }
  for (auto& [id, c] : live) {
    close(c->fd);
    delete c;
  }
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  signal(SIGPIPE, SIG_IGN);
  const Options o = parse_args(argc, argv);
  raise_fd_limit();
  if (o.scenario == Scenario::ServeEcho) return serve_echo(o);
  if (o.scenario == Scenario::ServeHttp) return serve_http(o);
  const rlim_t need = static_cast<rlim_t>(o.conns) + static_cast<rlim_t>(o.waiters) + 64;
  if (fd_limit() < need) die("fd limit " + std::to_string(fd_limit()) + " is below --conns + 64; raise `ulimit -n`");

  Report rep;
  rep.o = &o;
  if (o.scenario == Scenario::Relay) {
    Options base = o;
    base.url = o.upstream_url;
    base.pub_url = o.upstream_url;
    base.server_pid = 0;
    rep.baseline = run_workers(base);
    rep.has_baseline = true;
  }
  rep.r = run_workers(o);
  if (o.scenario == Scenario::Churn && o.server_pid > 0) {
    usleep(1000000);  // let the server finish its closes before reading RSS
    rep.r.server_rss_after = proc_rss_kib(o.server_pid);
  }
  if (o.json) print_json(rep);
  else print_table(rep);
  return 0;
}
