// pvo: the Relay of a vhost in a host's lws server, made from the
// per-vhost options of the protocol "wsrelay".
#include "protocol_wsrelay/adapter.hpp"

#include "util/log.hpp"

#include <cjson/cJSON.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

namespace wsrelay::plugin {

// --- plugin mode: a Relay made from the vhost's pvo -------------------------

const char* pvo_value(const lws_protocol_vhost_options* pvo, const char* name) {
  const lws_protocol_vhost_options* found = lws_pvo_search(pvo, name);
  return found != nullptr ? found->value : nullptr;
}

// "script" + "path" [+ "max_message_size"]: a one-endpoint config, validated
// like a config file ("pvo: endpoints[0].script: file not found: ...").
std::optional<config::Config> config_from_script_pvo(const char* script, const char* path, const char* max_size,
                                                     std::vector<std::string>& errors) {
  cJSON* ep = cJSON_CreateObject();
  cJSON_AddStringToObject(ep, "path", path);
  cJSON_AddStringToObject(ep, "script", script);
  if (max_size != nullptr) {
    char* end = nullptr;
    const double n = std::strtod(max_size, &end);
    if (end == max_size || *end != '\0') {
      cJSON_Delete(ep);
      errors.push_back(std::string("pvo: max_message_size: expected an integer, got \"") + max_size + "\"");
      return std::nullopt;
    }
    cJSON_AddNumberToObject(ep, "max_message_size", n);
  }
  std::error_code ec;
  config::LoadResult loaded =
      config::parse_endpoint(ep, "pvo", std::filesystem::current_path(ec).string(), config::process_env());
  if (!loaded.config) {
    errors.insert(errors.end(), loaded.errors.begin(), loaded.errors.end());
    return std::nullopt;
  }
  return loaded.config;
}

std::unique_ptr<VhostState> relay_from_pvo(const lws_protocol_vhost_options* pvo, std::vector<std::string>& errors) {
  const char* config_path = pvo_value(pvo, "config");
  const char* script = pvo_value(pvo, "script");
  const char* path = pvo_value(pvo, "path");
  std::optional<config::Config> cfg;
  if (config_path != nullptr) {
    if (script != nullptr || path != nullptr) {
      errors.push_back("pvo: set either \"config\" or \"script\" + \"path\", not both");
      return nullptr;
    }
    config::LoadResult loaded = config::load_file(config_path, config::process_env());
    if (!loaded.config) {
      errors.insert(errors.end(), loaded.errors.begin(), loaded.errors.end());
      return nullptr;
    }
    cfg = std::move(loaded.config);
  } else if (script != nullptr && path != nullptr) {
    cfg = config_from_script_pvo(script, path, pvo_value(pvo, "max_message_size"), errors);
    if (!cfg) return nullptr;
  } else {
    errors.push_back("pvo: the protocol \"wsrelay\" needs the pvo \"config\" (a wsrelay config file) or "
                     "\"script\" and \"path\"");
    return nullptr;
  }
  config::register_secrets(*cfg);
  // The host owns listeners, protocols and the loop.
  if (cfg->watch_scripts) log::warn("pvo config: watch_scripts is ignored in a plugin (no file watch)");
  for (const auto& l : cfg->listeners) {
    if (!l.protocols.empty()) log::warn("pvo config: listen.protocols is ignored in a plugin (the host lists protocols)");
  }
  auto state = std::make_unique<VhostState>();
  if (server::PluginSet::needed(*cfg, /*with_protocols=*/false)) {
    state->plugins = server::PluginSet::load(*cfg, errors);
    if (!state->plugins) return nullptr;
  }
  state->owned = server::Relay::create(*cfg, errors, state->plugins.get());
  if (!state->owned) return nullptr;
  state->relay = state->owned.get();
  return state;
}

}  // namespace wsrelay::plugin
