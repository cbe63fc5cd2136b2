// hub: channels on this node — topic ↔ subscriber sets, fan-out, sequence numbers.
// Owns: the channel table. Does not own subscribers: a Subscriber must call
// unsubscribe_all() before it is destroyed (Session does, on close).
// Uses: Subscriber, Frame. Single-threaded (the lws loop).
#pragma once

#include "pubsub/broker.hpp"
#include "pubsub/subscriber.hpp"
#include "stats/stats.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wsrelay::pubsub {

class Hub final : public Broker {
 public:
  // Returns false if sub was already subscribed.
  bool subscribe(std::string_view channel, Subscriber* sub);
  // Returns false if sub was not subscribed. An emptied channel is removed.
  bool unsubscribe(std::string_view channel, Subscriber* sub);
  void unsubscribe_all(Subscriber* sub);

  std::size_t publish(std::string_view channel, const frame::FramePtr& frame,
                      const Subscriber* exclude) override;

  // Per-channel counter, 1 on the first call. Lives as long as the channel has
  // subscribers; a channel that empties starts again at 1.
  std::uint64_t next_seq(std::string_view channel);

  std::size_t channel_count() const { return channels_.size(); }
  std::size_t subscriber_count(std::string_view channel) const;
  std::size_t subscription_count() const { return subscriptions_; }
  std::uint64_t deliveries() const { return deliveries_; }

  // Where a publish's deliveries are counted by type (once per publish, not
  // per subscriber); null: not counted.
  void set_stats(stats::Stats* stats) { stats_ = stats; }

 private:
  struct Channel {
    std::vector<Subscriber*> subscribers;  // vector: fan-out is a linear scan of pointers
    std::uint64_t seq = 0;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Channel, StringHash, std::equal_to<>> channels_;
  std::unordered_map<std::string, std::uint64_t, StringHash, std::equal_to<>> orphan_seq_;
  std::size_t subscriptions_ = 0;
  std::uint64_t deliveries_ = 0;
  stats::Stats* stats_ = nullptr;
};

}  // namespace wsrelay::pubsub
