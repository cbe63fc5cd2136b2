// message_gate: what the script engine asks of a session's connection before
// a message's handler runs, and tells it after. The per-type rate limits
// (limits.message_types) and the one "refused in a row" count live with the
// connection (core/connection/rate_gate.hpp), which implements this; the
// engine only knows a message's type once it has decoded it.
#pragma once

#include <cstdint>
#include <string_view>

namespace wsrelay::session {

class MessageGate {
 public:
  enum class Verdict {
    Pass,     // the handler may run
    Refused,  // answer rate_limited with retry_after_ms
    Closed,   // refused once too often in a row: the session is closing with 1008
  };
  struct Answer {
    Verdict verdict = Verdict::Pass;
    std::int64_t retry_after_ms = 0;
  };

  virtual ~MessageGate() = default;

  // Whether any message type is limited (a plain field: asked for every
  // message, so no virtual call when none is).
  bool limits_types() const { return limits_types_; }
  // A message of this type is about to be handled.
  virtual Answer admit_type(std::string_view type, std::int64_t now_ms) = 0;
  // A handler actually ran: the "refused in a row" count starts again.
  virtual void handler_ran() = 0;

 protected:
  explicit MessageGate(bool limits_types) : limits_types_(limits_types) {}

 private:
  bool limits_types_;
};

}  // namespace wsrelay::session
