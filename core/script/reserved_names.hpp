// reserved_names: the names under `relay` that belong to the relay itself —
// those it has and those already promised to coming API areas — so an
// extension module (also reachable as relay.<name>) can never take one and
// later be shadowed, or shadow a call every script relies on.
// docs/plugins.md lists them; test_reserved_names checks that every field of
// a script's `relay` table is here.
#pragma once

#include <algorithm>
#include <iterator>
#include <string_view>

namespace wsrelay::script {

inline constexpr std::string_view kReservedRelayNames[] = {
    // today's relay table
    "auth", "channel_options", "channels", "config", "endpoint", "history", "json", "log", "next_seq", "now",
    "null", "options", "presence", "presence_stats", "publish", "secure_compare", "send", "session", "sessions",
    "stats", "subscribers", "time",
    // promised: scripts that reach the outside (timers, HTTP), handshake data, channel engines
    "after", "every", "http", "timer", "upgrade", "headers", "engine", "redis", "broker", "cluster", "node",
};

inline bool is_reserved_relay_name(std::string_view name) {
  return std::find(std::begin(kReservedRelayNames), std::end(kReservedRelayNames), name) != std::end(kReservedRelayNames);
}

}  // namespace wsrelay::script
