// history: every channel's stream on this node, within bounds — each
// stream's history_size and history_ttl (ChannelOptions) and one memory
// bound for all (limits.history_memory_mb), past which the least recently
// published streams are dropped whole. A dropped or expired stream comes back
// with a new epoch, so a client that asks to continue from it is told
// `recovered: false`, never given a gap.
// The clock is injected (milliseconds, monotonic) so the policy is tested
// without waiting.
#pragma once

#include "pubsub/channel_options.hpp"
#include "pubsub/stream.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wsrelay::pubsub {

class History {
 public:
  using Clock = std::function<std::int64_t()>;
  static std::int64_t steady_ms();

  explicit History(std::size_t memory_limit_bytes = std::size_t{64} << 20, Clock clock = steady_ms);

  void set_memory_limit(std::size_t bytes) { memory_limit_ = bytes; }
  std::size_t memory_limit() const { return memory_limit_; }

  // The channel's stream: made (with a new epoch) when there is none or its
  // history_ttl has passed since its last publication.
  Stream& stream(std::string_view channel, const ChannelOptions& options);
  // Keeps a publication (its payload already carries seq = stream.top() + 1),
  // then holds the memory bound. Returns the seq.
  std::uint64_t append(Stream& stream, frame::FramePtr frame, const ChannelOptions& options);

  // Drops the streams whose history_ttl has passed; `ttl_of` gives each
  // channel's options (null: the channel no longer has history).
  void expire(const std::function<const ChannelOptions*(std::string_view)>& options_of);

  std::size_t stream_count() const { return streams_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::size_t publications() const { return publications_; }
  std::uint64_t dropped_for_memory() const { return dropped_for_memory_; }

 private:
  std::string new_epoch();
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using Streams = std::unordered_map<std::string, std::unique_ptr<Stream>, StringHash, std::equal_to<>>;
  void drop(Streams::iterator it);
  void hold_memory_bound(Stream& current);
  bool expired(const Stream& s, const ChannelOptions& options, std::int64_t now) const {
    return now - s.last_publish_ms() > options.history_ttl_s * 1000;
  }

  Streams streams_;
  std::list<Stream*> by_age_;  // least recently published first
  std::size_t memory_limit_;
  Clock clock_;
  std::size_t bytes_ = 0;
  std::size_t publications_ = 0;
  std::uint64_t dropped_for_memory_ = 0;
  std::mt19937_64 random_;
};

}  // namespace wsrelay::pubsub
