// stream: one channel's memory — its epoch, its latest position and the
// publications it still keeps, oldest first. Pure: no clock, no hub; the
// History that owns streams decides when one starts afresh.
#pragma once

#include "frame/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <string>
#include <string_view>
#include <vector>

namespace wsrelay::pubsub {

// Where a client was in a channel's stream: the last seq it saw, in which epoch.
struct Position {
  std::string epoch;
  std::uint64_t seq = 0;
};

// Why a position can or cannot be continued from.
enum class Gap {
  Filled,         // every publication after the position is still kept
  EpochDiffers,   // the stream started afresh since (restart, expiry, memory bound)
  TooOld,         // the history no longer reaches back to the position
  Ahead,          // the position is beyond the stream's latest seq
};

class Stream {
 public:
  // Bytes a kept publication costs beyond its payload (frame header and
  // headroom, the deque slot): the memory bound counts both.
  static constexpr std::size_t kEntryOverhead = 64;

  Stream(std::string channel, std::string epoch, std::int64_t now_ms)
      : channel_(std::move(channel)), epoch_(std::move(epoch)), last_publish_ms_(now_ms) {}

  const std::string& channel() const { return channel_; }
  const std::string& epoch() const { return epoch_; }
  std::uint64_t top() const { return top_; }  // the latest seq; 0 before the first publication
  std::size_t size() const { return entries_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::int64_t last_publish_ms() const { return last_publish_ms_; }

  // Keeps frame as publication top()+1 (its payload already carries that
  // seq), then drops the oldest beyond `keep`. Returns the seq.
  std::uint64_t append(frame::FramePtr frame, std::size_t keep, std::int64_t now_ms);
  // Drops the oldest kept publication (the memory bound); false if none.
  bool drop_oldest();

  // Whether everything after `since` can be given; with `out`, up to `limit`
  // of those publications, oldest first.
  Gap after(const Position& since, std::size_t limit, std::vector<frame::FramePtr>* out) const;
  // The latest `limit` publications, oldest first.
  std::vector<frame::FramePtr> latest(std::size_t limit) const;

  // The History's age order (least recently published first).
  std::list<Stream*>::iterator age_slot;

 private:
  struct Entry {
    std::uint64_t seq;
    frame::FramePtr frame;
  };
  static std::size_t cost(const Entry& e) { return e.frame->size() + kEntryOverhead; }

  std::string channel_;
  std::string epoch_;
  std::uint64_t top_ = 0;
  std::deque<Entry> entries_;
  std::size_t bytes_ = 0;
  std::int64_t last_publish_ms_;
};

}  // namespace wsrelay::pubsub
