// subscriber: what the hub delivers to. A Session is one; tests use fakes.
// Owns: the set of channels this subscriber is in (kept by the Hub, read by
// everyone else), so closing a connection can leave every channel in one call.
#pragma once

#include "frame/frame.hpp"

#include <set>
#include <string>

namespace wsrelay::pubsub {

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Called once per publish; must not call back into the Hub.
  virtual void deliver(const frame::FramePtr& frame) = 0;

  const std::set<std::string, std::less<>>& channels() const { return channels_; }

 private:
  friend class Hub;
  std::set<std::string, std::less<>> channels_;
};

}  // namespace wsrelay::pubsub
