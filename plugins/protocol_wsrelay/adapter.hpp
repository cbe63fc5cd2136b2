// adapter: what the relay protocol's files share — the per-connection and
// per-vhost records lws holds for it, and each file's entry points for the
// callback (protocol_wsrelay.cpp): http_server.cpp answers HTTP requests,
// upgrade.cpp decides WebSocket upgrades, websocket.cpp carries an open
// connection between lws and core/connection, pvo.cpp builds a Relay from a
// host's per-vhost options. Internal to the plugin.
#pragma once

#include "protocol_wsrelay/protocol_wsrelay.hpp"

#include "config/config.hpp"
#include "connection/connection.hpp"
#include "http/request.hpp"
#include "http/request_head.hpp"
#include "loop/lws_binding.hpp"
#include "server/plugin_loader.hpp"
#include "server/relay.hpp"
#include "session/keepalive.hpp"
#include "upstream/upstream_client.hpp"

#include <libwebsockets.h>

#include <cstring>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wsrelay::plugin {

// Up to this many bytes of queued frames (headers included) go out in one
// write. Larger frames take the ordinary path, without a copy.
constexpr std::size_t kBatchBytes = 16 * 1024;

struct VhostState;

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One WebSocket as lws holds it: the lws-free connection (core/connection)
// and what only the lws side needs. Implements the connection's Wire.
struct Link final : connection::Wire {
  lws* wsi = nullptr;
  server::Relay* relay = nullptr;
  std::unique_ptr<connection::Connection> conn;
  VhostState* home = nullptr;    // the vhost whose keepalive sweep watches this connection
  std::size_t sweep_index = 0;   // position in home->links
  bool ping_due = false;         // the sweep asked for a ping: written at the next WRITEABLE
  bool batch_writes = false;     // queued frames may go out several per write (see write_batch)

  void request_write() override { lws_callback_on_writable(wsi); }
  void pause_reading(bool paused) override { lws_rx_flow_control(wsi, paused ? 0 : 1); }
  void hang_up() override { lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC); }
  void close_deadline(int seconds) override { lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, seconds); }
  session::UpstreamLink* open_upstream(const config::Upstream& config, upstream::UpstreamEvents& owner,
                                       const std::string& log_id) override {
    return new upstream::UpstreamClient(lws_get_context(wsi), lws_get_vhost(wsi), config, &owner, &relay->stats(),
                                        log_id);
  }
};

struct HttpReply {
  http::Request request;
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> extra_headers;
  std::string body;  // LWS_PRE bytes of headroom, then the body
  bool head_only = false;
  bool awaiting_body = false;  // headers wait until the request body is read
  bool body_too_large = false; // over kMaxHttpBody: the rest is discarded, 413 answered
  bool close_after = false;    // the connection cannot be reused (an unread body)
  bool ready = false;          // the answer is in (a script route that waits answers later)
  bool deferred = false;       // on_http returned before the answer: its headers go from WRITEABLE
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // false once lws dropped the request
};

// Script routes and admin calls take small JSON bodies; a megabyte is plenty.
inline constexpr std::size_t kMaxHttpBody = 1u << 20;
// A body over the cap but under this is read and thrown away before the 413,
// so that the client, still sending, gets the answer instead of a reset
// (nginx's lingering close does the same). Beyond it, 413 at once.
inline constexpr std::size_t kMaxDiscardedBody = 16u << 20;

struct PerSession {
  Link* link;
  HttpReply* http;
};

// What a vhost serves. lws keeps a VhostSlot per vhost for this protocol
// (zero-allocated and freed by lws); the state it points to is ours.
struct VhostState {
  // The keepalive sweep: one lws timer per vhost, whatever the number of
  // connections (first member of a standard-layout struct: the callback
  // finds its VhostState from the sul).
  struct SweepTimer {
    lws_sorted_usec_list_t sul;
    VhostState* state;
  } sweep{{}, nullptr};
  lws_context* context = nullptr;
  server::Relay* relay = nullptr;
  bool hosted = false;  // the wsrelay server's vhost: lws's own validity timer is off
  session::KeepalivePolicy keepalive;
  std::vector<Link*> links;  // every WebSocket of this vhost, for the sweep
  std::unique_ptr<server::PluginSet> plugins;  // extension plugins of a pvo config; outlive `owned`
  std::unique_ptr<server::Relay> owned;        // plugin mode: made from the vhost's pvo
  std::unique_ptr<loop::LwsBinding> reach;     // the relay's timers and completions on this loop
};

struct VhostSlot {
  VhostState* state;
};

inline VhostState* state_of(lws* wsi) {
  auto* slot = static_cast<VhostSlot*>(lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi)));
  return slot != nullptr ? slot->state : nullptr;
}

inline server::Relay* relay_of(lws* wsi) {
  VhostState* state = state_of(wsi);
  return state != nullptr ? state->relay : nullptr;
}

// relay_of, for events lws also brings for other protocols' wsi
// (WSI_DESTROY): null unless the wsi is bound to the relay's protocol.
inline server::Relay* relay_of_protocol(lws* wsi) {
  const lws_protocols* p = lws_get_protocol(wsi);
  return p != nullptr && std::strcmp(p->name, kProtocolName) == 0 ? relay_of(wsi) : nullptr;
}

// ---- http_server.cpp
// A request header's whole value ("" when absent); every occurrence of a
// repeated one, in order.
std::string header(lws* wsi, lws_token_indexes token);
std::vector<std::string> header_fragments(lws* wsi, lws_token_indexes token);
std::string peer_address(lws* wsi);
// The head's framing and handshake fields (http/request_head.hpp).
http::RequestHead read_head(lws* wsi);
// Writes a refusal (request_head.hpp) as the whole answer, Connection:
// close; returns what the callback returns to have lws close the connection.
int write_refusal(lws* wsi, int status, const std::string& body,
                  const std::vector<std::pair<std::string, std::string>>& headers = {});
int on_http(lws* wsi, PerSession* pss, const char* uri);
int on_http_body(PerSession* pss, const void* in, std::size_t len);
int on_http_body_complete(lws* wsi, PerSession* pss);
int on_http_writeable(lws* wsi, PerSession* pss);

// ---- upgrade.cpp
int on_confirm_upgrade(lws* wsi);
// The upgrade's headers a script may read: the known ones and `extra`
// (the endpoint's handshake_headers).
std::vector<std::pair<std::string, std::string>> handshake_headers(lws* wsi, const std::vector<std::string>& extra);
void stamp_accept(lws* wsi);
double take_handshake_seconds(lws* wsi);

// ---- websocket.cpp
void confirm_validity(lws* wsi, const Link* link, std::int64_t now);
int on_established(lws* wsi, PerSession* pss);
int on_receive(lws* wsi, PerSession* pss, const void* in, std::size_t len);
int on_writeable(lws* wsi, PerSession* pss);
int on_peer_close(PerSession* pss, const void* in, std::size_t len);
void on_closed(PerSession* pss);

// ---- pvo.cpp
std::unique_ptr<VhostState> relay_from_pvo(const lws_protocol_vhost_options* pvo, std::vector<std::string>& errors);

}  // namespace wsrelay::plugin
