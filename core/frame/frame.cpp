#include "frame/frame.hpp"

#include <cstring>
#include <new>
#include <type_traits>

namespace wsrelay::frame {

static_assert(std::is_trivially_destructible_v<Frame>, "release() frees a frame without running a destructor");

// One allocation: the Frame (its count, size and kind), the headroom, the
// payload and a NUL.
FramePtr Frame::make(std::string_view payload, bool binary) {
  void* block = ::operator new(sizeof(Frame) + kFrameHeadroom + payload.size() + 1);
  auto* frame = new (block) Frame(payload.size(), binary);
  unsigned char* bytes = frame->bytes();
  std::memset(bytes, 0, kFrameHeadroom);
  if (!payload.empty()) std::memcpy(bytes + kFrameHeadroom, payload.data(), payload.size());
  bytes[kFrameHeadroom + payload.size()] = 0;
  return FramePtr(frame);
}

void Frame::release(const Frame* frame) noexcept { ::operator delete(const_cast<Frame*>(frame)); }

}  // namespace wsrelay::frame
