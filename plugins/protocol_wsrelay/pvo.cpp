// pvo: the Relay of a vhost in a host's lws server, made from the
// per-vhost options of the protocol "wsrelay" (core/config/host_options).
#include "protocol_wsrelay/adapter.hpp"

#include "config/host_options.hpp"
#include "util/log.hpp"

namespace wsrelay::plugin {

std::unique_ptr<VhostState> relay_from_pvo(const lws_protocol_vhost_options* pvo, std::vector<std::string>& errors) {
  auto option = [pvo](const char* name) -> const char* {
    const lws_protocol_vhost_options* found = lws_pvo_search(pvo, name);
    return found != nullptr ? found->value : nullptr;
  };
  config::HostLoad host = config::from_host_options(option, config::process_env());
  if (!host.loaded.config) {
    errors.insert(errors.end(), host.loaded.errors.begin(), host.loaded.errors.end());
    return nullptr;
  }
  const config::Config& cfg = *host.loaded.config;
  config::register_secrets(cfg);
  for (const std::string& w : host.warnings) log::warn(w);
  auto state = std::make_unique<VhostState>();
  if (server::PluginSet::needed(cfg, /*with_protocols=*/false)) {
    state->plugins = server::PluginSet::load(cfg, errors);
    if (!state->plugins) return nullptr;
  }
  state->owned = server::Relay::create(cfg, errors, state->plugins.get());
  if (!state->owned) return nullptr;
  state->relay = state->owned.get();
  return state;
}

}  // namespace wsrelay::plugin
