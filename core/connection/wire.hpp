// wire: what a connection asks of its socket. The relay protocol implements
// it over lws (plugins/protocol_wsrelay); the socket-free tests with a
// recording fake (tests/fakes/fake_wire.hpp).
#pragma once

#include "config/config.hpp"
#include "session/upstream_port.hpp"
#include "upstream/upstream_client.hpp"

#include <string>

namespace wsrelay::connection {

class Wire {
 public:
  virtual ~Wire() = default;
  // Call back when the socket can be written (the queue, a ping, the close).
  virtual void request_write() = 0;
  // Stop or resume reading the client (an oversized message is not read on).
  virtual void pause_reading(bool paused) = 0;
  // Drop the connection without a close frame, from the next service pass
  // (never from inside the caller: it may be walking a list of connections).
  virtual void hang_up() = 0;
  // The closing handshake has begun: what is queued and the close frame
  // must be written within `seconds`, else the connection is dropped.
  virtual void close_deadline(int seconds) = 0;
  // A new upstream link for this connection (config: the endpoint's
  // upstream); events go to `owner`. The link is the connection's until it
  // calls detach().
  virtual session::UpstreamLink* open_upstream(const config::Upstream& config, upstream::UpstreamEvents& owner,
                                               const std::string& log_id) = 0;
};

}  // namespace wsrelay::connection
