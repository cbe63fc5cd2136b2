#include "connection/connection.hpp"

#include "script/engine.hpp"
#include "session/log_fields.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <utility>

namespace wsrelay::connection {

namespace {

constexpr int kCloseTooLarge = 1009;  // RFC 6455 §7.4.1: message too big

}  // namespace

Connection::Connection(server::Relay& relay, server::EndpointRuntime& endpoint, Wire& wire)
    : relay_(relay),
      endpoint_(endpoint),
      wire_(wire),
      gate_(relay.admission(), relay.config().limits, &relay.stats()) {}

std::unique_ptr<Connection> Connection::open(server::Relay& relay, server::EndpointRuntime& endpoint,
                                             session::SessionInfo info, Wire& wire, std::int64_t now_ms,
                                             double handshake_s) {
  // Counted here, not at the upgrade check: only an open session holds a
  // slot (released in closed()). Another connection may have taken the last
  // slot in between: then 1013, try again later.
  if (relay.admission().admit(info.remote, relay.stats().connections) != server::Admission::Verdict::Admit) {
    ++relay.stats().refused_connections;
    return nullptr;
  }
  std::unique_ptr<Connection> conn(new Connection(relay, endpoint, wire));
  const config::Limits& limits = relay.config().limits;
  // The queue must hold at least one largest message, whatever the config says.
  const std::size_t max_queue =
      std::max<std::size_t>(limits.max_queue_bytes, endpoint.config.max_message_size + 1024);
  conn->session_ = std::make_unique<session::Session>(session::new_session_id(), std::move(info), conn.get(),
                                                      &relay.stats(), max_queue, limits.slow_consumer == "drop_oldest");
  session::Session& s = *conn->session_;
  if (s.info().upgrade_user) s.set_user(*s.info().upgrade_user);
  conn->gate_.bind(s);
  s.gate = &conn->gate_;
  conn->liveness_.seen(now_ms);
  relay.registry().add(&s);
  ++endpoint.connections;
  ++relay.stats().connections;
  ++relay.stats().connections_total;
  if (handshake_s >= 0) relay.stats().handshake_seconds.observe(handshake_s);
  log::info("open " + s.info().path + " from " + s.info().remote, session::log_fields(s));
  if (endpoint.config.upstream) {
    conn->upstream_ = wire.open_upstream(*endpoint.config.upstream, *conn, s.id());
    s.upstream = conn->upstream_;
  }
  endpoint.engine->on_open(s);
  if (conn->upstream_ != nullptr && endpoint.config.upstream->connect_on_open && !s.closing()) {
    conn->upstream_->upstream_connect();
  }
  return conn;
}

Connection::~Connection() { closed(); }

void Connection::request_write() {
  if (session_->closing() && !close_started_) {
    close_started_ = true;
    wire_.close_deadline(kCloseFlushSeconds);
  }
  wire_.request_write();
}

void Connection::receive(const Piece& piece, std::int64_t now_ms) {
  session::Session& s = *session_;
  relay_.stats().bytes_in += piece.data.size();
  // Any data is a sign of life, not only pongs: a client that sends its own
  // heartbeats but whose stack does not answer pings must not be hung up.
  liveness_.seen(now_ms);
  if (piece.first) {
    rx_.clear();
    rx_binary_ = piece.binary;
  }
  if (discarding_ || s.closing()) {
    if (s.closing()) drop_while_closing(piece.data.size());
    return;
  }
  const std::size_t limit = endpoint_.config.max_message_size;
  if (rx_.size() + piece.data.size() + piece.remaining > limit) {
    refuse_oversized(limit);
    return;
  }
  // A message that arrives whole (the usual case) is handed on from the
  // transport's buffer; only fragments are copied, to be reassembled.
  const bool whole = piece.final && rx_.empty();
  if (!whole) rx_.append(piece.data);
  if (!piece.final) return;
  const std::string_view message = whole ? piece.data : std::string_view(rx_);
  ++relay_.stats().messages_in;
  ++s.messages_in;
  const session::MessageGate::Answer answer = gate_.admit_message(now_ms);
  if (answer.verdict == session::MessageGate::Verdict::Pass) {
    endpoint_.engine->on_message(s, message, rx_binary_);
  } else if (answer.verdict == session::MessageGate::Verdict::Refused) {
    endpoint_.engine->send_error(s, "rate_limited",
                                 "too many messages; retry after " + std::to_string(answer.retry_after_ms) + " ms",
                                 rx_binary_ ? std::string_view() : message);
  }
  rx_.clear();
}

// The one error that ends the connection: the client is told why, then 1009
// closes it. Reading stops, so an oversized stream costs nothing more.
void Connection::refuse_oversized(std::size_t limit) {
  session::Session& s = *session_;
  discarding_ = true;
  rx_.clear();
  rx_.shrink_to_fit();
  log::warn("message larger than " + std::to_string(limit) + " bytes; closing with 1009", session::log_fields(s));
  endpoint_.engine->send_error(s, script::codes::kTooLarge, "message larger than " + std::to_string(limit) + " bytes");
  s.close(kCloseTooLarge, "message too large");
  wire_.pause_reading(true);
}

void Connection::drop_while_closing(std::size_t len) {
  const bool was_under = dropped_while_closing_ <= kMaxDropWhileClosing;
  dropped_while_closing_ += len;
  if (was_under && dropped_while_closing_ > kMaxDropWhileClosing) {
    log::info("client sent over " + std::to_string(kMaxDropWhileClosing) +
                  " bytes after its connection began to close; hanging up",
              session::log_fields(*session_));
    wire_.hang_up();
  }
}

bool Connection::peer_closed(std::string_view payload) {
  if (close_sent_) return true;
  if (payload.size() >= 2) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(payload.data());
    peer_close_code_ = (bytes[0] << 8) | bytes[1];
    peer_close_reason_.assign(payload.substr(2));
  } else {
    peer_close_code_ = 1005;  // RFC 6455 §7.1.5: no status code was present
  }
  return false;
}

bool Connection::close_frame_written() {
  close_sent_ = true;
  return discarding_;
}

TickAction Connection::tick(std::int64_t now_ms, std::int64_t unix_now_ms, const session::KeepalivePolicy& policy) {
  session::Session& s = *session_;
  if (!s.closing() && s.expiry.due(unix_now_ms)) {
    // The token the session authenticated with ran out and no re-auth
    // refreshed it (session/keepalive.hpp). A closing handshake, not a hang
    // up: the client is alive and should learn why.
    log::info("token expired; closing with " + std::to_string(session::kTokenExpiredCloseCode),
              session::log_fields(s));
    s.close(session::kTokenExpiredCloseCode, std::string(session::kTokenExpiredCloseReason));
  }
  switch (liveness_.check(now_ms, policy)) {
    case session::KeepaliveAction::None:
      return TickAction::None;
    case session::KeepaliveAction::Ping:
      return TickAction::Ping;
    case session::KeepaliveAction::HangUp:
      // A dead peer would not read a close frame.
      log::info("no frame or pong for " + std::to_string(policy.timeout_ms / 1000) + " s; hanging up",
                session::log_fields(s));
      wire_.hang_up();
      return TickAction::None;
  }
  return TickAction::None;
}

void Connection::closed() {
  if (closed_ || !session_) return;
  closed_ = true;
  session::Session& s = *session_;
  int code = 1006;  // closed without a close frame
  std::string reason;
  if (peer_close_code_ != 0) {
    code = peer_close_code_;
    reason = peer_close_reason_;
  } else if (s.closing()) {
    code = s.close_code();
    reason = s.close_reason();
  }
  // Sends to a closing session are refused from here on, including anything
  // the on_close hook publishes to channels this session is still in.
  s.detach();
  // One upstream per client: the client gone, its upstream goes too.
  if (upstream_ != nullptr) {
    s.upstream = nullptr;
    upstream_->detach();
    upstream_ = nullptr;
  }
  endpoint_.engine->on_close(s, code, reason);
  s.gate = nullptr;
  relay_.hub().unsubscribe_all(&s);
  relay_.registry().remove(&s);
  relay_.admission().release(s.info().remote);
  --endpoint_.connections;
  --relay_.stats().connections;
  log::info("close code=" + std::to_string(code) + (reason.empty() ? "" : " reason=\"" + reason + "\"") +
                " in=" + std::to_string(s.messages_in) + " out=" + std::to_string(s.messages_out),
            session::log_fields(s));
}

void Connection::upstream_opened() { endpoint_.engine->on_upstream_open(*session_); }

void Connection::upstream_message(std::string_view data, bool binary) {
  endpoint_.engine->on_upstream_message(*session_, data, binary);
}

log::Fields Connection::upstream_log_fields() const { return session::log_fields(*session_); }

void Connection::upstream_closed(int code, const std::string& reason, bool failed, bool will_retry) {
  // The script sees it first (and may tell its client in its own dialect),
  // then the endpoint's policy applies.
  endpoint_.engine->on_upstream_close(*session_, code, reason, failed, will_retry);
  if (!will_retry && endpoint_.config.upstream->on_close == "close_client") {
    // 1014 (bad gateway) when the upstream failed, 1000 when it closed cleanly.
    session_->close(failed ? 1014 : 1000, failed ? "upstream unavailable" : "upstream closed");
  }
}

}  // namespace wsrelay::connection
