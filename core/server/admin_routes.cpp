// /admin/*: what an operator may do over HTTP, behind the admin token.
#include "server/http_routes.hpp"

#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "server/relay.hpp"

#include <algorithm>
#include <cctype>

namespace wsrelay::server {

using http::Request;
using http::Response;

namespace {

std::string header_of(const Request& request, std::string_view name) {
  for (const auto& [n, v] : request.headers) {
    if (n == name) return v;
  }
  return {};
}

// "Bearer <token>", the scheme in any case (RFC 7235 §2.1: schemes are
// case-insensitive; "bearer x" is what some clients send).
bool is_bearer(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
  }
  return true;
}

// Constant time over the longer input, so the comparison leaks no prefix.
bool same_secret(std::string_view a, std::string_view b) {
  const std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// A close reason fits in 123 bytes (RFC 6455 5.5: control frames carry at
// most 125, two of them the code) and must stay valid UTF-8: cut before a
// continuation byte, never inside a character.
std::string close_reason_prefix(std::string_view reason) {
  constexpr std::size_t kMax = 123;
  if (reason.size() <= kMax) return std::string(reason);
  std::size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
  return std::string(reason.substr(0, cut));
}

Response json_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

std::string sessions_json(Relay& relay) {
  std::string out = "{\"sessions\":[";
  bool first = true;
  relay.registry().for_each([&](session::Session& s) {
    if (!first) out += ",";
    first = false;
    out += "{\"id\":";
    json::append_json_string(out, s.id());
    out += ",\"user\":";
    if (s.user()) json::append_json_string(out, *s.user()); else out += "null";
    out += ",\"endpoint\":";
    json::append_json_string(out, s.info().endpoint);
    out += ",\"path\":";
    json::append_json_string(out, s.info().path);
    out += ",\"remote\":";
    json::append_json_string(out, s.info().remote);
    out += ",\"subscriptions\":[";
    bool first_channel = true;
    for (const auto& channel : s.channels()) {
      if (!first_channel) out += ",";
      first_channel = false;
      json::append_json_string(out, channel);
    }
    out += "],\"messages_in\":" + std::to_string(s.messages_in) +
           ",\"messages_out\":" + std::to_string(s.messages_out) +
           ",\"queued_bytes\":" + std::to_string(s.queued_bytes()) +
           ",\"upstream\":";
    if (s.upstream != nullptr) json::append_json_string(out, s.upstream->upstream_state()); else out += "null";
    out += "}";
  });
  out += "]}";
  return out;
}

}  // namespace

// /admin/*: operator actions, behind WSRELAY_ADMIN_TOKEN (or config
// admin_token). Without a configured token every call is refused.
http::Response admin_route(Relay& relay, const http::Request& request) {
  const std::string& token = relay.config().admin_token;
  const std::string given = header_of(request, "authorization");
  if (token.empty() || !is_bearer(given) || !same_secret(given.substr(7), token)) {
    Response r = json_response(401, R"({"error":"unauthorized","message":"admin routes need Authorization: Bearer <WSRELAY_ADMIN_TOKEN>"})");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  if (request.path == "/admin/sessions" && (request.method == "GET" || request.method == "HEAD")) {
    return json_response(200, sessions_json(relay));
  }
  if (request.method != "POST" || (request.path != "/admin/broadcast" && request.path != "/admin/disconnect")) {
    return json_response(404, R"({"error":"not_found"})");
  }
  json::JsonPtr body = json::parse(request.body);
  if (body == nullptr || !cJSON_IsObject(body.get())) {
    return json_response(400, R"({"error":"bad_request","message":"the body must be a JSON object"})");
  }
  if (request.path == "/admin/broadcast") {
    const cJSON* channel = cJSON_GetObjectItemCaseSensitive(body.get(), "channel");
    const cJSON* message = cJSON_GetObjectItemCaseSensitive(body.get(), "message");
    if (!cJSON_IsString(channel) || channel->valuestring[0] == '\0' || message == nullptr) {
      return json_response(400, R"({"error":"bad_request","message":"expected {\"channel\": string, \"message\": any}"})");
    }
    // A string message goes out as its text; anything else as its JSON.
    const std::string text = cJSON_IsString(message) ? std::string(message->valuestring) : json::print(message);
    pubsub::Broker& broker = relay.hub();
    pubsub::PublishOptions options;
    const cJSON* keep = cJSON_GetObjectItemCaseSensitive(body.get(), "history");
    if (keep != nullptr && !cJSON_IsBool(keep)) {
      return json_response(400, R"({"error":"bad_request","message":"\"history\" must be a boolean"})");
    }
    options.history = keep == nullptr || cJSON_IsTrue(keep);
    const pubsub::ChannelOptions* kept = options.history ? broker.channel_options(channel->valuestring) : nullptr;
    if (kept != nullptr && kept->has_history()) {
      if (const char* problem = pubsub::history_message_problem(text)) {
        std::string answer = R"({"error":"bad_request","message":)";
        json::append_json_string(answer, std::string("channel '") + channel->valuestring + "': " + problem +
                                             " (or send \"history\": false)");
        return json_response(400, answer + "}");
      }
    }
    const pubsub::Published published = broker.publish(channel->valuestring, frame::Frame::text(text), options);
    std::string answer = "{\"delivered\":" + std::to_string(published.delivered);
    if (published.seq != 0) answer += ",\"seq\":" + std::to_string(published.seq);
    return json_response(200, answer + "}");
  }
  const cJSON* id = cJSON_GetObjectItemCaseSensitive(body.get(), "session");
  if (!cJSON_IsString(id)) {
    return json_response(400, R"({"error":"bad_request","message":"expected {\"session\": id}"})");
  }
  session::Session* target = relay.registry().find(id->valuestring);
  if (target == nullptr) return json_response(404, R"({"error":"not_found","message":"no such session"})");
  const cJSON* reason = cJSON_GetObjectItemCaseSensitive(body.get(), "reason");
  target->close(1008, cJSON_IsString(reason) ? close_reason_prefix(reason->valuestring)
                                             : std::string("disconnected by an operator"));
  return json_response(200, R"({"disconnected":true})");
}

}  // namespace wsrelay::server
