// session: one client connection's state, independent of lws.
// Owns: identity (id, user, token expiry), the outbound queue, close intent, the script's
// handle for this session. Uses: Transport (implemented by the lws protocol)
// to ask for a write or a close; Stats for counters.
// Writes happen only when lws says the socket is writable: send() queues and
// asks; the protocol drains.
#pragma once

#include "pubsub/subscriber.hpp"
#include "frame/frame.hpp"
#include "frame/frame_queue.hpp"
#include "session/keepalive.hpp"
#include "session/message_gate.hpp"
#include "stats/stats.hpp"
#include "util/token_bucket.hpp"
#include "session/upstream_port.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wsrelay::session {

// The frame and counter types a session speaks in.
using frame::Frame;
using frame::FramePtr;
using frame::FrameQueue;
using stats::Stats;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void request_write() = 0;
};

enum class SendStatus { Queued, Closed, Overflow };

struct SessionInfo {
  std::string endpoint;                                      // the endpoint's configured path
  std::string path;                                          // the path the client asked for
  std::string remote;                                        // peer address
  std::vector<std::pair<std::string, std::string>> params;   // captures of {name} segments
  // The upgrade's headers the script may read (http/handshake.hpp: lower-case
  // names, the known ones and the endpoint's handshake_headers) and its
  // query string, undecoded.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string query;
  std::optional<std::string> upgrade_user;  // named by the script's on_upgrade: the user on_open sees
};

class Session final : public pubsub::Subscriber {
 public:
  Session(std::string id, SessionInfo info, Transport* transport, Stats* stats,
          std::size_t max_queue_bytes, bool drop_oldest = false);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& id() const { return id_; }
  const SessionInfo& info() const { return info_; }

  const std::optional<std::string>& user() const { return user_; }
  void set_user(std::optional<std::string> user) { user_ = std::move(user); }

  SendStatus send(const FramePtr& frame) { return enqueue(frame, true); }
  SendStatus send_text(std::string_view text) { return send(Frame::text(text)); }
  // A publish delivery: the Hub counts its type once for all subscribers.
  void deliver(const FramePtr& frame) override {
    if (holding_) {
      held_.emplace_back(frame, false);
      return;
    }
    enqueue(frame, false);
  }
  std::string_view presence_session() const override { return id_; }
  const std::optional<std::string>& presence_user() const override { return user_; }

  // Recovery: the missed publications of a channel are held, and so is every
  // delivery after them, until release_held() — the script engine calls it
  // when the handler that subscribed has answered, so the client gets
  // subscribe.ok, then what it missed, then what is live, with no gap.
  void hold(std::vector<FramePtr> missed);
  void release_held();
  bool holding() const { return holding_; }

  // Close after everything queued so far has been written.
  void close(int code, std::string reason);
  bool closing() const { return close_code_ != 0; }
  int close_code() const { return close_code_; }
  const std::string& close_reason() const { return close_reason_; }

  // Writer side (the protocol's WRITEABLE callback).
  bool has_pending() const { return !queue_.empty(); }
  std::size_t pending_count() const { return queue_.size(); }
  const FramePtr& front() const { return queue_.front(); }
  const FramePtr& pending(std::size_t i) const { return queue_[i]; }  // 0 is the front
  const frame::FrameQueue& queue() const { return queue_; }
  void pop_front();
  std::size_t queued_bytes() const { return queued_bytes_; }

  // Marks the transport gone: later sends are refused instead of queued.
  void detach() { transport_ = nullptr; }
  bool attached() const { return transport_ != nullptr; }

  // Opaque slot for the script engine (a Lua registry reference).
  int script_ref = -2;

  // The session's upstream link, if its endpoint has one (owned by the protocol).
  UpstreamPort* upstream = nullptr;
  // The connection's rate limits, as the script engine asks them
  // (limits.message_types) and tells them a handler ran; null: no limits.
  MessageGate* gate = nullptr;
  // When the token the session authenticated with runs out (set by the
  // script: session:set_expiry). The keepalive sweep closes the session with
  // kTokenExpiredCloseCode once it is due; unset, it never is.
  Expiry expiry;

  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  std::uint64_t dropped = 0;  // frames shed by the drop_oldest policy

 private:
  SendStatus enqueue(const FramePtr& frame, bool count_type);
  std::string id_;
  SessionInfo info_;
  Transport* transport_;
  Stats* stats_;
  std::size_t max_queue_bytes_;
  bool drop_oldest_;  // slow-consumer policy: shed old frames instead of closing
  std::optional<std::string> user_;
  FrameQueue queue_;
  std::size_t queued_bytes_ = 0;
  bool holding_ = false;
  std::vector<std::pair<FramePtr, bool>> held_;  // frame, count its type when queued
  int close_code_ = 0;
  std::string close_reason_;
};

// 16 lowercase hex characters from the OpenSSL CSPRNG: session ids are handed
// to scripts and may address sessions, so they must not be guessable.
std::string new_session_id();

}  // namespace wsrelay::session
