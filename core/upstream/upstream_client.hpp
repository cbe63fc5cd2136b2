// upstream_client: one session's WebSocket link to an upstream API, as an lws
// client on the relay's own event loop.
// Owns: the client wsi, the frames queued while connecting, the reassembly of
// upstream messages, the reconnect timer. Uses: config::Upstream (where and
// with which headers), UpstreamEvents (what it reports to its session).
// Lifetime: created and owned by the session's connection; when the
// connection goes, detach() closes the link and the client frees itself once
// lws has closed the socket — lws may call back after the owner is gone.
#pragma once

#include "config/config.hpp"
#include "frame/frame.hpp"
#include "frame/frame_queue.hpp"
#include "stats/stats.hpp"
#include "session/upstream_port.hpp"
#include "util/log.hpp"

#include <libwebsockets.h>

#include <string>

namespace wsrelay::upstream {

inline constexpr const char* kUpstreamProtocolName = "wsrelay-upstream";

class UpstreamEvents {
 public:
  virtual ~UpstreamEvents() = default;
  virtual void upstream_opened() = 0;
  virtual void upstream_message(std::string_view data, bool binary) = 0;
  // failed: the link never opened, or dropped without a close frame.
  // will_retry: a reconnect is scheduled (on_close = "reconnect").
  virtual void upstream_closed(int code, const std::string& reason, bool failed, bool will_retry) = 0;
  // Who the link's log lines are about (the client's session, user, endpoint).
  virtual log::Fields upstream_log_fields() const = 0;
};

class UpstreamClient final : public session::UpstreamLink {
 public:
  UpstreamClient(lws_context* context, lws_vhost* vhost, const config::Upstream& config,
                 UpstreamEvents* owner, stats::Stats* stats, std::string log_id);

  session::UpstreamSend upstream_send(std::string_view payload, bool binary) override;
  void upstream_close(int code, std::string_view reason) override;
  void upstream_connect() override;
  std::string_view upstream_state() const override;

  // The owner is going away: close the link and free this once lws is done.
  void detach() override;

  // The lws client protocol serving every upstream link.
  static const lws_protocols& protocol();

 private:
  enum class State { Idle, Connecting, Open, Closing, Closed };
  ~UpstreamClient();
  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len);
  static void retry_fired(lws_sorted_usec_list_t* sul);
  void connect_now();
  void on_closed(int code, std::string reason, bool failed);
  void free_if_done();
  // The owner's fields while attached; the copy taken at detach() after.
  log::Fields log_fields() const;

  struct RetryTimer {
    lws_sorted_usec_list_t sul;  // first member: retry_fired gets back here from the sul
    UpstreamClient* self;
  };
  RetryTimer retry_timer_{{}, this};
  lws_context* context_;
  lws_vhost* vhost_;
  config::Upstream config_;
  UpstreamEvents* owner_;
  stats::Stats* stats_;
  // The owner's log fields as they were when it detached (the session id until then).
  std::string log_session_, log_user_, log_endpoint_;
  lws* wsi_ = nullptr;
  State state_ = State::Idle;
  frame::FrameQueue queue_;  // no allocation while idle (lazy links)
  std::string rx_;
  bool rx_binary_ = false;
  int attempts_ = 0;          // consecutive failed attempts (reset when open)
  int close_code_ = 0;        // what we asked to close with
  std::string close_reason_;
  int peer_close_code_ = 0;
  std::string peer_close_reason_;
  bool counted_ = false;      // counted in stats->upstream_links
};

}  // namespace wsrelay::upstream
