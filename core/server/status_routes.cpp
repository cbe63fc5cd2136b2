// GET /status and GET /metrics: the relay's counters as JSON and as
// Prometheus text.
#include "server/http_routes.hpp"

#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "server/relay.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace wsrelay::server {

std::string status_json(Relay& relay) {
  const auto& stats = relay.stats();
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now() - stats.started).count();
  auto field = [](std::string& out, const char* name, std::uint64_t value) {
    out += "\"";
    out += name;
    out += "\":";
    out += std::to_string(value);
    out += ",";
  };
  std::string out = "{";
  out += "\"version\":\"" WSRELAY_VERSION "\",";
  field(out, "uptime_s", static_cast<std::uint64_t>(uptime));
  field(out, "connections", stats.connections);
  field(out, "connections_total", stats.connections_total);
  field(out, "channels", relay.hub().channel_count());
  field(out, "subscriptions", relay.hub().subscription_count());
  field(out, "messages_in", stats.messages_in);
  field(out, "messages_out", stats.messages_out);
  field(out, "bytes_in", stats.bytes_in);
  field(out, "bytes_out", stats.bytes_out);
  field(out, "deliveries", relay.hub().deliveries());
  {
    // Channel memory (channel_options): kept history, presence, recoveries.
    const pubsub::History& h = relay.hub().history_store();
    out += "\"history\":{";
    field(out, "channels", h.stream_count());
    field(out, "bytes", h.bytes());
    field(out, "publications", h.publications());
    field(out, "memory_limit_bytes", h.memory_limit());
    field(out, "dropped_for_memory", h.dropped_for_memory());
    out.back() = '}';
    out += ",";
    field(out, "presence_entries", relay.hub().presence_entries());
    out += "\"recoveries\":{";
    field(out, "recovered", relay.hub().recoveries(true));
    field(out, "not_recovered", relay.hub().recoveries(false));
    out.back() = '}';
    out += ",";
  }
  {
    // Reach: the scripts' timers and outbound HTTP.
    field(out, "timers", relay.timers().size());
    const outbound::HttpClient& http = relay.http();
    out += "\"http\":{";
    field(out, "in_flight", http.in_flight());
    field(out, "requests", http.counters().requests);
    field(out, "failures", http.counters().failures);
    field(out, "timeouts", http.counters().timeouts);
    out.back() = '}';
    out += ",";
  }
  field(out, "errors_sent", stats.errors_sent);
  field(out, "script_errors", stats.script_errors);
  field(out, "slow_consumer_closes", stats.slow_consumer_closes);
  field(out, "frames_dropped", stats.frames_dropped);
  field(out, "rate_limited", stats.rate_limited);
  field(out, "refused_connections", stats.refused_connections);
  field(out, "upstream_links", stats.upstream_links);
  field(out, "upstream_connects", stats.upstream_connects);
  field(out, "upstream_failures", stats.upstream_failures);
  field(out, "upstream_messages_in", stats.upstream_messages_in);
  field(out, "upstream_messages_out", stats.upstream_messages_out);
  const config::Limits& l = relay.config().limits;
  char limits[1024];
  std::snprintf(limits, sizeof limits,
                "\"limits\":{\"max_connections\":%d,\"max_connections_per_ip\":%d,\"messages_per_second\":%g,"
                "\"message_burst\":%d,\"user_messages_per_second\":%g,\"ip_messages_per_second\":%g,"
                "\"rate_limit_close_after\":%d,\"max_subscriptions\":%d,\"max_channel_length\":%d,"
                "\"max_queue_bytes\":%zu,\"slow_consumer\":\"%s\",\"handshake_timeout\":%d,"
                "\"script_instructions\":%llu,\"script_memory_mb\":%zu,\"heartbeat_interval\":%d,"
                "\"heartbeat_timeout\":%d,\"max_http_header_data\":%d,\"history_memory_mb\":%zu,"
                "\"script_timers\":%d,\"http_requests\":%d,\"http_timeout\":%d,\"http_response_bytes\":%zu,"
                "\"waiting_messages\":%d,",
                l.max_connections, l.max_connections_per_ip, l.messages_per_second, l.message_burst,
                l.user_messages_per_second, l.ip_messages_per_second, l.rate_limit_close_after, l.max_subscriptions,
                l.max_channel_length, l.max_queue_bytes, l.slow_consumer.c_str(), l.handshake_timeout_s,
                static_cast<unsigned long long>(l.script_instructions), l.script_memory_mb,
                relay.config().heartbeat.interval_s, relay.config().heartbeat.timeout_s, l.max_http_header_data,
                l.history_memory_mb, l.script_timers, l.http_requests, l.http_timeout_s, l.http_response_bytes,
                l.waiting_messages);
  out += limits;
  out += "\"message_types\":{";
  for (std::size_t i = 0; i < l.message_types.size(); ++i) {
    if (i != 0) out += ",";
    json::append_json_string(out, l.message_types[i].type);
    char rate[96];
    std::snprintf(rate, sizeof rate, ":{\"per_second\":%g,\"burst\":%d}", l.message_types[i].per_second,
                  l.message_types[i].burst);
    out += rate;
  }
  out += "}},";
  out += "\"endpoints\":[";
  bool first = true;
  for (const auto& ep : relay.endpoints()) {
    if (!first) out += ",";
    first = false;
    out += "{\"path\":";
    json::append_json_string(out, ep->config.path);
    out += ",\"script\":";
    json::append_json_string(out, ep->engine->name());
    out += ",\"connections\":" + std::to_string(ep->connections) +
           ",\"max_message_size\":" + std::to_string(ep->config.max_message_size) + "}";
  }
  out += "]}";
  return out;
}


namespace {
// Prometheus label values escape only backslash, double quote and newline.
void append_label(std::string& out, std::string_view value) {
  out.push_back('"');
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  out.push_back('"');
}
}  // namespace

std::string metrics_text(Relay& relay) {
  const stats::Stats& st = relay.stats();
  std::string out;
  out.reserve(4096);
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    out += "# HELP ";
    out += name;
    out += " ";
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += " ";
    out += type;
    out += "\n";
    out += name;
    char buf[48];
    std::snprintf(buf, sizeof buf, " %.17g\n", value);
    out += buf;
  };
  auto u = [](std::uint64_t v) { return static_cast<double>(v); };
  const auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - st.started).count();
  metric("wsrelay_uptime_seconds", "gauge", "Seconds since the relay started.", static_cast<double>(uptime) / 1000.0);
  metric("wsrelay_connections", "gauge", "Open WebSocket sessions.", u(st.connections));
  metric("wsrelay_connections_total", "counter", "WebSocket sessions accepted.", u(st.connections_total));
  metric("wsrelay_refused_connections_total", "counter", "Upgrades refused (limits, origin).", u(st.refused_connections));
  metric("wsrelay_messages_in_total", "counter", "Complete messages received from clients.", u(st.messages_in));
  metric("wsrelay_messages_out_total", "counter", "Messages queued to clients.", u(st.messages_out));
  metric("wsrelay_bytes_in_total", "counter", "Bytes received from clients.", u(st.bytes_in));
  metric("wsrelay_bytes_out_total", "counter", "Bytes queued to clients.", u(st.bytes_out));
  metric("wsrelay_channels", "gauge", "Channels with at least one subscriber.", u(relay.hub().channel_count()));
  metric("wsrelay_subscriptions", "gauge", "Channel subscriptions.", u(relay.hub().subscription_count()));
  metric("wsrelay_publish_deliveries_total", "counter", "Deliveries made by channel publishes (fan-out).", u(relay.hub().deliveries()));
  const pubsub::History& history = relay.hub().history_store();
  metric("wsrelay_history_channels", "gauge", "Channels whose stream is kept (channel_options history).", u(history.stream_count()));
  metric("wsrelay_history_bytes", "gauge", "Bytes of kept history, overhead included (limits.history_memory_mb bounds it).", u(history.bytes()));
  metric("wsrelay_history_publications", "gauge", "Publications kept in history.", u(history.publications()));
  metric("wsrelay_history_streams_dropped_total", "counter", "Streams dropped whole to hold limits.history_memory_mb.", u(history.dropped_for_memory()));
  metric("wsrelay_presence_entries", "gauge", "Subscriptions of channels with presence.", u(relay.hub().presence_entries()));
  out += "# HELP wsrelay_recoveries_total Subscribes with since, by outcome.\n# TYPE wsrelay_recoveries_total counter\n";
  out += "wsrelay_recoveries_total{result=\"recovered\"} " + std::to_string(relay.hub().recoveries(true)) + "\n";
  out += "wsrelay_recoveries_total{result=\"not_recovered\"} " + std::to_string(relay.hub().recoveries(false)) + "\n";
  metric("wsrelay_timers", "gauge", "Live script timers (relay.after, relay.every).", u(relay.timers().size()));
  metric("wsrelay_http_requests_in_flight", "gauge", "Script HTTP requests waiting for their answer.", u(relay.http().in_flight()));
  metric("wsrelay_http_requests_total", "counter", "Script HTTP requests started.", u(relay.http().counters().requests));
  metric("wsrelay_http_failures_total", "counter", "Script HTTP requests that got no answer (timeouts included).", u(relay.http().counters().failures));
  metric("wsrelay_http_timeouts_total", "counter", "Script HTTP requests that timed out.", u(relay.http().counters().timeouts));
  metric("wsrelay_errors_sent_total", "counter", "Error replies sent to clients.", u(st.errors_sent));
  metric("wsrelay_script_errors_total", "counter", "Script handler failures.", u(st.script_errors));
  metric("wsrelay_script_timeouts_total", "counter", "Script calls cut off by the instruction budget.", u(st.script_timeouts));
  metric("wsrelay_rate_limited_total", "counter", "Messages refused by a rate limit.", u(st.rate_limited));
  metric("wsrelay_queue_drops_total", "counter", "Outbound frames dropped by the drop_oldest policy.", u(st.frames_dropped));
  metric("wsrelay_slow_consumer_disconnects_total", "counter", "Sessions closed because their outbound queue was full.", u(st.slow_consumer_closes));
  metric("wsrelay_upstream_links", "gauge", "Upstream links open or connecting.", u(st.upstream_links));
  metric("wsrelay_upstream_connects_total", "counter", "Upstream connection attempts.", u(st.upstream_connects));
  metric("wsrelay_upstream_failures_total", "counter", "Upstream links that failed to open or dropped.", u(st.upstream_failures));
  metric("wsrelay_upstream_messages_in_total", "counter", "Messages received from upstreams.", u(st.upstream_messages_in));
  metric("wsrelay_upstream_messages_out_total", "counter", "Messages sent to upstreams.", u(st.upstream_messages_out));
  // A counter family with one series per message type.
  auto by_type = [&](const char* name, const char* help, const std::map<std::string, std::uint64_t, std::less<>>& counts) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
    for (const auto& [type, count] : counts) {
      out += name;
      out += "{type=";
      append_label(out, type);
      out += "} " + std::to_string(count) + "\n";
    }
  };
  by_type("wsrelay_messages_by_type_total", "Client messages by the handler type that routed them.",
          st.messages_by_type.map());
  by_type("wsrelay_messages_out_by_type_total",
          "Messages queued to clients by their type field (other: no leading type; binary: binary frames).",
          st.messages_out_by_type.map());
  {
    // Prometheus histogram: cumulative buckets, then +Inf (= _count), _sum, _count.
    const auto& h = st.handshake_seconds;
    out += "# HELP wsrelay_handshake_duration_seconds Time from TCP accept to WebSocket established.\n"
           "# TYPE wsrelay_handshake_duration_seconds histogram\n";
    char buf[96];
    for (std::size_t i = 0; i < h.size(); ++i) {
      std::snprintf(buf, sizeof buf, "wsrelay_handshake_duration_seconds_bucket{le=\"%g\"} %llu\n", h.bound(i),
                    static_cast<unsigned long long>(h.cumulative(i)));
      out += buf;
    }
    std::snprintf(buf, sizeof buf, "wsrelay_handshake_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                  static_cast<unsigned long long>(h.count()));
    out += buf;
    std::snprintf(buf, sizeof buf, "wsrelay_handshake_duration_seconds_sum %.17g\n", h.sum());
    out += buf;
    std::snprintf(buf, sizeof buf, "wsrelay_handshake_duration_seconds_count %llu\n",
                  static_cast<unsigned long long>(h.count()));
    out += buf;
  }
  out += "# HELP wsrelay_endpoint_connections Open sessions per endpoint.\n"
         "# TYPE wsrelay_endpoint_connections gauge\n";
  for (const auto& ep : relay.endpoints()) {
    out += "wsrelay_endpoint_connections{endpoint=";
    append_label(out, ep->config.path);
    out += "} " + std::to_string(ep->connections) + "\n";
  }
  return out;
}

}  // namespace wsrelay::server
