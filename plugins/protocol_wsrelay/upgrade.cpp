// upgrade: whether a WebSocket upgrade is served, answered before lws
// completes it; and the handshake clock.
#include "protocol_wsrelay/adapter.hpp"

#include "server/admission.hpp"
#include "upstream/upstream_client.hpp"
#include "util/log.hpp"

#include <cstring>

namespace wsrelay::plugin {

int refuse_upgrade(lws* wsi, unsigned int status, const char* why, const std::string& detail) {
  if (server::Relay* relay = relay_of(wsi)) ++relay->stats().refused_connections;
  log::info("refused WebSocket upgrade: " + detail + " from " + peer_address(wsi));
  // Written by hand: lws_return_http_status answers an upgrade request with an
  // HTTP/1.0 status line, which WebSocket clients reject as malformed instead
  // of reporting the status.
  const char* reason = status == 400   ? "Bad Request"
                       : status == 403 ? "Forbidden"
                       : status == 404 ? "Not Found"
                                       : "Service Unavailable";
  const std::string body = std::string(why) + "\n";
  std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                         "\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: " +
                         std::to_string(body.size()) + "\r\nconnection: close\r\n\r\n" + body;
  std::string buffer(LWS_PRE, '\0');
  buffer += response;
  lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE, response.size(), LWS_WRITE_HTTP_HEADERS);
  return 1;
}

// lws picks a WebSocket protocol by the client's Sec-WebSocket-Protocol, yet
// asks the vhost's first protocol (the relay, in the wsrelay binary) to
// confirm every upgrade. Returns the protocol the client's list binds: lws
// binds the first one of the list that the vhost knows (so do we), or null
// when it names none (then the relay serves it). named: whether the client
// asked for any subprotocol at all.
const lws_protocols* chosen_protocol(lws* wsi, bool& named) {
  const std::string list = header(wsi, WSI_TOKEN_PROTOCOL);
  named = !list.empty();
  std::size_t at = 0;
  while (at < list.size()) {
    std::size_t end = list.find(',', at);
    if (end == std::string::npos) end = list.size();
    std::string name = list.substr(at, end - at);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    at = end + 1;
    if (const lws_protocols* p = lws_vhost_name_to_protocol(lws_get_vhost(wsi), name.c_str())) return p;
  }
  return nullptr;
}

int on_confirm_upgrade(lws* wsi) {
  bool named = false;
  const lws_protocols* other = chosen_protocol(wsi, named);
  if (other == nullptr && named) {
    // lws would drop the connection without a word ("no supported protocol").
    return refuse_upgrade(wsi, HTTP_STATUS_BAD_REQUEST, "no supported subprotocol",
                          "no subprotocol of '" + header(wsi, WSI_TOKEN_PROTOCOL).substr(0, 64) + "' is served");
  }
  if (other != nullptr && std::strcmp(other->name, kProtocolName) != 0) {
    // The upstream links' protocol is the client side of the relay's own
    // connections: it serves no client (bound to one, lws would hand its
    // callback a server connection). Refused here with an answer; its own
    // callback refuses too, for hosts where the relay is not asked first.
    if (std::strcmp(other->name, upstream::kUpstreamProtocolName) == 0) {
      return refuse_upgrade(wsi, HTTP_STATUS_BAD_REQUEST, "subprotocol not served",
                            std::string("subprotocol '") + other->name + "' requested");
    }
    // Another protocol of this vhost (a plugin's): its own to accept or
    // refuse, the relay's paths do not apply to it.
    return 0;
  }
  server::Relay* relay = relay_of(wsi);
  if (relay == nullptr) return -1;
  const std::string path = header(wsi, WSI_TOKEN_GET_URI);
  http::PathPattern::Params params;
  server::EndpointRuntime* endpoint = relay->match(path, params);
  if (endpoint == nullptr) {
    return refuse_upgrade(wsi, HTTP_STATUS_NOT_FOUND, "no WebSocket endpoint at this path", "unknown path " + path);
  }
  // Cross-site WebSocket hijacking: a browser page from another site would
  // carry its own Origin; only the configured ones may open a session.
  const std::string origin = header(wsi, WSI_TOKEN_ORIGIN);
  if (!server::Admission::origin_allowed(endpoint->config.allowed_origins, origin, header(wsi, WSI_TOKEN_HOST))) {
    return refuse_upgrade(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed",
                          "origin '" + origin + "' not allowed on " + endpoint->config.path);
  }
  switch (relay->admission().check(peer_address(wsi), relay->stats().connections)) {
    case server::Admission::Verdict::Admit: return 0;
    case server::Admission::Verdict::TooManyConnections:
      return refuse_upgrade(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "too many connections", "max_connections reached");
    case server::Admission::Verdict::TooManyFromAddress:
      return refuse_upgrade(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "too many connections from this address",
                            "max_connections_per_ip reached");
  }
  return 0;
}

// The handshake clock: a connection's accept time rides in its wsi's opaque
// slot, as a number of microseconds (not a pointer: nothing to free). lws
// hands every accepted connection to the vhost's first protocol right after
// accept() (SERVER_NEW_CLIENT_INSTANTIATED, before TLS and HTTP), the
// earliest callback where the slot can be written: lws resets it after
// WSI_CREATE. In an lws host where the relay is not the first protocol no
// stamp is made and no handshake is timed.
std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

void stamp_accept(lws* wsi) {
  if (lws_get_opaque_user_data(wsi) != nullptr) return;  // someone else's
  lws_set_opaque_user_data(wsi, reinterpret_cast<void*>(static_cast<std::uintptr_t>(now_us())));
}

// Seconds since the accept stamp, once (the stamp is cleared); -1 without one.
double take_handshake_seconds(lws* wsi) {
  const auto stamp = reinterpret_cast<std::uintptr_t>(lws_get_opaque_user_data(wsi));
  if (stamp == 0) return -1;
  lws_set_opaque_user_data(wsi, nullptr);
  const std::int64_t elapsed = now_us() - static_cast<std::int64_t>(stamp);
  return elapsed < 0 ? 0.0 : static_cast<double>(elapsed) / 1e6;
}

}  // namespace wsrelay::plugin
