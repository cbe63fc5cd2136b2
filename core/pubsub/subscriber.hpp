// subscriber: what the hub delivers to. A Session is one; tests use fakes.
// Owns: the set of channels this subscriber is in (kept by the Hub, read by
// everyone else), so closing a connection can leave every channel in one call.
#pragma once

#include "frame/frame.hpp"

#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace wsrelay::pubsub {

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Called once per publish; must not call back into the Hub.
  virtual void deliver(const frame::FramePtr& frame) = 0;
  // Who this subscriber is, for presence: read when asked, so a user that
  // changes (re-auth) is shown as it now is.
  virtual std::string_view presence_session() const { return {}; }
  virtual const std::optional<std::string>& presence_user() const {
    static const std::optional<std::string> none;
    return none;
  }

  const std::set<std::string, std::less<>>& channels() const { return channels_; }

 private:
  friend class Hub;
  std::set<std::string, std::less<>> channels_;
};

}  // namespace wsrelay::pubsub
