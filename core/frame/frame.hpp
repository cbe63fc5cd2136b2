// frame: one outbound WebSocket message, encoded once and shared.
// Owns: the bytes of a message plus the headroom lws needs in front of them
// (LWS_PRE), in one allocation with the frame's reference count, so a publish
// to N subscribers queues N pointers to one buffer.
// Uses: nothing of lws (the headroom size is checked against LWS_PRE where
// lws is included: plugins/protocol_wsrelay).
// Why not std::shared_ptr: a frame lives and dies on the event loop's one
// thread, and shared_ptr's count is atomic (a locked instruction for every
// subscriber a frame is queued to and popped from) and its control block,
// with the payload's own buffer, made two allocations per frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wsrelay::frame {

inline constexpr std::size_t kFrameHeadroom = 16;

class Frame;

// A counted reference to a frame (not thread-safe: see above).
class FramePtr {
 public:
  FramePtr() = default;
  FramePtr(std::nullptr_t) {}  // NOLINT: like a null shared_ptr
  FramePtr(const FramePtr& other) noexcept;
  FramePtr(FramePtr&& other) noexcept : frame_(other.frame_) { other.frame_ = nullptr; }
  FramePtr& operator=(const FramePtr& other) noexcept;
  FramePtr& operator=(FramePtr&& other) noexcept;
  ~FramePtr() { reset(); }

  void reset() noexcept;
  const Frame* get() const { return frame_; }
  const Frame& operator*() const { return *frame_; }
  const Frame* operator->() const { return frame_; }
  explicit operator bool() const { return frame_ != nullptr; }
  long use_count() const;

 private:
  friend class Frame;
  explicit FramePtr(Frame* adopted) : frame_(adopted) {}
  Frame* frame_ = nullptr;
};

class Frame {
 public:
  static FramePtr text(std::string_view payload) { return make(payload, false); }
  static FramePtr binary(std::string_view payload) { return make(payload, true); }

  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;

  // lws writes the frame header into the headroom in place. Every write of the
  // same frame writes the same header bytes (server frames are unmasked), so
  // sharing one buffer between connections is safe.
  unsigned char* writable_payload() const { return bytes() + kFrameHeadroom; }
  std::string_view payload() const {
    return std::string_view(reinterpret_cast<const char*>(bytes()) + kFrameHeadroom, size_);
  }
  std::size_t size() const { return size_; }
  bool is_binary() const { return binary_; }

 private:
  friend class FramePtr;
  Frame(std::size_t size, bool binary) : size_(size), binary_(binary) {}
  static FramePtr make(std::string_view payload, bool binary);
  static void release(const Frame* frame) noexcept;
  // The headroom, the payload and a NUL follow the object in its allocation.
  unsigned char* bytes() const { return reinterpret_cast<unsigned char*>(const_cast<Frame*>(this) + 1); }

  mutable std::uint32_t refs_ = 1;  // mutable: counted through pointers to const
  std::size_t size_;
  bool binary_;
};

inline FramePtr::FramePtr(const FramePtr& other) noexcept : frame_(other.frame_) {
  if (frame_ != nullptr) ++frame_->refs_;
}

inline FramePtr& FramePtr::operator=(const FramePtr& other) noexcept {
  Frame* taken = other.frame_;  // read first: other may be *this
  if (taken != nullptr) ++taken->refs_;
  reset();
  frame_ = taken;
  return *this;
}

inline FramePtr& FramePtr::operator=(FramePtr&& other) noexcept {
  if (this != &other) {
    reset();
    frame_ = other.frame_;
    other.frame_ = nullptr;
  }
  return *this;
}

inline void FramePtr::reset() noexcept {
  if (frame_ != nullptr && --frame_->refs_ == 0) Frame::release(frame_);
  frame_ = nullptr;
}

inline long FramePtr::use_count() const { return frame_ != nullptr ? static_cast<long>(frame_->refs_) : 0; }

}  // namespace wsrelay::frame
