#include "protocol_wsrelay/protocol_wsrelay.hpp"

#include "config/config.hpp"
#include "connection/connection.hpp"
#include "server/http_routes.hpp"
#include "server/hosted.hpp"
#include "server/plugin_loader.hpp"
#include "server/relay.hpp"
#include "session/keepalive.hpp"
#include "frame/frame_batch.hpp"
#include "session/session.hpp"
#include "session/log_fields.hpp"
#include "session/token_bucket.hpp"
#include "upstream/upstream_client.hpp"
#include "util/log.hpp"

#include <cjson/cJSON.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wsrelay::plugin {
namespace {

static_assert(LWS_PRE <= frame::kFrameHeadroom, "Frame headroom must cover LWS_PRE");

struct VhostState;

std::int64_t now_ms() {
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
};

// Script routes and admin calls take small JSON bodies; a megabyte is plenty.
constexpr std::size_t kMaxHttpBody = 1u << 20;
// A body over the cap but under this is read and thrown away before the 413,
// so that the client, still sending, gets the answer instead of a reset
// (nginx's lingering close does the same). Beyond it, 413 at once.
constexpr std::size_t kMaxDiscardedBody = 16u << 20;

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
};

struct VhostSlot {
  VhostState* state;
};

VhostState* state_of(lws* wsi) {
  auto* slot = static_cast<VhostSlot*>(lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi)));
  return slot != nullptr ? slot->state : nullptr;
}

server::Relay* relay_of(lws* wsi) {
  VhostState* state = state_of(wsi);
  return state != nullptr ? state->relay : nullptr;
}

// --- keepalive ----------------------------------------------------------------
//
// Once a second, every connection of the vhost is asked whether it has been
// silent (no frame, no pong) for heartbeat.interval — then it is pinged, from
// its next WRITEABLE — or for heartbeat.timeout — then it is hung up without
// a close frame (the peer and the script's on_close see 1006), as lws's
// validity timer did before. A connection costs nothing between sweeps.
constexpr lws_usec_t kSweepPeriod = LWS_US_PER_SEC;

void sweep_tick(lws_sorted_usec_list_t* sul) {
  VhostState& state = *reinterpret_cast<VhostState::SweepTimer*>(sul)->state;
  const std::int64_t now = now_ms();
  // Token expiry is a Unix time (a JWT's exp), not a monotonic one.
  const std::int64_t unix_now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch()).count();
  for (Link* link : state.links) {
    // Only asks for writes and schedules hang-ups: the list this loop walks
    // is left alone (CLOSED would edit it).
    if (link->conn->tick(now, unix_now, state.keepalive) == connection::TickAction::Ping) {
      link->ping_due = true;
      lws_callback_on_writable(link->wsi);
    }
  }
  // A burst of connections is over: the memory it used goes back to the
  // system instead of staying at the high-water mark (core/util/memory.hpp).
  const auto started = std::chrono::steady_clock::now();
  if (state.relay != nullptr && state.relay->give_back_after_burst()) {
    state.links.shrink_to_fit();
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    log::debug("a burst of connections is over (" + std::to_string(state.relay->registry().size()) +
               " open); memory given back in " + std::to_string(took.count()) + " us");
  }
  lws_sul_schedule(state.context, 0, sul, sweep_tick, kSweepPeriod);
}

void watch(VhostState& state, Link* link) {
  link->home = &state;
  link->sweep_index = state.links.size();
  state.links.push_back(link);
}

void unwatch(Link* link) {
  if (link->home == nullptr) return;
  auto& list = link->home->links;
  Link* last = list.back();
  list[link->sweep_index] = last;
  last->sweep_index = link->sweep_index;
  list.pop_back();
  link->home = nullptr;
}

// A frame from the client. In a foreign lws server (plugin mode) the host's
// vhost may run lws's validity timer as well: it is told too, at most once a
// second per connection, since each call re-sorts that timer in lws's list.
// Before the connection notes the frame (it moves last_active_ms).
void confirm_validity(lws* wsi, const Link* link, std::int64_t now) {
  if (link->home != nullptr && !link->home->hosted && now - link->conn->last_active_ms() >= 1000) {
    lws_validity_confirmed(wsi);
  }
}

std::string header(lws* wsi, lws_token_indexes token) {
  const int len = lws_hdr_total_length(wsi, token);
  if (len <= 0) return {};
  std::string value(static_cast<std::size_t>(len) + 1, '\0');
  if (lws_hdr_copy(wsi, value.data(), len + 1, token) < 0) return {};
  value.resize(static_cast<std::size_t>(len));
  return value;
}

std::string peer_address(lws* wsi) {
  char name[64] = {0};
  lws_get_peer_simple(wsi, name, sizeof name);
  std::string address = name;
  // IPv4 clients arrive on the dual-stack socket as ::ffff:a.b.c.d.
  if (address.rfind("::ffff:", 0) == 0 && address.find('.') != std::string::npos) address.erase(0, 7);
  return address;
}

// Status line and headers; the body follows from HTTP_WRITEABLE.
int write_http_headers(lws* wsi, const HttpReply& reply) {
  unsigned char buffer[LWS_PRE + 2048];
  unsigned char* start = buffer + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = buffer + sizeof buffer - 1;
  if (lws_add_http_common_headers(wsi, static_cast<unsigned int>(reply.status), reply.content_type.c_str(),
                                  reply.body.size() - LWS_PRE, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   reinterpret_cast<const unsigned char*>("no-store"), 8, &p, end)) {
    return 1;
  }
  for (const auto& [name, value] : reply.extra_headers) {
    const std::string field = name + ":";
    if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(field.c_str()),
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), &p, end)) {
      return 1;
    }
  }
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return 1;
  lws_callback_on_writable(wsi);
  return 0;
}

std::string method_of(lws* wsi) {
  static const std::pair<lws_token_indexes, const char*> kMethods[] = {
      {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},     {WSI_TOKEN_HEAD_URI, "HEAD"},
      {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_PATCH_URI, "PATCH"},
      {WSI_TOKEN_OPTIONS_URI, "OPTIONS"}};
  for (const auto& [token, name] : kMethods) {
    if (lws_hdr_total_length(wsi, token) > 0) return name;
  }
  return "OTHER";
}

void respond(lws* wsi, PerSession* pss) {
  HttpReply& reply = *pss->http;
  if (reply.body_too_large) {
    reply.status = 413;
    reply.content_type = "application/json";
    reply.body.assign(LWS_PRE, '\0');
    reply.body += R"({"error":"too_large","message":"request body larger than )" + std::to_string(kMaxHttpBody) +
                  R"( bytes"})";
    reply.close_after = true;
    return;
  }
  const http::Response response = server::answer_http(*relay_of(wsi), reply.request);
  reply.status = response.status;
  reply.content_type = response.content_type;
  reply.extra_headers = response.headers;
  reply.body.assign(LWS_PRE, '\0');
  reply.body += response.body;
}

int on_http(lws* wsi, PerSession* pss, const char* uri) {
  auto* reply = new HttpReply();
  pss->http = reply;
  http::Request& req = reply->request;
  req.method = method_of(wsi);
  req.path = uri != nullptr ? uri : "";
  req.query = header(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  req.remote = peer_address(wsi);
  static const std::pair<lws_token_indexes, const char*> kHeaders[] = {
      {WSI_TOKEN_HTTP_AUTHORIZATION, "authorization"}, {WSI_TOKEN_HTTP_CONTENT_TYPE, "content-type"},
      {WSI_TOKEN_ORIGIN, "origin"},                    {WSI_TOKEN_HTTP_USER_AGENT, "user-agent"},
      {WSI_TOKEN_HOST, "host"},                        {WSI_TOKEN_X_FORWARDED_FOR, "x-forwarded-for"}};
  for (const auto& [token, name] : kHeaders) {
    std::string value = header(wsi, token);
    if (!value.empty()) req.headers.emplace_back(name, std::move(value));
  }
  reply->head_only = req.method == "HEAD";
  // A request with a body (POST, PUT...) is answered once lws has read the
  // body; answering earlier leaves lws waiting for it and the reply unsent.
  // (lws reports completion for an empty POST body but not for an empty PUT
  // body, so an empty body is answered at once.)
  const std::string length = header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  if (req.method != "GET" && req.method != "HEAD" && !length.empty() && length != "0") {
    // A declared length far over the cap is answered 413 at once; the body
    // is never read and the connection closes after the reply.
    char* parse_end = nullptr;
    const unsigned long long declared = std::strtoull(length.c_str(), &parse_end, 10);
    if (parse_end != nullptr && *parse_end == '\0' && declared > kMaxDiscardedBody) {
      reply->body_too_large = true;
      respond(wsi, pss);
      return write_http_headers(wsi, *reply);
    }
    reply->awaiting_body = true;
    return 0;
  }
  respond(wsi, pss);
  return write_http_headers(wsi, *reply);
}

int on_http_body(PerSession* pss, const void* in, std::size_t len) {
  if (pss == nullptr || pss->http == nullptr) return -1;
  HttpReply& reply = *pss->http;
  if (reply.body_too_large) return 0;
  std::string& body = reply.request.body;
  if (body.size() + len > kMaxHttpBody) {
    // A body longer than it said, or chunked: drop what was read, keep
    // reading to the end, then answer 413.
    reply.body_too_large = true;
    body.clear();
    body.shrink_to_fit();
    return 0;
  }
  body.append(static_cast<const char*>(in), len);
  return 0;
}

int on_http_body_complete(lws* wsi, PerSession* pss) {
  if (pss == nullptr || pss->http == nullptr || !pss->http->awaiting_body) return 0;
  pss->http->awaiting_body = false;
  respond(wsi, pss);
  return write_http_headers(wsi, *pss->http);
}

int on_http_writeable(lws* wsi, PerSession* pss) {
  HttpReply* reply = pss->http;
  if (reply == nullptr || reply->awaiting_body) return 0;
  pss->http = nullptr;
  std::unique_ptr<HttpReply> owned(reply);
  const std::size_t size = reply->body.size() - LWS_PRE;
  if (!reply->head_only && size > 0) {
    auto* payload = reinterpret_cast<unsigned char*>(reply->body.data()) + LWS_PRE;
    if (lws_write(wsi, payload, size, LWS_WRITE_HTTP_FINAL) != static_cast<int>(size)) return 1;
  }
  if (reply->close_after) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

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

// A batch goes to lws as raw bytes, past its WebSocket framing: only where
// nothing between us and the socket rewrites frames. Not inside an HTTP/2
// stream (the bytes would have to be h2 DATA frames), and not with a ws
// extension (permessage-deflate compresses each frame in lws_write). The
// wsrelay server's vhosts register no extension (and Debian's lws 4.1 loads
// none from plugins); a foreign lws server may, and lws negotiates one only
// when the client offered it, so there the client's offer decides.
bool may_batch_writes(lws* wsi, const VhostState& state) {
  if (lws_get_network_wsi(wsi) != wsi) return false;
  return state.hosted || lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) <= 0;
}

int on_established(lws* wsi, PerSession* pss) {
  VhostState* state = state_of(wsi);
  server::Relay* relay = state->relay;
  const double handshake_s = take_handshake_seconds(wsi);
  session::SessionInfo info;
  info.path = header(wsi, WSI_TOKEN_GET_URI);
  server::EndpointRuntime* endpoint = relay->match(info.path, info.params);
  if (endpoint == nullptr) return -1;
  info.endpoint = endpoint->config.path;
  info.remote = peer_address(wsi);
  auto link = std::make_unique<Link>();
  link->wsi = wsi;
  link->relay = relay;
  link->batch_writes = may_batch_writes(wsi, *state);
  // Watched and bound before the connection opens: on_open may already
  // send, close or publish.
  pss->link = link.get();
  link->conn = connection::Connection::open(*relay, *endpoint, std::move(info), *link, now_ms(), handshake_s);
  if (!link->conn) {
    pss->link = nullptr;
    lws_close_reason(wsi, static_cast<lws_close_status>(connection::kCloseTryAgainLater), nullptr, 0);
    return -1;
  }
  watch(*state, link.release());
  return 0;
}

// Our side of the closing handshake, written here rather than by lws. lws
// 4.1, asked to close (lws_close_reason, then -1), writes the close frame
// and shuts the socket at once: whatever the client sent meanwhile is still
// unread, so the kernel answers with a reset, and a client that was still
// sending (a flood that tripped the rate limit, a message over the size
// limit) loses the close frame and sees 1006 instead of the code. Instead
// the close frame is written like any frame, what arrives after it is read
// and dropped (the connection's drop_while_closing), and the connection ends
// when the client's close arrives (on_peer_close) or after
// connection::kCloseAckSeconds, as RFC 6455 §7.1.1 describes.
int send_close(lws* wsi, Link* link) {
  const session::Session& s = link->conn->session();
  if (lws_get_network_wsi(wsi) != wsi) {
    // A stream inside an HTTP/2 connection: no raw frames there, lws closes it.
    lws_close_reason(wsi, static_cast<lws_close_status>(s.close_code()),
                     reinterpret_cast<unsigned char*>(const_cast<char*>(s.close_reason().data())),
                     s.close_reason().size());
    return -1;
  }
  // Written raw, as write_batch does: lws 4.1 keeps its close frame
  // (LWS_WRITE_CLOSE) to itself.
  unsigned char frame[LWS_PRE + frame::kMaxCloseFrame];
  const std::size_t size = frame::write_close_frame(frame + LWS_PRE, s.close_code(), s.close_reason());
  const bool resume_reading = link->conn->close_frame_written();
  if (lws_write(wsi, frame + LWS_PRE, size, LWS_WRITE_RAW) < static_cast<int>(size)) return -1;
  lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, connection::kCloseAckSeconds);
  // An oversized message stopped the reading; the client's close is behind it.
  if (resume_reading) lws_rx_flow_control(wsi, 1);
  return 0;
}

int on_receive(lws* wsi, PerSession* pss, const void* in, std::size_t len) {
  Link* link = pss->link;
  if (link == nullptr) return -1;
  const std::int64_t now = now_ms();
  confirm_validity(wsi, link, now);
  connection::Piece piece;
  piece.data = std::string_view(static_cast<const char*>(in), len);
  piece.first = lws_is_first_fragment(wsi) != 0;
  piece.binary = lws_frame_is_binary(wsi) != 0;
  piece.remaining = lws_remaining_packet_payload(wsi);
  piece.final = lws_is_final_fragment(wsi) && piece.remaining == 0;
  link->conn->receive(piece, now);
  return 0;
}

constexpr int kWritesPerCallback = 16;

// Up to this many bytes of queued frames (headers included) go out in one
// write. Larger frames take the ordinary path, without a copy.
constexpr std::size_t kBatchBytes = 16 * 1024;

// Several queued frames in one lws_write: their headers made here
// (session/frame_batch), frames copied back to back into a buffer on the
// stack and written as LWS_WRITE_RAW. lws 4.1 sends a raw write on a
// WebSocket untouched (rops_write_role_protocol_ws: straight to
// lws_issue_raw, the path of every frame once its header is made) and, if the
// socket takes only part, keeps the rest on the connection's buflist like any
// partial write (lws_partial_buffered). One send() for the lot instead of one
// per frame. Returns the frames written and popped, 0 if fewer than two fit
// (nothing written: the caller writes the front frame alone), -1 on failure.
int write_batch(lws* wsi, session::Session& s) {
  unsigned char buf[kBatchBytes];
  const frame::Batch batch = frame::pack_frames(s.queue(), buf, sizeof buf);
  if (batch.bytes == 0) return 0;
  const int written = lws_write(wsi, buf, batch.bytes, LWS_WRITE_RAW);
  for (std::size_t i = 0; i < batch.frames; ++i) s.pop_front();
  return written >= static_cast<int>(batch.bytes) ? static_cast<int>(batch.frames) : -1;
}

int on_writeable(lws* wsi, PerSession* pss) {
  Link* link = pss->link;
  if (link == nullptr) return -1;
  session::Session& s = link->conn->session();
  if (link->ping_due && !s.closing()) {
    // The sweep found the client silent for heartbeat.interval.
    // Not empty: lws 4.1 reports no RECEIVE_PONG for a pong without payload,
    // and the pong echoes the ping's.
    link->ping_due = false;
    static constexpr char kPingPayload[] = "wsrelay";
    constexpr std::size_t kPingSize = sizeof kPingPayload - 1;
    unsigned char ping[LWS_PRE + kPingSize];
    std::memcpy(ping + LWS_PRE, kPingPayload, kPingSize);
    if (lws_write(wsi, ping + LWS_PRE, kPingSize, LWS_WRITE_PING) < static_cast<int>(kPingSize)) return -1;
    if (s.has_pending()) lws_callback_on_writable(wsi);
    return 0;
  }
  if (s.has_pending()) {
    // Several queued frames per WRITEABLE (a burst, a fan-out backlog): one
    // trip through lws's poll loop instead of one per frame, and where
    // possible one write for several frames (write_batch). lws allows more
    // than one write per callback while none of them was left partly
    // buffered (lws_partial_buffered); then the rest waits for the next one.
    // A lone frame (an echo reply) is written in place, never copied.
    for (int n = 0; n < kWritesPerCallback && s.has_pending(); ++n) {
      bool complete = true;
      const int batched = link->batch_writes && s.pending_count() > 1 ? write_batch(wsi, s) : 0;
      if (batched < 0) {
        complete = false;
      } else if (batched == 0) {
        const frame::Frame& frame = *s.front();
        const auto mode = frame.is_binary() ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
        const int written = lws_write(wsi, frame.writable_payload(), frame.size(), mode);
        complete = written >= static_cast<int>(frame.size());
        s.pop_front();  // after the write: the queue may hold the frame's last reference
      }
      if (!complete) {
        log::warn("write failed; dropping connection", session::log_fields(s));
        return -1;
      }
      if (lws_partial_buffered(wsi)) break;
    }
    if (s.has_pending() || s.closing()) lws_callback_on_writable(wsi);
    return 0;
  }
  if (s.closing() && !link->conn->close_sent()) return send_close(wsi, link);
  return 0;
}

// Returns nonzero when the close answers ours: the handshake is complete and
// lws must close the connection without sending a close frame of its own.
int on_peer_close(PerSession* pss, const void* in, std::size_t len) {
  Link* link = pss->link;
  if (link == nullptr) return 0;
  return link->conn->peer_closed(std::string_view(static_cast<const char*>(in), len)) ? 1 : 0;
}

void on_closed(PerSession* pss) {
  std::unique_ptr<Link> link(pss->link);
  pss->link = nullptr;
  if (!link) return;
  unwatch(link.get());
  link->conn->closed();
}

// --- plugin mode: a Relay made from the vhost's pvo -------------------------

const char* pvo_value(const lws_protocol_vhost_options* pvo, const char* name) {
  const lws_protocol_vhost_options* found = lws_pvo_search(pvo, name);
  return found != nullptr ? found->value : nullptr;
}

// "script" + "path" [+ "max_message_size"]: a one-endpoint config, validated
// like a config file ("pvo: endpoints[0].script: file not found: ...").
std::optional<config::Config> config_from_script_pvo(const char* script, const char* path, const char* max_size,
                                                     std::vector<std::string>& errors) {
  cJSON* ep = cJSON_CreateObject();
  cJSON_AddStringToObject(ep, "path", path);
  cJSON_AddStringToObject(ep, "script", script);
  if (max_size != nullptr) {
    char* end = nullptr;
    const double n = std::strtod(max_size, &end);
    if (end == max_size || *end != '\0') {
      cJSON_Delete(ep);
      errors.push_back(std::string("pvo: max_message_size: expected an integer, got \"") + max_size + "\"");
      return std::nullopt;
    }
    cJSON_AddNumberToObject(ep, "max_message_size", n);
  }
  std::error_code ec;
  config::LoadResult loaded =
      config::parse_endpoint(ep, "pvo", std::filesystem::current_path(ec).string(), config::process_env());
  if (!loaded.config) {
    errors.insert(errors.end(), loaded.errors.begin(), loaded.errors.end());
    return std::nullopt;
  }
  return loaded.config;
}

std::unique_ptr<VhostState> relay_from_pvo(const lws_protocol_vhost_options* pvo, std::vector<std::string>& errors) {
  const char* config_path = pvo_value(pvo, "config");
  const char* script = pvo_value(pvo, "script");
  const char* path = pvo_value(pvo, "path");
  std::optional<config::Config> cfg;
  if (config_path != nullptr) {
    if (script != nullptr || path != nullptr) {
      errors.push_back("pvo: set either \"config\" or \"script\" + \"path\", not both");
      return nullptr;
    }
    config::LoadResult loaded = config::load_file(config_path, config::process_env());
    if (!loaded.config) {
      errors.insert(errors.end(), loaded.errors.begin(), loaded.errors.end());
      return nullptr;
    }
    cfg = std::move(loaded.config);
  } else if (script != nullptr && path != nullptr) {
    cfg = config_from_script_pvo(script, path, pvo_value(pvo, "max_message_size"), errors);
    if (!cfg) return nullptr;
  } else {
    errors.push_back("pvo: the protocol \"wsrelay\" needs the pvo \"config\" (a wsrelay config file) or "
                     "\"script\" and \"path\"");
    return nullptr;
  }
  config::register_secrets(*cfg);
  // The host owns listeners, protocols and the loop.
  if (cfg->watch_scripts) log::warn("pvo config: watch_scripts is ignored in a plugin (no file watch)");
  for (const auto& l : cfg->listeners) {
    if (!l.protocols.empty()) log::warn("pvo config: listen.protocols is ignored in a plugin (the host lists protocols)");
  }
  auto state = std::make_unique<VhostState>();
  if (server::PluginSet::needed(*cfg, /*with_protocols=*/false)) {
    state->plugins = server::PluginSet::load(*cfg, errors);
    if (!state->plugins) return nullptr;
  }
  state->owned = server::Relay::create(*cfg, errors, state->plugins.get());
  if (!state->owned) return nullptr;
  state->relay = state->owned.get();
  return state;
}

int on_protocol_init(lws* wsi, const lws_protocol_vhost_options* pvo) {
  lws_vhost* vhost = lws_get_vhost(wsi);
  const lws_protocols* protocol = lws_get_protocol(wsi);
  auto* slot = static_cast<VhostSlot*>(lws_protocol_vh_priv_zalloc(vhost, protocol, sizeof(VhostSlot)));
  if (slot == nullptr) return 1;
  std::unique_ptr<VhostState> state;
  if (server::Relay* relay = server::hosted_relay(protocol->user)) {
    state = std::make_unique<VhostState>();
    state->relay = relay;
  } else {
    std::vector<std::string> errors;
    state = relay_from_pvo(pvo, errors);
    const std::string name = lws_get_vhost_name(vhost) != nullptr ? lws_get_vhost_name(vhost) : "?";
    for (const auto& e : errors) log::error("wsrelay on vhost " + name + ": " + e);
    if (!state) return 1;
    for (const auto& ep : state->relay->config().endpoints) {
      log::info("wsrelay on vhost " + name + ": endpoint " + ep.path + " (" +
                (ep.script_path.empty() ? std::string("built-in standard.lua") : ep.script_name) + ")");
    }
  }
  state->context = lws_get_context(wsi);
  state->hosted = state->owned == nullptr;
  const config::Heartbeat& heartbeat = state->relay->config().heartbeat;
  state->keepalive.interval_ms = static_cast<std::int64_t>(heartbeat.interval_s) * 1000;
  state->keepalive.timeout_ms = static_cast<std::int64_t>(heartbeat.timeout_s) * 1000;
  state->sweep.state = state.get();
  lws_sul_schedule(state->context, 0, &state->sweep.sul, sweep_tick, kSweepPeriod);
  slot->state = state.release();
  return 0;
}

void on_protocol_destroy(lws* wsi) {
  auto* slot = static_cast<VhostSlot*>(lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi)));
  if (slot == nullptr) return;
  if (slot->state != nullptr) lws_sul_cancel(&slot->state->sweep.sul);
  delete slot->state;
  slot->state = nullptr;
}

int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  auto* pss = static_cast<PerSession*>(user);
  switch (reason) {
    case LWS_CALLBACK_PROTOCOL_INIT:
      return on_protocol_init(wsi, static_cast<const lws_protocol_vhost_options*>(in));
    case LWS_CALLBACK_PROTOCOL_DESTROY:
      on_protocol_destroy(wsi);
      return 0;
    default:
      break;
  }
  // Without a Relay (its PROTOCOL_INIT failed) nothing is served. Only the
  // two events that start something look it up: lws also calls the vhost's
  // first protocol for other protocols' wsi (WSI_DESTROY...), where the
  // bound protocol is not ours to look at.
  if ((reason == LWS_CALLBACK_HTTP || reason == LWS_CALLBACK_ESTABLISHED) && relay_of(wsi) == nullptr) return -1;
  switch (reason) {
    case LWS_CALLBACK_HTTP:
      return on_http(wsi, pss, static_cast<const char*>(in));
    case LWS_CALLBACK_HTTP_BODY:
      return on_http_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      return on_http_body_complete(wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
      return on_http_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
      if (pss != nullptr) {
        delete pss->http;
        pss->http = nullptr;
      }
      return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
      stamp_accept(wsi);
      return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      return on_confirm_upgrade(wsi);
    case LWS_CALLBACK_ESTABLISHED:
      return on_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
      return on_receive(wsi, pss, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
      if (pss != nullptr && pss->link != nullptr) {
        const std::int64_t now = now_ms();
        confirm_validity(wsi, pss->link, now);
        pss->link->conn->saw_life(now);
      }
      return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
      return on_writeable(wsi, pss);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      return on_peer_close(pss, in, len);
    case LWS_CALLBACK_CLOSED:
      on_closed(pss);
      return 0;
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

// No exception may unwind into lws (C): anything escaping a handler is a bug,
// logged, and costs only the connection it happened on.
int guarded_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  try {
    return callback(wsi, reason, user, in, len);
  } catch (const std::exception& e) {
    log::error(std::string("internal error in protocol callback: ") + e.what());
  } catch (...) {
    log::error("internal error in protocol callback");
  }
  return -1;
}

// lws gives every WebSocket an rx buffer of rx_buffer_size (+ LWS_PRE) for
// its whole life; 0 would mean the context's 4 KiB service buffer, more than
// half of an idle connection's memory. Longer frames arrive in pieces, which
// on_receive reassembles anyway. tx_packet_size is the most lws hands to one
// send() (plus LWS_PRE + 4; it allocates nothing by it): the rest of a longer
// write is copied to the connection's buflist and sent from later POLLOUTs.
// Left 0 it would be rx_buffer_size; a batch of frames (kBatchBytes) goes
// out whole.
constexpr std::size_t kRxBufferSize = 512;
constexpr std::size_t kTxPacketSize = kBatchBytes;

const lws_protocols kProtocol = {
    kProtocolName, guarded_callback, sizeof(PerSession), kRxBufferSize, 0, nullptr, kTxPacketSize,
};

// Both protocols a vhost serving the relay needs: the relay and the client
// side of its upstream links.
const lws_protocols kProtocols[] = {kProtocol, upstream::UpstreamClient::protocol(), lws_protocols{}};

}  // namespace

}  // namespace wsrelay::plugin

#if defined(LWS_PLUGIN_STATIC)

// <wsrelay/wsrelay.h>: the static-link path.
extern "C" LWS_VISIBLE const struct lws_protocols* wsrelay_protocols(size_t* count) {
  if (count != nullptr) *count = 2;
  return wsrelay::plugin::kProtocols;
}

extern "C" LWS_VISIBLE const char* wsrelay_version(void) { return WSRELAY_VERSION; }

#else

// libprotocol_wsrelay.so: lws derives the symbol from the file name
// (libprotocol_wsrelay.so -> "wsrelay"). In C++ that name is taken by the
// namespace, so the object gets its symbol name from an asm label.
extern "C" LWS_VISIBLE const lws_plugin_protocol_t wsrelay_protocol_plugin __asm__("wsrelay");
const lws_plugin_protocol_t wsrelay_protocol_plugin = {
    {"wsrelay relay", "lws_protocol_plugin", LWS_PLUGIN_API_MAGIC},
    wsrelay::plugin::kProtocols,
    nullptr,
    2,
    0,
};

#endif
