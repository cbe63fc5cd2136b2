// history: every channel's stream on this node, within bounds — each
// stream's history_size and history_ttl (ChannelOptions) and one memory
// bound for all (limits.history_memory_mb).
// A stream's position (epoch, seq) is kept while its channel has a
// subscriber (the Hub holds and releases it): its subscribers must see seq go
// on by 1. Then history_ttl and the memory bound drop its kept publications
// only, so a recovery from before them answers `recovered: false` (TooOld).
// A stream nobody holds starts afresh — dropped, a new epoch next time — once
// history_ttl has passed since its last publication and since it was last
// held, and the memory bound drops it whole, least recently published first.
// Either way a client that asks to continue from what is gone is told
// `recovered: false`, never given a gap or another stream's publications.
// Every stream's position counts in the bound (Stream::position_cost);
// the positions of held streams cannot be dropped and are bounded by the
// subscriptions, every other stream by history_ttl.
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

  // The channel's stream: made (with a new epoch) when there is none, or it
  // is not held and its history_ttl has passed (idle_since_ms). A held one
  // past its ttl is kept with its publications dropped.
  Stream& stream(std::string_view channel, const ChannelOptions& options);
  // Keeps a publication (its payload already carries seq = stream.top() + 1),
  // then holds the memory bound. Returns the seq.
  std::uint64_t append(Stream& stream, frame::FramePtr frame, const ChannelOptions& options);

  // The channel has a subscriber (again): keep s's position from now on.
  void hold(Stream& s) { s.hold(); }
  // The channel's last subscriber left (no-op without a stream). Its ttl
  // counts from now; it is again the memory bound's to drop whole.
  void release(std::string_view channel);

  // Drops the unheld streams whose history_ttl has passed, and the kept
  // publications of held ones past it; `options_of` gives each channel's
  // options (null: the channel no longer has history: dropped, held or not).
  void expire(const std::function<const ChannelOptions*(std::string_view)>& options_of);

  std::size_t stream_count() const { return streams_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::size_t publications() const { return publications_; }
  std::uint64_t dropped_for_memory() const { return dropped_for_memory_; }  // streams dropped whole
  // Held streams whose kept publications the memory bound dropped (their
  // position stays).
  std::uint64_t cleared_for_memory() const { return cleared_for_memory_; }

 private:
  std::string new_epoch();
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using Streams = std::unordered_map<std::string, std::unique_ptr<Stream>, StringHash, std::equal_to<>>;
  void drop(Streams::iterator it);
  void clear(Stream& s);  // drops s's publications, keeps its position
  void leave_age_order(Stream& s);
  void hold_memory_bound(Stream& current);
  // The stream itself: not held, and its ttl passed since it was last active.
  bool expired(const Stream& s, const ChannelOptions& options, std::int64_t now) const {
    return !s.held() && now - s.idle_since_ms() > options.history_ttl_s * 1000;
  }
  // Its kept publications: their ttl passed since the last one.
  bool publications_expired(const Stream& s, const ChannelOptions& options, std::int64_t now) const {
    return s.size() != 0 && now - s.last_publish_ms() > options.history_ttl_s * 1000;
  }

  Streams streams_;
  std::list<Stream*> by_age_;  // least recently published first (never published: first of all)
  std::size_t memory_limit_;
  Clock clock_;
  std::size_t bytes_ = 0;
  std::size_t publications_ = 0;
  std::uint64_t dropped_for_memory_ = 0;
  std::uint64_t cleared_for_memory_ = 0;
  std::mt19937_64 random_;
};

}  // namespace wsrelay::pubsub
