#include "server/relay.hpp"

#include "util/log.hpp"
#include "util/memory.hpp"

#include <algorithm>
#include <optional>

#include <fstream>
#include <sstream>

extern const unsigned char wsrelay_embedded_standard_script[];
extern const std::size_t wsrelay_embedded_standard_script_size;

namespace wsrelay::server {

std::string builtin_standard_script() {
  return std::string(reinterpret_cast<const char*>(wsrelay_embedded_standard_script),
                     wsrelay_embedded_standard_script_size);
}

namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  out = buffer.str();
  return !in.bad();
}

}  // namespace

bool uses_jwt(const config::Config& config) {
  for (const auto& ep : config.endpoints) {
    std::string code;
    if (ep.script_path.empty()) {
      code = builtin_standard_script();
    } else if (!read_file(ep.script_path, code)) {
      continue;
    }
    if (code.find("jwt") != std::string::npos) return true;
  }
  return false;
}

// The built-in extensions, then those the config names (options applied).
static std::optional<std::vector<extension::Enabled>> enabled_extensions(const config::Config& config,
                                                                  const extension::Catalog* plugins,
                                                                  std::vector<std::string>& errors) {
  std::vector<extension::Enabled> enabled = extension::builtins();
  bool ok = true;
  for (const auto& e : config.extensions) {
    auto builtin = std::find_if(enabled.begin(), enabled.end(),
                                [&](const extension::Enabled& b) { return extension::name_of(*b.plugin) == e.name; });
    if (builtin != enabled.end()) {
      builtin->options_json = e.options_json;
      continue;
    }
    const wsrelay_plugin* plugin = plugins != nullptr ? plugins->extension(e.name) : nullptr;
    if (plugin == nullptr) {
      errors.push_back(extension::plugin_not_found(
          config.source + ": " + e.key_path, "extension plugin named", e.name,
          plugins != nullptr ? plugins->describe_dirs() : std::string("plugins not loaded"),
          plugins != nullptr ? plugins->extension_names() : std::vector<std::string>{}, "extension plugins found"));
      ok = false;
      continue;
    }
    enabled.push_back({plugin, e.options_json});
  }
  if (!ok) return std::nullopt;
  return enabled;
}

std::unique_ptr<Relay> Relay::create(const config::Config& config, std::vector<std::string>& errors,
                                     const extension::Catalog* plugins) {
  const auto extensions = enabled_extensions(config, plugins, errors);
  if (!extensions) return nullptr;
  std::unique_ptr<Relay> relay(new Relay());
  relay->hub_.set_stats(&relay->stats_);
  relay->config_ = config;
  relay->http_ = std::make_unique<outbound::HttpClient>(relay->completions_);
  relay->hub_.configure(pubsub::ChannelRules(config.channel_options), config.limits.history_memory_mb << 20);
  relay->admission_ = std::make_unique<Admission>(config.limits);
  const std::size_t errors_before = errors.size();
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    const config::Endpoint& ep = config.endpoints[i];
    script::ScriptSource source;
    if (ep.script_path.empty()) {
      source.name = "standard.lua";
      source.code = builtin_standard_script();
    } else {
      source.name = ep.script_name;
      if (!read_file(ep.script_path, source.code)) {
        errors.push_back(config.source + ": endpoints[" + std::to_string(i) + "].script: cannot read " +
                         ep.script_path);
        continue;
      }
    }
    script::ScriptContext context;
    context.hub = &relay->hub_;
    context.registry = &relay->registry_;
    context.stats = &relay->stats_;
    context.jwt.secret = config.jwt.secret;
    context.jwt.leeway_s = config.jwt.leeway_s;
    context.jwt.audience = config.jwt.audience;
    context.jwt.issuer = config.jwt.issuer;
    context.heartbeat_interval_s = config.heartbeat.interval_s;
    context.heartbeat_timeout_s = config.heartbeat.timeout_s;
    context.max_message_size = ep.max_message_size;
    context.endpoint = ep.path;
    context.options_json = ep.options_json.empty() ? "{}" : ep.options_json;
    context.extensions = *extensions;
    context.max_subscriptions = config.limits.max_subscriptions;
    context.max_channel_length = config.limits.max_channel_length;
    context.timers = &relay->timers_;
    context.http = relay->http_.get();
    context.max_timers = config.limits.script_timers;
    context.max_http_requests = config.limits.http_requests;
    context.http_timeout_s = config.limits.http_timeout_s;
    context.max_http_response_bytes = config.limits.http_response_bytes;
    context.max_waiting_messages = static_cast<std::size_t>(config.limits.waiting_messages);
    script::Limits limits;
    limits.instructions_per_call = config.limits.script_instructions;
    limits.memory_bytes = config.limits.script_memory_mb << 20;
    auto loaded = script::ScriptEngine::load(source, std::move(context), limits);
    if (!loaded.engine) {
      errors.push_back(loaded.error);
      continue;
    }
    relay->endpoints_.push_back(std::make_unique<EndpointRuntime>(
        EndpointRuntime{ep, http::PathPattern(ep.path), std::move(loaded.engine), 0}));
  }
  if (errors.size() != errors_before) return nullptr;
  return relay;
}

int Relay::reload_scripts() {
  int failures = 0;
  for (auto& ep : endpoints_) {
    if (ep->config.script_path.empty()) continue;  // the built-in script cannot change
    script::ScriptSource source{ep->config.script_name, {}};
    if (!read_file(ep->config.script_path, source.code)) {
      log::error("reload: cannot read " + ep->config.script_path + "; keeping the running version");
      ++failures;
      continue;
    }
    const std::string error = ep->engine->reload(source);
    if (error.empty()) {
      log::info("reloaded " + source.name + " for " + ep->config.path);
    } else {
      log::error("reload failed, keeping the running version: " + error);
      ++failures;
    }
  }
  return failures;
}

bool Relay::give_back_after_burst() {
  if (!util::burst_over(registry_.peak(), registry_.size())) return false;
  for (auto& ep : endpoints_) ep->engine->collect_garbage();
  registry_.give_back();
  util::trim_heap();
  return true;
}

EndpointRuntime* Relay::match(std::string_view path, http::PathPattern::Params& params) {
  for (auto& ep : endpoints_) {
    if (!ep->pattern.has_placeholders() && ep->pattern.text() == path) return ep.get();
  }
  for (auto& ep : endpoints_) {
    if (ep->pattern.has_placeholders() && ep->pattern.match(path, params)) return ep.get();
  }
  return nullptr;
}

void Relay::run_timers(std::int64_t now_ms) {
  for (const loop::Timers::Due& due : timers_.take_due(now_ms)) {
    for (auto& ep : endpoints_) {
      if (ep->engine.get() == due.owner) {
        ep->engine->fire_timer(due.id, due.repeating);
        break;
      }
    }
  }
}

}  // namespace wsrelay::server
