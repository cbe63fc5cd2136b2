// frame: one outbound WebSocket message, encoded once and shared.
// Owns: the bytes of a message plus the headroom lws needs in front of them
// (LWS_PRE), so a publish to N subscribers queues N pointers to one buffer.
// Uses: nothing of lws (the headroom size is checked against LWS_PRE where
// lws is included: plugins/protocol_wsrelay).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace wsrelay::session {

inline constexpr std::size_t kFrameHeadroom = 16;

class Frame {
 public:
  static std::shared_ptr<const Frame> text(std::string_view payload) { return make(payload, false); }
  static std::shared_ptr<const Frame> binary(std::string_view payload) { return make(payload, true); }

  // lws writes the frame header into the headroom in place. Every write of the
  // same frame writes the same header bytes (server frames are unmasked), so
  // sharing one buffer between connections is safe.
  unsigned char* writable_payload() const { return buffer_.get() + kFrameHeadroom; }
  std::string_view payload() const {
    return {reinterpret_cast<const char*>(buffer_.get() + kFrameHeadroom), size_};
  }
  std::size_t size() const { return size_; }
  bool is_binary() const { return binary_; }

 private:
  Frame(std::unique_ptr<unsigned char[]> buffer, std::size_t size, bool binary)
      : buffer_(std::move(buffer)), size_(size), binary_(binary) {}
  static std::shared_ptr<const Frame> make(std::string_view payload, bool binary);

  std::unique_ptr<unsigned char[]> buffer_;
  std::size_t size_;
  bool binary_;
};

using FramePtr = std::shared_ptr<const Frame>;

}  // namespace wsrelay::session
