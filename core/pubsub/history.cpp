#include "pubsub/history.hpp"

#include <chrono>

namespace wsrelay::pubsub {

std::int64_t History::steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

History::History(std::size_t memory_limit_bytes, Clock clock)
    : memory_limit_(memory_limit_bytes), clock_(std::move(clock)), random_(std::random_device{}()) {}

std::string History::new_epoch() {
  // 48 random bits: a restarted relay or a stream made afresh must not reuse
  // an epoch a client still holds. Not a secret (every subscriber sees it).
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t bits = random_();
  std::string epoch(12, '0');
  for (char& c : epoch) {
    c = kHex[bits & 0xf];
    bits >>= 4;
  }
  return epoch;
}

void History::drop(Streams::iterator it) {
  Stream& s = *it->second;
  bytes_ -= s.bytes();
  publications_ -= s.size();
  leave_age_order(s);
  streams_.erase(it);
}

void History::clear(Stream& s) {
  bytes_ -= s.bytes();
  publications_ -= s.size();
  s.clear();
  bytes_ += s.bytes();
}

void History::leave_age_order(Stream& s) {
  if (!s.in_age_order) return;
  by_age_.erase(s.age_slot);
  s.in_age_order = false;
}

Stream& History::stream(std::string_view channel, const ChannelOptions& options) {
  const std::int64_t now = clock_();
  auto it = streams_.find(channel);
  if (it != streams_.end()) {
    Stream& s = *it->second;
    if (!expired(s, options, now)) {
      // Held past its ttl (or released within it): the position stays, the
      // publications go.
      if (publications_expired(s, options, now)) clear(s);
      return s;
    }
    drop(it);
  }
  auto made = std::make_unique<Stream>(std::string(channel), new_epoch(), now);
  Stream& s = *made;
  // Never published: the first the memory bound drops (a publication moves it to the back).
  by_age_.push_front(&s);
  s.age_slot = by_age_.begin();
  s.in_age_order = true;
  bytes_ += s.bytes();
  streams_.emplace(s.channel(), std::move(made));
  return s;
}

void History::release(std::string_view channel) {
  auto it = streams_.find(channel);
  if (it == streams_.end()) return;
  Stream& s = *it->second;
  s.release(clock_());
  if (!s.in_age_order) {
    // Its publications were dropped for memory while held: nothing of it is
    // newer than any other stream's.
    by_age_.push_front(&s);
    s.age_slot = by_age_.begin();
    s.in_age_order = true;
  }
}

std::uint64_t History::append(Stream& stream, frame::FramePtr frame, const ChannelOptions& options) {
  const std::size_t bytes_before = stream.bytes();
  const std::size_t kept_before = stream.size();
  const std::uint64_t seq = stream.append(std::move(frame), options.history_size, clock_());
  bytes_ = bytes_ - bytes_before + stream.bytes();
  publications_ = publications_ - kept_before + stream.size();
  // Now the most recently published.
  if (stream.in_age_order) {
    by_age_.splice(by_age_.end(), by_age_, stream.age_slot);
  } else {
    by_age_.push_back(&stream);
    stream.age_slot = std::prev(by_age_.end());
    stream.in_age_order = true;
  }
  hold_memory_bound(stream);
  return seq;
}

void History::hold_memory_bound(Stream& current) {
  while (bytes_ > memory_limit_ && !by_age_.empty() && by_age_.front() != &current) {
    Stream& oldest = *by_age_.front();
    if (oldest.held()) {
      // Its subscribers' seq must go on: only its publications go, and it
      // leaves the order (nothing more of it can go) until it publishes again.
      if (oldest.size() != 0) ++cleared_for_memory_;
      clear(oldest);
      leave_age_order(oldest);
    } else {
      ++dropped_for_memory_;
      drop(streams_.find(oldest.channel()));
    }
  }
  // One stream alone over the bound keeps its newest publications (its
  // oldest go first, as history_size would drop them).
  while (bytes_ > memory_limit_ && current.size() > 1) {
    const std::size_t before = current.bytes();
    current.drop_oldest();
    bytes_ -= before - current.bytes();
    --publications_;
  }
}

void History::expire(const std::function<const ChannelOptions*(std::string_view)>& options_of) {
  const std::int64_t now = clock_();
  for (auto it = streams_.begin(); it != streams_.end();) {
    const ChannelOptions* options = options_of(it->first);
    auto next = std::next(it);
    if (options == nullptr || !options->has_history() || expired(*it->second, *options, now)) {
      drop(it);
    } else if (publications_expired(*it->second, *options, now)) {
      clear(*it->second);
    }
    it = next;
  }
}

}  // namespace wsrelay::pubsub
