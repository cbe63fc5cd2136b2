// upgrade: whether a WebSocket upgrade is served, answered before lws
// completes it; and the handshake clock.
#include "protocol_wsrelay/adapter.hpp"

#include "http/handshake.hpp"
#include "server/upgrade_gate.hpp"
#include "util/log.hpp"

namespace wsrelay::plugin {

namespace {

struct KnownHeader {
  std::string_view name;
  lws_token_indexes token;
};

// http/handshake.hpp's kKnownHandshakeHeaders, by lws token.
constexpr KnownHeader kKnownHeaders[] = {
    {"host", WSI_TOKEN_HOST}, {"origin", WSI_TOKEN_ORIGIN}, {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION}, {"cookie", WSI_TOKEN_HTTP_COOKIE},
    {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR}, {"x-real-ip", WSI_TOKEN_HTTP_X_REAL_IP},
    {"x-auth-token", WSI_TOKEN_X_AUTH_TOKEN}, {"accept-language", WSI_TOKEN_HTTP_ACCEPT_LANGUAGE},
    {"referer", WSI_TOKEN_HTTP_REFERER}, {"sec-websocket-protocol", WSI_TOKEN_PROTOCOL},
    {"accept-encoding", WSI_TOKEN_HTTP_ACCEPT_ENCODING}, {"cache-control", WSI_TOKEN_HTTP_CACHE_CONTROL}};
static_assert(std::size(kKnownHeaders) == std::size(http::kKnownHandshakeHeaders));

}  // namespace

http::Fields handshake_headers(lws* wsi, const std::vector<std::string>& extra) {
  http::Fields out;
  for (const KnownHeader& h : kKnownHeaders) {
    if (lws_hdr_total_length(wsi, h.token) > 0) out.emplace_back(std::string(h.name), header(wsi, h.token));
  }
  for (const std::string& name : extra) {
    if (http::find_field(out, name) != nullptr) continue;  // a known one, listed again
    const std::string key = name + ":";
    const int len = lws_hdr_custom_length(wsi, key.c_str(), static_cast<int>(key.size()));
    if (len < 0) continue;
    std::string value(static_cast<std::size_t>(len) + 1, '\0');
    if (lws_hdr_custom_copy(wsi, value.data(), len + 1, key.c_str(), static_cast<int>(key.size())) < 0) continue;
    value.resize(static_cast<std::size_t>(len));
    out.emplace_back(name, std::move(value));
  }
  return out;
}

int on_confirm_upgrade(lws* wsi) {
  server::Relay* relay = relay_of(wsi);
  server::UpgradeRequest request;
  request.head = read_head(wsi);
  request.protocols = header(wsi, WSI_TOKEN_PROTOCOL);
  request.path = header(wsi, WSI_TOKEN_GET_URI);
  request.origin = header(wsi, WSI_TOKEN_ORIGIN);
  request.host = header(wsi, WSI_TOKEN_HOST);
  request.remote = peer_address(wsi);
  request.query = http::encode_query(header_fragments(wsi, WSI_TOKEN_HTTP_URI_ARGS));
  request.read_headers = [wsi](const std::vector<std::string>& extra) { return handshake_headers(wsi, extra); };
  lws_vhost* vhost = lws_get_vhost(wsi);
  const auto served = [vhost](const std::string& name) { return lws_vhost_name_to_protocol(vhost, name.c_str()) != nullptr; };
  const server::UpgradeVerdict verdict = server::check_upgrade_request(relay, request, served);
  if (verdict.user) relay->note_upgrade_user(wsi, *verdict.user);
  if (verdict.kind != server::UpgradeVerdict::Kind::Refuse) return 0;
  if (relay != nullptr) ++relay->stats().refused_connections;
  log::info("refused WebSocket upgrade: " + verdict.detail + " from " + request.remote);
  write_refusal(wsi, verdict.refusal.status, verdict.refusal.reason, verdict.refusal.headers);
  // -1, not 1: from CONFIRM_UPGRADE, 1 has lws complete the transaction and
  // read on, so a request behind a refused upgrade on a kept-alive
  // connection would still be answered.
  return -1;
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
