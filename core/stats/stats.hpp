// stats: process-wide counters shown by /status (and later /metrics).
// Plain integers: every writer runs on the one lws service thread.
#pragma once

#include "stats/type_counters.hpp"
#include "util/histogram.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace wsrelay::stats {

struct Stats {
  Stats() = default;
  // Not copyable: the type counters cache pointers into their maps.
  Stats(const Stats&) = delete;
  Stats& operator=(const Stats&) = delete;

  std::uint64_t connections = 0;        // open WebSocket sessions now
  std::uint64_t connections_total = 0;  // accepted since start
  std::uint64_t messages_in = 0;        // complete messages received
  std::uint64_t messages_out = 0;       // messages queued to clients
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t errors_sent = 0;        // error replies (any code)
  std::uint64_t script_errors = 0;      // handler failures (script_error)
  std::uint64_t script_timeouts = 0;    // handler calls cut off by the instruction budget
  // Messages in by the type that routed them. Only types a script handles
  // get their own entry ("unknown" otherwise), so clients cannot grow it;
  // the bound is a backstop.
  TypeCounters messages_by_type{kMaxInTypes, "other"};
  static constexpr std::size_t kMaxInTypes = 1024;
  // Messages queued to clients by their "type": read from text frames that
  // begin {"type":"…" (every JSON object wsrelay encodes puts "type" first,
  // and upstream events mostly do too), "other" for the rest, "binary" for
  // binary frames. At most kMaxOutTypes entries: a script echoing client
  // types cannot grow it without bound.
  TypeCounters messages_out_by_type{kMaxOutTypes, "other"};
  static constexpr std::size_t kMaxOutTypes = 64;
  void count_out_type(std::string_view payload, bool binary, std::uint64_t messages = 1) {
    std::string_view type = binary ? std::string_view("binary") : std::string_view("other");
    constexpr std::string_view kLead = "{\"type\":\"";
    if (!binary && payload.size() > kLead.size() && payload.substr(0, kLead.size()) == kLead) {
      const std::size_t end = payload.find('"', kLead.size());
      // Names with escapes, empty or long ones are not worth a series.
      if (end != std::string_view::npos && end > kLead.size() && end - kLead.size() <= 64 &&
          payload.substr(kLead.size(), end - kLead.size()).find('\\') == std::string_view::npos) {
        type = payload.substr(kLead.size(), end - kLead.size());
      }
    }
    messages_out_by_type.add(type, messages);
  }
  std::uint64_t slow_consumer_closes = 0;
  std::uint64_t frames_dropped = 0;          // shed by the drop_oldest policy
  std::uint64_t rate_limited = 0;            // messages refused by a rate limit
  std::uint64_t refused_connections = 0;     // upgrades refused (limits, origin)
  std::uint64_t upstream_links = 0;          // upstream links open or connecting now
  std::uint64_t upstream_connects = 0;       // connection attempts since start
  std::uint64_t upstream_failures = 0;       // attempts that failed or links that dropped
  std::uint64_t upstream_messages_in = 0;    // messages received from upstreams
  std::uint64_t upstream_messages_out = 0;   // messages sent to upstreams
  // TCP accept to WebSocket established, in seconds (wsrelay_handshake_duration_seconds).
  util::Histogram<13> handshake_seconds{
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

}  // namespace wsrelay::stats
