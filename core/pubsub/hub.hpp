// hub: channels on this node — the memory engine. Topic ↔ subscriber sets,
// fan-out, the per-channel seq of plain channels, and, for channels the
// config gives memory (channel_options), their streams (History) and presence.
// Owns: the channel table and the History. Does not own subscribers: a
// Subscriber must call unsubscribe_all() before it is destroyed (Session
// does, on close).
// Uses: Subscriber, Frame, History. Single-threaded (the lws loop).
#pragma once

#include "pubsub/broker.hpp"
#include "pubsub/channel_options.hpp"
#include "pubsub/history.hpp"
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
  explicit Hub(History::Clock clock = History::steady_ms) : history_(std::size_t{64} << 20, std::move(clock)) {}

  // The config's channel_options and limits.history_memory_mb.
  void configure(ChannelRules rules, std::size_t history_memory_bytes);

  const ChannelOptions* channel_options(std::string_view channel) const override { return rules_.find(channel); }

  // Plain form (no recovery): false if sub was already subscribed.
  bool subscribe(std::string_view channel, Subscriber* sub) { return subscribe(channel, sub, nullptr).added; }
  Subscribed subscribe(std::string_view channel, Subscriber* sub, const Position* since) override;
  // Returns false if sub was not subscribed. An emptied channel is removed.
  bool unsubscribe(std::string_view channel, Subscriber* sub) override;
  void unsubscribe_all(Subscriber* sub) override;

  Published publish(std::string_view channel, const frame::FramePtr& frame, const PublishOptions& options) override;
  std::size_t publish(std::string_view channel, const frame::FramePtr& frame, const Subscriber* exclude) {
    return publish(channel, frame, PublishOptions{exclude, true}).delivered;
  }

  std::optional<HistoryPage> history(std::string_view channel, std::size_t limit, const Position* since) override;
  std::optional<std::vector<PresenceEntry>> presence(std::string_view channel) const override;

  // Per-channel counter of plain channels, 1 on the first call. Lives as long
  // as the channel has subscribers; a channel that empties starts again at 1.
  std::uint64_t next_seq(std::string_view channel);

  // Once a second or so: drops streams past their history_ttl (of a channel
  // with subscribers, only its kept publications: its position stays).
  void tick();

  std::size_t channel_count() const { return channels_.size(); }
  std::size_t subscriber_count(std::string_view channel) const;
  std::size_t subscription_count() const { return subscriptions_; }
  std::uint64_t deliveries() const { return deliveries_; }
  const History& history_store() const { return history_; }
  // Subscriptions of channels with presence (what presence answers list).
  std::size_t presence_entries() const;
  std::uint64_t recoveries(bool recovered) const { return recovered ? recovered_ : not_recovered_; }

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
  std::size_t fan_out(std::string_view channel, const frame::FramePtr& frame, const Subscriber* exclude);

  std::unordered_map<std::string, Channel, StringHash, std::equal_to<>> channels_;
  std::unordered_map<std::string, std::uint64_t, StringHash, std::equal_to<>> orphan_seq_;
  ChannelRules rules_;
  History history_;
  std::size_t subscriptions_ = 0;
  std::uint64_t deliveries_ = 0;
  std::uint64_t recovered_ = 0;
  std::uint64_t not_recovered_ = 0;
  stats::Stats* stats_ = nullptr;
};

// The object text with `"seq":N` added as its last member (the engine's
// position, spliced into the already-encoded object: no second encoding).
// object must be a JSON object's text ending in '}'.
frame::FramePtr with_seq(std::string_view object, std::uint64_t seq);

// Null when text may be kept in a history channel (a JSON object without a
// top-level "seq": the engine writes that one); otherwise why not. For
// publications that arrive as text (a string from Lua, /admin/broadcast, an
// extension plugin); an encoded Lua table is checked by its field instead.
const char* history_message_problem(std::string_view text);

}  // namespace wsrelay::pubsub
