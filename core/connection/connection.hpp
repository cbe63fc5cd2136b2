// connection: one client connection's life, without lws — open, each
// message, the closing handshake's state, the once-a-second check, close.
// Owns: the Session, the message being reassembled, the rate gate, the
// upstream link (until it lets it go), the liveness stamps.
// Uses: the Relay (registry, hub, stats, admission) and its endpoint's script
// engine; Wire for everything that touches the socket. The relay protocol
// (plugins/protocol_wsrelay) calls these from its lws callback; the
// socket-free tests call them directly (tests/unit/test_connection.cpp).
//
// The order every connection goes through, whatever the transport:
//   open()      admitted (connection caps), registered, counted, on_open,
//               then the upstream link when the endpoint connects on open
//   receive()   each piece of a message: reassembled up to
//               max_message_size, rate-limited, handed to the script
//   tick()      once a second: token expiry (close 4001), keepalive
//   closed()    on_close with the code that ended it, then every release:
//               channels, registry, admission, counters
#pragma once

#include "connection/rate_gate.hpp"
#include "connection/wire.hpp"
#include "server/relay.hpp"
#include "session/keepalive.hpp"
#include "session/session.hpp"
#include "upstream/upstream_client.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace wsrelay::connection {

// The closing handshake's bounds (RFC 6455 §7.1.1; see docs/protocol.md):
// the queued frames and our close frame must be written within
// kCloseFlushSeconds of the close, the client's close must answer ours
// within kCloseAckSeconds, and once the client has sent more than
// kMaxDropWhileClosing bytes after the close began it is hung up on.
inline constexpr int kCloseFlushSeconds = 10;
inline constexpr int kCloseAckSeconds = 3;
inline constexpr std::size_t kMaxDropWhileClosing = 16u << 20;
// The close code when open() refuses: another connection took the last slot.
inline constexpr int kCloseTryAgainLater = 1013;

// A piece of a client message as the transport delivers it.
struct Piece {
  std::string_view data;
  bool first = true;           // the first piece of a message (its type is known)
  bool final = true;           // the last piece: the message is whole
  bool binary = false;         // the message's frame type, read on the first piece
  std::size_t remaining = 0;   // bytes of the current frame still to come
};

enum class TickAction { None, Ping };

class Connection final : public session::Transport, public upstream::UpstreamEvents {
 public:
  // Admits and opens a connection on `endpoint`, runs on_open and opens the
  // upstream link if the endpoint connects on open. Null when the
  // connection caps refuse it (another connection took the last slot since
  // the upgrade was checked): the transport then closes with 1013.
  // handshake_s: seconds from accept to open, or negative if unknown.
  static std::unique_ptr<Connection> open(server::Relay& relay, server::EndpointRuntime& endpoint,
                                          session::SessionInfo info, Wire& wire, std::int64_t now_ms,
                                          double handshake_s);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void receive(const Piece& piece, std::int64_t now_ms);
  // A pong (or any frame the transport reads without a piece): a sign of life.
  void saw_life(std::int64_t now_ms) { liveness_.seen(now_ms); }
  std::int64_t last_active_ms() const { return liveness_.last_active_ms(); }

  // The client's close frame (its payload: code and reason). True when it
  // answers ours: the handshake is complete, nothing more is sent.
  bool peer_closed(std::string_view payload);
  // Our close frame went out. True when reading must resume: it was paused
  // by an oversized message, and the client's close is behind it.
  bool close_frame_written();
  bool close_sent() const { return close_sent_; }

  // The once-a-second check: a session whose token expired is closed with
  // 4001; a silent client is pinged (Ping: the transport writes one) or,
  // past heartbeat.timeout, hung up.
  TickAction tick(std::int64_t now_ms, std::int64_t unix_now_ms, const session::KeepalivePolicy& policy);

  // The socket is gone: on_close with the code that ended it, then every
  // release. Once; the destructor does it if the transport did not.
  void closed();

  session::Session& session() { return *session_; }
  const session::Session& session() const { return *session_; }
  const RateGate& gate() const { return gate_; }

  // session::Transport
  void request_write() override;
  // upstream::UpstreamEvents
  void upstream_opened() override;
  void upstream_message(std::string_view data, bool binary) override;
  void upstream_closed(int code, const std::string& reason, bool failed, bool will_retry) override;
  log::Fields upstream_log_fields() const override;

 private:
  Connection(server::Relay& relay, server::EndpointRuntime& endpoint, Wire& wire);
  void refuse_oversized(std::size_t limit);
  void drop_while_closing(std::size_t len);

  server::Relay& relay_;
  server::EndpointRuntime& endpoint_;
  Wire& wire_;
  RateGate gate_;
  std::unique_ptr<session::Session> session_;
  session::UpstreamLink* upstream_ = nullptr;  // the connection's until detach()
  session::Liveness liveness_;
  std::string rx_;                    // the message being reassembled
  bool rx_binary_ = false;
  bool discarding_ = false;           // the rest of an oversized message
  bool close_started_ = false;        // the close deadline is set
  bool close_sent_ = false;           // our close frame is out; waiting for the client's
  bool closed_ = false;               // closed() ran
  std::size_t dropped_while_closing_ = 0;
  int peer_close_code_ = 0;
  std::string peer_close_reason_;
};

}  // namespace wsrelay::connection
