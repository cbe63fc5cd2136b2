#include "http/routes.hpp"

#include "json/lua_json.hpp"
#include "server/relay.hpp"

#include <chrono>

namespace wsrelay::http {

std::string status_json(server::Relay& relay) {
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
  field(out, "errors_sent", stats.errors_sent);
  field(out, "script_errors", stats.script_errors);
  field(out, "slow_consumer_closes", stats.slow_consumer_closes);
  field(out, "upstream_links", stats.upstream_links);
  field(out, "upstream_connects", stats.upstream_connects);
  field(out, "upstream_failures", stats.upstream_failures);
  field(out, "upstream_messages_in", stats.upstream_messages_in);
  field(out, "upstream_messages_out", stats.upstream_messages_out);
  out += "\"endpoints\":[";
  bool first = true;
  for (const auto& ep : relay.endpoints()) {
    if (!first) out += ",";
    first = false;
    out += "{\"path\":";
    json::append_json_string(out, ep->config.path);
    out += ",\"script\":";
    json::append_json_string(out, ep->engine->name());
    out += ",\"connections\":" + std::to_string(ep->connections) + "}";
  }
  out += "]}";
  return out;
}

bool is_script_route(server::Relay& relay, std::string_view method, std::string_view path) {
  for (const auto& ep : relay.endpoints()) {
    if (ep->engine->has_http_route(method, path)) return true;
  }
  return false;
}

Response handle(server::Relay& relay, const Request& request) {
  const std::string_view method = request.method;
  const std::string_view path = request.path;
  // Script routes first: a dialect may answer its own paths (and methods).
  for (const auto& ep : relay.endpoints()) {
    if (ep->engine->has_http_route(method, path)) return ep->engine->handle_http(request);
  }
  Response r;
  if (method != "GET" && method != "HEAD") {
    r.status = 405;
    r.body = "method not allowed\n";
    return r;
  }
  if (path == "/healthz") {
    r.status = 200;
    r.body = "ok";
  } else if (path == "/status") {
    r.status = 200;
    r.content_type = "application/json";
    r.body = status_json(relay);
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  return r;
}

}  // namespace wsrelay::http
