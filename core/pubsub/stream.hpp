// stream: one channel's memory — its epoch, its latest position and the
// publications it still keeps, oldest first. Pure: no clock, no hub; the
// History that owns streams decides when one starts afresh, and when its
// publications go while its position stays (a channel with subscribers).
#pragma once

#include "frame/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <optional>
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
  TooOld,         // the history no longer reaches back to the position (history_size,
                  // or its publications expired or were dropped for memory)
  Ahead,          // the position is beyond the stream's latest seq
};

class Stream {
 public:
  // Bytes a kept publication costs beyond its payload (frame header and
  // headroom, the deque slot): the memory bound counts both.
  static constexpr std::size_t kEntryOverhead = 64;
  // Bytes the stream itself costs with no publication kept — its position,
  // this object, its table and age-order slots (measured: about 320 with
  // glibc and libstdc++) — plus twice its channel name (the table's key and
  // channel()): the memory bound counts it too, so bytes() is never 0.
  static constexpr std::size_t kPositionOverhead = 352;
  static std::size_t position_cost(std::string_view channel) { return kPositionOverhead + 2 * channel.size(); }

  Stream(std::string channel, std::string epoch, std::int64_t now_ms)
      : channel_(std::move(channel)),
        epoch_(std::move(epoch)),
        bytes_(position_cost(channel_)),
        last_publish_ms_(now_ms),
        released_ms_(now_ms) {}

  const std::string& channel() const { return channel_; }
  const std::string& epoch() const { return epoch_; }
  std::uint64_t top() const { return top_; }  // the latest seq; 0 before the first publication
  std::size_t size() const { return entries_ ? entries_->size() : 0; }
  std::size_t bytes() const { return bytes_; }  // the position's and every kept publication's
  std::int64_t last_publish_ms() const { return last_publish_ms_; }

  // Held: the channel has at least one subscriber. A held stream keeps its
  // epoch and seq (its subscribers see seq go on by 1); only its kept
  // publications expire or are dropped for memory. release() records when
  // the last subscriber left: an unheld stream starts afresh once
  // history_ttl has passed since then and since its last publication.
  bool held() const { return held_; }
  void hold() { held_ = true; }
  void release(std::int64_t now_ms) {
    held_ = false;
    released_ms_ = now_ms;
  }
  std::int64_t idle_since_ms() const { return last_publish_ms_ > released_ms_ ? last_publish_ms_ : released_ms_; }

  // Keeps frame as publication top()+1 (its payload already carries that
  // seq), then drops the oldest beyond `keep`. Returns the seq.
  std::uint64_t append(frame::FramePtr frame, std::size_t keep, std::int64_t now_ms);
  // Drops the oldest kept publication (the memory bound); false if none.
  bool drop_oldest();
  // Drops every kept publication; the epoch and top() stay.
  void clear();

  // Whether everything after `since` can be given; with `out`, up to `limit`
  // of those publications, oldest first.
  Gap after(const Position& since, std::size_t limit, std::vector<frame::FramePtr>* out) const;
  // The latest `limit` publications, oldest first.
  std::vector<frame::FramePtr> latest(std::size_t limit) const;

  // The History's age order (least recently published first). A held
  // stream whose publications the memory bound dropped leaves it (nothing of
  // it can be dropped) until its next publication or its release.
  std::list<Stream*>::iterator age_slot;
  bool in_age_order = false;

 private:
  struct Entry {
    std::uint64_t seq;
    frame::FramePtr frame;
  };
  static std::size_t cost(const Entry& e) { return e.frame->size() + kEntryOverhead; }

  std::string channel_;
  std::string epoch_;
  std::uint64_t top_ = 0;
  // None until the first publication and after clear(): an empty std::deque
  // still holds its first block (about 600 bytes with libstdc++), and a
  // subscribed channel may keep a position without publications for long.
  std::optional<std::deque<Entry>> entries_;
  std::size_t bytes_ = 0;
  std::int64_t last_publish_ms_;
  std::int64_t released_ms_;
  bool held_ = false;
};

}  // namespace wsrelay::pubsub
