// websocket: an open WebSocket between lws and core/connection — open,
// each received piece, the writes (queued frames, pings, the close frame),
// the close.
#include "protocol_wsrelay/adapter.hpp"

#include "http/handshake.hpp"

#include "frame/frame_batch.hpp"
#include "session/log_fields.hpp"
#include "util/log.hpp"

#include <cstring>

namespace wsrelay::plugin {

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
  info.headers = handshake_headers(wsi, endpoint->config.handshake_headers);
  info.query = http::encode_query(header_fragments(wsi, WSI_TOKEN_HTTP_URI_ARGS));
  info.upgrade_user = relay->take_upgrade_user(wsi);
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

}  // namespace wsrelay::plugin
