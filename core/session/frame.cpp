#include "session/frame.hpp"

#include <cstring>

namespace wsrelay::session {

std::shared_ptr<const Frame> Frame::make(std::string_view payload, bool binary) {
  auto buffer = std::make_unique_for_overwrite<unsigned char[]>(kFrameHeadroom + payload.size() + 1);
  if (!payload.empty()) std::memcpy(buffer.get() + kFrameHeadroom, payload.data(), payload.size());
  buffer[kFrameHeadroom + payload.size()] = 0;
  return std::shared_ptr<const Frame>(new Frame(std::move(buffer), payload.size(), binary));
}

}  // namespace wsrelay::session
