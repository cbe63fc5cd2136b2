// host_options: a config from the per-vhost options (pvo) an lws host gives
// the relay protocol, checked like a config file. Either "config" (a wsrelay
// config file: its endpoints, "listen" ignored) or "script" + "path" (one
// endpoint, built by parse_endpoint) with an optional "max_message_size".
// The host owns listeners, protocols and the loop: what only a wsrelay
// server uses (watch_scripts, listen.protocols) is warned about in
// LoadResult::warnings.
#pragma once

#include "config/config.hpp"

#include <functional>
#include <string>
#include <vector>

namespace wsrelay::config {

// An option's value, or null when the host did not set it.
using OptionLookup = std::function<const char*(const char* name)>;

struct HostLoad {
  LoadResult loaded;
  std::vector<std::string> warnings;
};

HostLoad from_host_options(const OptionLookup& option, const EnvLookup& env);

}  // namespace wsrelay::config
