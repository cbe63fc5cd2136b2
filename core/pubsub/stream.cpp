#include "pubsub/stream.hpp"

namespace wsrelay::pubsub {

std::uint64_t Stream::append(frame::FramePtr frame, std::size_t keep, std::int64_t now_ms) {
  ++top_;
  last_publish_ms_ = now_ms;
  Entry entry{top_, std::move(frame)};
  bytes_ += cost(entry);
  if (!entries_) entries_.emplace();
  entries_->push_back(std::move(entry));
  while (entries_->size() > keep) drop_oldest();
  return top_;
}

bool Stream::drop_oldest() {
  if (size() == 0) return false;
  bytes_ -= cost(entries_->front());
  entries_->pop_front();
  return true;
}

void Stream::clear() {
  entries_.reset();
  bytes_ = position_cost(channel_);
}

Gap Stream::after(const Position& since, std::size_t limit, std::vector<frame::FramePtr>* out) const {
  if (since.epoch != epoch_) return Gap::EpochDiffers;
  if (since.seq > top_) return Gap::Ahead;
  if (since.seq < top_) {
    // The first publication the client lacks is since.seq + 1: it must still be kept.
    if (size() == 0 || entries_->front().seq > since.seq + 1) return Gap::TooOld;
  }
  if (out != nullptr && since.seq < top_) {
    // Kept seqs are consecutive, so the first missed one sits at a known index.
    const std::deque<Entry>& kept = *entries_;
    std::size_t i = static_cast<std::size_t>(since.seq + 1 - kept.front().seq);
    for (; i < kept.size() && out->size() < limit; ++i) out->push_back(kept[i].frame);
  }
  return Gap::Filled;
}

std::vector<frame::FramePtr> Stream::latest(std::size_t limit) const {
  std::vector<frame::FramePtr> out;
  const std::size_t kept = size();
  const std::size_t n = kept < limit ? kept : limit;
  out.reserve(n);
  for (std::size_t i = kept - n; i < kept; ++i) out.push_back((*entries_)[i].frame);
  return out;
}

}  // namespace wsrelay::pubsub
