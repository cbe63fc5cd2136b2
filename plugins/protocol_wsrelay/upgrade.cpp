// upgrade: whether a WebSocket upgrade is served, answered before lws
// completes it; and the handshake clock.
#include "protocol_wsrelay/adapter.hpp"

#include "server/admission.hpp"
#include "upstream/upstream_client.hpp"
#include "util/log.hpp"

#include <cstring>

namespace wsrelay::plugin {

int refuse_upgrade(lws* wsi, int status, const std::string& why, const std::string& detail,
                   const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  if (server::Relay* relay = relay_of(wsi)) ++relay->stats().refused_connections;
  log::info("refused WebSocket upgrade: " + detail + " from " + peer_address(wsi));
  return write_refusal(wsi, status, why, headers);
}

// lws picks a WebSocket protocol by the client's Sec-WebSocket-Protocol, yet
// asks the vhost's first protocol (the relay, in the wsrelay binary) to
// confirm every upgrade. Returns the protocol the client's list binds: lws
// binds the first one of the list that the vhost knows (so do we), or null
// when it names none.
const lws_protocols* chosen_protocol(lws* wsi, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (const lws_protocols* p = lws_vhost_name_to_protocol(lws_get_vhost(wsi), name.c_str())) return p;
  }
  return nullptr;
}

int on_confirm_upgrade(lws* wsi) {
  const http::RequestHead head = read_head(wsi);
  if (auto refusal = http::check_framing(head)) {
    return refuse_upgrade(wsi, refusal->status, refusal->reason, refusal->reason);
  }
  if (auto refusal = http::check_upgrade(head)) {
    return refuse_upgrade(wsi, refusal->status, refusal->reason, refusal->reason, refusal->headers);
  }
  const std::string list = header(wsi, WSI_TOKEN_PROTOCOL);
  const auto names = http::subprotocols(list);
  if (!names) {
    return refuse_upgrade(wsi, HTTP_STATUS_BAD_REQUEST, "invalid Sec-WebSocket-Protocol",
                          "Sec-WebSocket-Protocol '" + list.substr(0, 64) + "' is no list of tokens");
  }
  const lws_protocols* other = chosen_protocol(wsi, *names);
  // Asked for subprotocols (even an empty list) and none is served: lws
  // would drop the connection without a word ("no supported protocol").
  if (other == nullptr && !list.empty()) {
    return refuse_upgrade(wsi, HTTP_STATUS_BAD_REQUEST, "no supported subprotocol",
                          "no subprotocol of '" + list.substr(0, 64) + "' is served");
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
