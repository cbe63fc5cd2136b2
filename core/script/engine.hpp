// engine: one endpoint's Lua script — its state, sandbox, handlers and limits —
// and the routing of each session's messages through it.
// Owns: the lua_State (one per endpoint script), the handler table, each
// session's Lua userdata and attribute table.
// Uses: Hub/Broker (publish), Registry (address sessions), Stats, JWT options.
// Never includes lws: the protocol calls in with complete messages and the
// engine answers by queueing frames on the Session.
#pragma once

#include "auth/jwt.hpp"
#include "extension/extension.hpp"
#include "http/request.hpp"
#include "loop/timers.hpp"
#include "outbound/http_client.hpp"
#include "pubsub/hub.hpp"
#include "session/registry.hpp"
#include "session/session.hpp"
#include "stats/stats.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct lua_State;

namespace wsrelay::script {

// What a script can reach of the server. Pointers are not owned and outlive
// the engine.

struct ScriptContext {
  pubsub::Hub* hub = nullptr;
  session::Registry* registry = nullptr;
  stats::Stats* stats = nullptr;
  auth::JwtOptions jwt;
  int heartbeat_interval_s = 25;
  int heartbeat_timeout_s = 60;
  int max_subscriptions = 256;     // per session; 0 = unlimited
  int max_channel_length = 128;
  std::size_t max_message_size = 1048576;
  std::string endpoint;            // the endpoint's configured path
  std::string options_json = "{}"; // the endpoint's "options", given to the script as relay.options
  // Extension plugins the script may use (require "relay.<name>", filters,
  // relay.auth): the built-in ones unless the relay says otherwise.
  std::vector<extension::Enabled> extensions = extension::builtins();
  // Reach (relay.after/every, relay.http.request): null when the host gives
  // none (those calls then raise).
  loop::Timers* timers = nullptr;
  outbound::HttpClient* http = nullptr;
  int max_timers = 1000;                 // limits.script_timers: live timers of this script
  int max_http_requests = 256;           // limits.http_requests: in flight, all scripts together
  int http_timeout_s = 10;               // limits.http_timeout: when a request names none
  std::size_t max_http_response_bytes = 4u << 20;  // limits.http_response_bytes
  std::size_t max_waiting_messages = 64; // limits.waiting_messages: queued behind a waiting handler
};

struct Limits {
  std::uint64_t instructions_per_call = 20'000'000;  // count hook budget per top-level call
  std::size_t memory_bytes = 64u << 20;             // allocator cap for the whole state
};

struct ScriptSource {
  std::string name;  // shown in errors and tracebacks: "standard.lua"
  std::string code;
};

// Error codes of the standard protocol that the engine itself produces.
namespace codes {
inline constexpr std::string_view kBadJson = "bad_json";
inline constexpr std::string_view kBadRequest = "bad_request";
inline constexpr std::string_view kUnknownType = "unknown_type";
inline constexpr std::string_view kTooLarge = "too_large";
inline constexpr std::string_view kScriptError = "script_error";
inline constexpr std::string_view kScriptTimeout = "script_timeout";
inline constexpr std::string_view kRateLimited = "rate_limited";
inline constexpr std::string_view kUpstreamBusy = "upstream_busy";
inline constexpr std::string_view kUpstreamUnavailable = "upstream_unavailable";
inline constexpr std::string_view kBusy = "busy";
}  // namespace codes

// What on_upgrade(req) sees of a WebSocket upgrade before it is accepted.
struct UpgradeRequest {
  std::string path;
  std::vector<std::pair<std::string, std::string>> params;   // the endpoint's {name} captures
  std::string query;                                         // undecoded
  std::vector<std::pair<std::string, std::string>> headers;  // session.headers' rule
  std::string remote;
};

// Its answer: accept (with a user set before on_open), or refuse with an
// HTTP answer.
struct UpgradeAnswer {
  bool accept = true;
  http::Response refusal;
  std::optional<std::string> user;
};

class ScriptEngine {
 public:
  struct Loaded {
    std::unique_ptr<ScriptEngine> engine;  // null on failure
    std::string error;                     // "chat.lua:12: unexpected symbol near 'x'"
  };
  static Loaded load(const ScriptSource& source, ScriptContext context, Limits limits = {});
  ~ScriptEngine();
  ScriptEngine(const ScriptEngine&) = delete;

  // Replaces the handlers with a new version of the script, keeping every
  // session (user, attrs, subscriptions, upstream). On failure the old
  // version keeps running and the error ("chat.lua:12: ...") is returned.
  std::string reload(const ScriptSource& source);
  ScriptEngine& operator=(const ScriptEngine&) = delete;

  void on_open(session::Session& s);
  void on_close(session::Session& s, int code, std::string_view reason);
  void on_message(session::Session& s, std::string_view data, bool binary);
  // Sends an error through the script's on_error (or the default shape).
  // request: the message the error is about, if any, so the reply can echo its id.
  void send_error(session::Session& s, std::string_view code, std::string_view message,
                  std::string_view request = {});

  // Upstream events of a session's link. Without an on_upstream hook a frame
  // is forwarded to the client byte for byte, without entering Lua.
  void on_upstream_open(session::Session& s);
  void on_upstream_message(session::Session& s, std::string_view data, bool binary);
  // failed: the link never opened or dropped without a close frame;
  // retrying: a reconnect is scheduled. Both reach the hook as its 4th argument.
  void on_upstream_close(session::Session& s, int code, std::string_view reason, bool failed = false,
                         bool retrying = false);

  // The script's on_upgrade(req), synchronously (lws 4.1's upgrade decision
  // cannot wait): its answer. has_on_upgrade: whether the script has one.
  bool has_on_upgrade() const;
  UpgradeAnswer on_upgrade(const UpgradeRequest& request);

  // A timer of this script is due (Relay::run_timers): its callback runs on
  // a relay coroutine, so it may wait.
  void fire_timer(std::uint64_t id, bool repeating);
  // The answer to a waiting call's HTTP request (relay.http.request).
  void http_answered(std::uint64_t wait_id, outbound::HttpResponse response);

  // Routes the script declared in its `http` table ("GET /path" = function).
  // method "*" asks whether any method is routed for the path.
  bool has_http_route(std::string_view method, std::string_view path) const;
  // The answer goes to done, at once or (the route waited) later on the
  // loop's thread; exactly once.
  void handle_http(const http::Request& request, std::function<void(http::Response)> done);

  const std::string& name() const { return source_name_; }
  const ScriptContext& context() const { return context_; }

  // A full collection now (after a burst of connections: their sessions'
  // garbage would otherwise hold heap pages until the next cycle ends).
  // Never from inside a Lua call.
  void collect_garbage();

  // Internal to the script unit (bridges and the dispatcher).
  struct Internal;
  Internal* internal() const { return in_.get(); }

 private:
  ScriptEngine() = default;
  static bool compile(Internal& in, const ScriptSource& source, std::string& error);
  void dispatch_message(session::Session& s, std::string_view data, bool binary);

  std::string source_name_;
  ScriptContext context_;
  Limits limits_;
  std::unique_ptr<Internal> in_;
};

}  // namespace wsrelay::script
