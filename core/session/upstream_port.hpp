// upstream_port: what a session's script may ask of its upstream link, without
// knowing lws. The protocol implements it per connection (core/upstream);
// unit tests fake it.
#pragma once

#include <string_view>

namespace wsrelay::session {

enum class UpstreamSend { Sent, Busy, Closed, NotConfigured };

class UpstreamPort {
 public:
  virtual ~UpstreamPort() = default;
  // Sent: written or queued in order while connecting (opening a lazy link).
  // Busy: the connect queue is full — nothing was queued.
  virtual UpstreamSend upstream_send(std::string_view payload, bool binary) = 0;
  virtual void upstream_close(int code, std::string_view reason) = 0;
  // Opens the link if it is not open or opening (e.g. after "keep" on close).
  virtual void upstream_connect() = 0;
  // "connecting", "open", "closed" or "idle" (lazy, never opened).
  virtual std::string_view upstream_state() const = 0;
};

// The connection's side of the link: a port it can also let go.
class UpstreamLink : public UpstreamPort {
 public:
  // The owner is going away: close the link and free it once it is done.
  virtual void detach() = 0;
};

}  // namespace wsrelay::session
