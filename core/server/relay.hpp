// relay: everything the server serves, without lws — the endpoints with their
// loaded scripts, the channel hub, the open sessions and the counters.
// Owns: Hub, Registry, Stats, one ScriptEngine per endpoint.
// Uses: config (what to load), script (the engines).
// The lws protocol (plugins/protocol_wsrelay) drives it; tests can too.
#pragma once

#include "config/config.hpp"
#include "loop/completions.hpp"
#include "loop/timers.hpp"
#include "outbound/http_client.hpp"
#include "pubsub/hub.hpp"
#include "script/engine.hpp"
#include "server/admission.hpp"
#include "http/path_pattern.hpp"
#include "session/registry.hpp"
#include "stats/stats.hpp"

#include <memory>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

namespace wsrelay::server {

struct EndpointRuntime {
  config::Endpoint config;
  http::PathPattern pattern;
  std::unique_ptr<script::ScriptEngine> engine;
  std::uint64_t connections = 0;  // open sessions on this endpoint
};

// The source of the built-in standard script (compiled into the library).
std::string builtin_standard_script();

// Whether any endpoint's script authenticates with relay.jwt (so that running
// without a secret deserves the development-mode warning).
bool uses_jwt(const config::Config& config);

class Relay {
 public:
  // Loads every endpoint's script. On failure returns null and appends one
  // error per script that failed ("standard.lua:12: ..." / "x.json: endpoints[0].script: ...").
  // Extensions named in the config come from `plugins` (the loaded plugin
  // folders, which must outlive the Relay); the built-in ones are always there.
  static std::unique_ptr<Relay> create(const config::Config& config, std::vector<std::string>& errors,
                                       const extension::Catalog* plugins = nullptr);

  // Re-reads every endpoint's script file and swaps it in, keeping sessions.
  // A script that fails to load keeps its previous version (logged with
  // file:line). Returns the number of scripts that failed.
  int reload_scripts();

  // Exact paths win over patterns; patterns are tried in config order.
  EndpointRuntime* match(std::string_view path, http::PathPattern::Params& params);

  // Once a burst of sessions is over (util::burst_over on the registry's
  // peak): a full collection in every script, the registry's buckets shrunk,
  // the heap's free pages handed back. Returns whether it did. Called by the
  // keepalive sweep once a second, outside any Lua call.
  bool give_back_after_burst();

  // The scripts' timers: the loop wakes at timers().next_deadline() (steady
  // ms) and calls run_timers with the time; timers().on_change tells it the
  // deadline moved.
  loop::Timers& timers() { return timers_; }
  void run_timers(std::int64_t now_ms);
  // Work finished on other threads (HTTP answers): the loop sets the wake and
  // drains on it.
  loop::Completions& completions() { return completions_; }
  const outbound::HttpClient& http() const { return *http_; }

  // A user the script's on_upgrade named, from the upgrade to the open
  // (key: the transport's connection handle). take_ forgets it.
  void note_upgrade_user(const void* key, std::string user) { upgrade_users_[key] = std::move(user); }
  std::optional<std::string> take_upgrade_user(const void* key) {
    if (upgrade_users_.empty()) return std::nullopt;
    auto it = upgrade_users_.find(key);
    if (it == upgrade_users_.end()) return std::nullopt;
    std::string user = std::move(it->second);
    upgrade_users_.erase(it);
    return user;
  }

  pubsub::Hub& hub() { return hub_; }
  Admission& admission() { return *admission_; }
  session::Registry& registry() { return registry_; }
  stats::Stats& stats() { return stats_; }
  const config::Config& config() const { return config_; }
  std::vector<std::unique_ptr<EndpointRuntime>>& endpoints() { return endpoints_; }

 private:
  Relay() = default;
  config::Config config_;
  pubsub::Hub hub_;
  session::Registry registry_;
  stats::Stats stats_;
  std::unique_ptr<Admission> admission_;
  std::unordered_map<const void*, std::string> upgrade_users_;
  // Destroyed in reverse: the HTTP worker stops before the engines its
  // answers would resume go, and the engines before the timers they hold.
  loop::Timers timers_;
  loop::Completions completions_;
  std::vector<std::unique_ptr<EndpointRuntime>> endpoints_;
  std::unique_ptr<outbound::HttpClient> http_;
};

}  // namespace wsrelay::server
