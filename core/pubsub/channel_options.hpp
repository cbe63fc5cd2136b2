// channel_options: what a channel keeps (history, presence, join/leave), by
// the config's `channel_options` rules. Pure data and matching: no hub, no
// clock. `match` follows the JWT `channels` claim's rule: an exact name, or a
// prefix ending in `*`; the first rule that matches wins.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsrelay::pubsub {

struct ChannelOptions {
  std::size_t history_size = 0;  // publications kept; 0: no history (today's behaviour)
  std::int64_t history_ttl_s = 0;  // the stream is kept this long after its last publication
  bool presence = false;           // presence / presence_stats answer
  bool join_leave = false;         // scripts announce join and leave
  bool has_history() const { return history_size != 0; }
};

struct ChannelRule {
  std::string match;  // "room1" or "room*"
  ChannelOptions options;
};

inline bool channel_rule_matches(std::string_view pattern, std::string_view channel) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return channel.substr(0, pattern.size()) == pattern;
  }
  return pattern == channel;
}

class ChannelRules {
 public:
  ChannelRules() = default;
  explicit ChannelRules(std::vector<ChannelRule> rules) : rules_(std::move(rules)) {}

  // The options of the first rule matching channel; null: none (a plain channel).
  const ChannelOptions* find(std::string_view channel) const {
    for (const ChannelRule& rule : rules_) {
      if (channel_rule_matches(rule.match, channel)) return &rule.options;
    }
    return nullptr;
  }
  bool empty() const { return rules_.empty(); }
  const std::vector<ChannelRule>& rules() const { return rules_; }

 private:
  std::vector<ChannelRule> rules_;
};

}  // namespace wsrelay::pubsub
