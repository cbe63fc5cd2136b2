// log_fields: what a session's log lines carry (id, user once authenticated,
// endpoint path), for log::info(message, session::log_fields(s)).
// The views point into the Session: use them for one log call.
#pragma once

#include "session/session.hpp"
#include "util/log.hpp"

namespace wsrelay::session {

inline log::Fields log_fields(const Session& s) {
  return log::Fields{s.id(), s.user() ? std::string_view(*s.user()) : std::string_view(), s.info().endpoint};
}

}  // namespace wsrelay::session
