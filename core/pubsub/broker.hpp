// broker: where a publish goes. Local delivery (Hub) is the one implementation
// today; a Redis broker that spans several relay nodes is the next, so script
// bridges publish through this interface rather than through the Hub itself.
#pragma once

#include "frame/frame.hpp"

#include <cstddef>
#include <string_view>

namespace wsrelay::pubsub {

class Subscriber;

class Broker {
 public:
  virtual ~Broker() = default;
  // Delivers frame to every subscriber of channel except `exclude`; returns how
  // many subscribers it reached on this node.
  virtual std::size_t publish(std::string_view channel, const frame::FramePtr& frame,
                              const Subscriber* exclude) = 0;
};

}  // namespace wsrelay::pubsub
