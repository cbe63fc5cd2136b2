#include "pubsub/hub.hpp"

#include "json/json.hpp"

#include <cjson/cJSON.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace wsrelay::pubsub {

frame::FramePtr with_seq(std::string_view object, std::uint64_t seq) {
  // Trailing whitespace of a string publication goes before the splice.
  while (!object.empty() && (object.back() == ' ' || object.back() == '\n' || object.back() == '\r' ||
                             object.back() == '\t')) {
    object.remove_suffix(1);
  }
  object.remove_suffix(1);  // the closing '}'
  std::string_view body = object.substr(1);
  const bool empty = body.find_first_not_of(" \n\r\t") == std::string_view::npos;
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, seq).ptr;
  std::string text;
  text.reserve(object.size() + 12 + static_cast<std::size_t>(end - digits));
  text.append(object);
  text.append(empty ? "\"seq\":" : ",\"seq\":");
  text.append(digits, end);
  text.push_back('}');
  return frame::Frame::text(text);
}

const char* history_message_problem(std::string_view text) {
  json::JsonPtr root = json::parse(text);
  if (root == nullptr || !cJSON_IsObject(root.get())) {
    return "a message kept in a history channel must be a JSON object";
  }
  if (cJSON_GetObjectItemCaseSensitive(root.get(), "seq") != nullptr) {
    return "a message kept in a history channel must not have a 'seq' field: the engine assigns it";
  }
  return nullptr;
}

namespace {
// The cheap half of the rule, for every publication: the splice needs an
// object's closing brace.
bool looks_like_object(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \n\r\t");
  const std::size_t last = text.find_last_not_of(" \n\r\t");
  return first != std::string_view::npos && text[first] == '{' && text[last] == '}';
}
}  // namespace

void Hub::configure(ChannelRules rules, std::size_t history_memory_bytes) {
  rules_ = std::move(rules);
  history_.set_memory_limit(history_memory_bytes);
}

Subscribed Hub::subscribe(std::string_view channel, Subscriber* sub, const Position* since) {
  Subscribed result;
  if (!sub->channels_.contains(channel)) {
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
    result.added = true;
  }
  const ChannelOptions* options = rules_.find(channel);
  if (options == nullptr || !options->has_history()) return result;
  // Looked up before it is held, so a first subscriber after the ttl gets a
  // fresh stream; held from now on, so its seq goes on while subscribed.
  Stream& stream = history_.stream(channel, *options);
  history_.hold(stream);
  result.position = Position{stream.epoch(), stream.top()};
  if (since != nullptr) {
    const Gap gap = stream.after(*since, options->history_size, &result.missed);
    result.recovery = gap == Gap::Filled ? Recovery::Recovered : Recovery::NotRecovered;
    ++(gap == Gap::Filled ? recovered_ : not_recovered_);
  }
  return result;
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
    if (subs.empty()) {
      // Nobody follows the stream now: its ttl counts from here.
      if (const ChannelOptions* options = rules_.empty() ? nullptr : rules_.find(channel);
          options != nullptr && options->has_history()) {
        history_.release(channel);
      }
      channels_.erase(it);
    }
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

std::size_t Hub::fan_out(std::string_view channel, const frame::FramePtr& frame, const Subscriber* exclude) {
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

Published Hub::publish(std::string_view channel, const frame::FramePtr& frame, const PublishOptions& options) {
  Published result;
  const ChannelOptions* channel_options = rules_.empty() ? nullptr : rules_.find(channel);
  if (channel_options == nullptr || !channel_options->has_history() || !options.history || frame->is_binary()) {
    result.delivered = fan_out(channel, frame, options.exclude);
    return result;
  }
  if (!looks_like_object(frame->payload())) {
    result.refused = "a message kept in a history channel must be a JSON object";
    return result;
  }
  Stream& stream = history_.stream(channel, *channel_options);
  frame::FramePtr positioned = with_seq(frame->payload(), stream.top() + 1);
  result.seq = history_.append(stream, positioned, *channel_options);
  result.delivered = fan_out(channel, positioned, options.exclude);
  return result;
}

std::optional<HistoryPage> Hub::history(std::string_view channel, std::size_t limit, const Position* since) {
  const ChannelOptions* options = rules_.find(channel);
  if (options == nullptr || !options->has_history()) return std::nullopt;
  limit = std::min(limit, options->history_size);
  Stream& stream = history_.stream(channel, *options);
  HistoryPage page;
  page.position = Position{stream.epoch(), stream.top()};
  if (since == nullptr) {
    page.messages = stream.latest(limit);
  } else {
    const Gap gap = stream.after(*since, limit, &page.messages);
    page.recovery = gap == Gap::Filled ? Recovery::Recovered : Recovery::NotRecovered;
  }
  return page;
}

std::optional<std::vector<PresenceEntry>> Hub::presence(std::string_view channel) const {
  const ChannelOptions* options = rules_.find(channel);
  if (options == nullptr || !options->presence) return std::nullopt;
  std::vector<PresenceEntry> out;
  auto it = channels_.find(channel);
  if (it == channels_.end()) return out;
  out.reserve(it->second.subscribers.size());
  for (const Subscriber* sub : it->second.subscribers) {
    out.push_back(PresenceEntry{std::string(sub->presence_session()), sub->presence_user()});
  }
  return out;
}

std::size_t Hub::presence_entries() const {
  if (rules_.empty()) return 0;
  std::size_t n = 0;
  for (const auto& [name, channel] : channels_) {
    const ChannelOptions* options = rules_.find(name);
    if (options != nullptr && options->presence) n += channel.subscribers.size();
  }
  return n;
}

void Hub::tick() {
  if (history_.stream_count() == 0) return;
  history_.expire([this](std::string_view channel) { return rules_.find(channel); });
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
