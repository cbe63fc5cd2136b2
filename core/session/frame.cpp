#include "session/frame.hpp"

namespace wsrelay::session {

// One allocation for the buffer and one (make_shared) for the Frame with its
// reference count.
FramePtr Frame::make(std::string_view payload, bool binary) {
  std::string storage = buffer(payload.size());
  storage.append(payload);
  return std::make_shared<const Frame>(Private{}, std::move(storage), binary);
}

}  // namespace wsrelay::session
