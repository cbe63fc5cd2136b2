// frame: one outbound WebSocket message, encoded once and shared.
// Owns: the bytes of a message plus the headroom lws needs in front of them
// (LWS_PRE), so a publish to N subscribers queues N pointers to one buffer.
// Uses: nothing of lws (the headroom size is checked against LWS_PRE where
// lws is included: plugins/protocol_wsrelay).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace wsrelay::session {

inline constexpr std::size_t kFrameHeadroom = 16;

class Frame;
using FramePtr = std::shared_ptr<const Frame>;

class Frame {
  struct Private {};

 public:
  static FramePtr text(std::string_view payload) { return make(payload, false); }
  static FramePtr binary(std::string_view payload) { return make(payload, true); }
  // A buffer whose first kFrameHeadroom bytes are headroom and the rest the
  // payload (an encoder writes into it directly): taken over, not copied.
  static FramePtr adopt_text(std::string&& headroom_and_payload) {
    return std::make_shared<const Frame>(Private{}, std::move(headroom_and_payload), false);
  }
  // A string holding just the headroom, to append a payload to.
  static std::string buffer(std::size_t payload_capacity) {
    std::string b(kFrameHeadroom, '\0');
    b.reserve(kFrameHeadroom + payload_capacity);
    return b;
  }

  Frame(Private, std::string&& storage, bool binary) : storage_(std::move(storage)), binary_(binary) {}

  // lws writes the frame header into the headroom in place. Every write of the
  // same frame writes the same header bytes (server frames are unmasked), so
  // sharing one buffer between connections is safe.
  unsigned char* writable_payload() const {
    return reinterpret_cast<unsigned char*>(storage_.data()) + kFrameHeadroom;
  }
  std::string_view payload() const { return std::string_view(storage_).substr(kFrameHeadroom); }
  std::size_t size() const { return storage_.size() - kFrameHeadroom; }
  bool is_binary() const { return binary_; }

 private:
  static FramePtr make(std::string_view payload, bool binary);

  // mutable: lws writes each header into the headroom (see above).
  mutable std::string storage_;  // headroom, payload, and std::string's NUL after it
  bool binary_;
};

}  // namespace wsrelay::session
