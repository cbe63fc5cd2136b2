#include "pubsub/hub.hpp"

#include <algorithm>

namespace wsrelay::pubsub {

bool Hub::subscribe(std::string_view channel, Subscriber* sub) {
  if (sub->channels_.contains(channel)) return false;
  auto it = channels_.find(channel);
  if (it == channels_.end()) {
    it = channels_.emplace(std::string(channel), Channel{}).first;
    // A seq handed out while the channel had no subscribers carries on.
    if (auto orphan = orphan_seq_.find(channel); orphan != orphan_seq_.end()) {
      it->second.seq = orphan->second;
      orphan_seq_.erase(orphan);
    }
  }
  it->second.subscribers.push_back(sub);
  sub->channels_.emplace(channel);
  ++subscriptions_;
  return true;
}

bool Hub::unsubscribe(std::string_view channel, Subscriber* sub) {
  auto mine = sub->channels_.find(channel);
  if (mine == sub->channels_.end()) return false;
  sub->channels_.erase(mine);
  auto it = channels_.find(channel);
  if (it != channels_.end()) {
    auto& subs = it->second.subscribers;
    auto pos = std::find(subs.begin(), subs.end(), sub);
    if (pos != subs.end()) {
      // Order of delivery between subscribers carries no meaning: swap-remove.
      *pos = subs.back();
      subs.pop_back();
    }
    if (subs.empty()) channels_.erase(it);
  }
  --subscriptions_;
  return true;
}

void Hub::unsubscribe_all(Subscriber* sub) {
  while (!sub->channels_.empty()) {
    const std::string channel = *sub->channels_.begin();
    unsubscribe(channel, sub);
  }
}

std::size_t Hub::publish(std::string_view channel, const frame::FramePtr& frame,
                         const Subscriber* exclude) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return 0;
  std::size_t delivered = 0;
  // Subscribers must not re-enter the hub from deliver(), so iterating the
  // vector directly is safe.
  for (Subscriber* sub : it->second.subscribers) {
    if (sub == exclude) continue;
    sub->deliver(frame);
    ++delivered;
  }
  deliveries_ += delivered;
  if (stats_ != nullptr && delivered != 0) stats_->count_out_type(frame->payload(), frame->is_binary(), delivered);
  return delivered;
}

std::uint64_t Hub::next_seq(std::string_view channel) {
  auto it = channels_.find(channel);
  if (it != channels_.end()) return ++it->second.seq;
  // No subscribers: nobody can observe a gap, but the sender's reply still
  // needs a number. Keep it only until the table grows large, so a stream of
  // unique channel names cannot grow memory without bound.
  if (orphan_seq_.size() > 10000) orphan_seq_.clear();
  return ++orphan_seq_[std::string(channel)];
}

std::size_t Hub::subscriber_count(std::string_view channel) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? 0 : it->second.subscribers.size();
}

}  // namespace wsrelay::pubsub
