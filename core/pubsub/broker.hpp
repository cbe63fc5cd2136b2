// broker: what a channel engine offers — publish, subscribe (with recovery),
// history and presence. Local memory (Hub) is the one implementation today;
// a Redis engine that spans several relay nodes is the next, so the script
// bridges and routes speak to this interface rather than to the Hub.
#pragma once

#include "frame/frame.hpp"
#include "pubsub/channel_options.hpp"
#include "pubsub/stream.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsrelay::pubsub {

class Subscriber;

struct PublishOptions {
  const Subscriber* exclude = nullptr;  // not delivered to this one
  // false: an ephemeral broadcast (typing, join/leave) in a history channel:
  // no seq, not kept, not replayed.
  bool history = true;
};

struct Published {
  std::size_t delivered = 0;  // subscribers reached on this node
  std::uint64_t seq = 0;      // the position assigned in a history channel; 0: none
  // Non-empty: nothing was published, and why (a history channel's message
  // that is not a JSON object). Nothing is silently dropped.
  std::string refused;
};

enum class Recovery { NotAsked, Recovered, NotRecovered };

struct Subscribed {
  bool added = false;                   // false: was already subscribed
  std::optional<Position> position;     // the stream's latest position, in a history channel
  Recovery recovery = Recovery::NotAsked;
  std::vector<frame::FramePtr> missed;  // when recovered: the publications after `since`, oldest first
};

struct HistoryPage {
  Position position;                    // the stream's latest
  Recovery recovery = Recovery::NotAsked;  // with `since`: could everything after it be given?
  std::vector<frame::FramePtr> messages;   // oldest first
};

struct PresenceEntry {
  std::string session;
  std::optional<std::string> user;
};

class Broker {
 public:
  virtual ~Broker() = default;

  // What the config says this channel keeps; null: a plain channel.
  virtual const ChannelOptions* channel_options(std::string_view channel) const = 0;

  // Delivers frame to every subscriber of channel. In a history channel (and
  // options.history) the frame must hold a JSON object without "seq": the
  // engine assigns the position, splices "seq" into the encoded object and
  // keeps that one buffer in the history and every subscriber's queue.
  virtual Published publish(std::string_view channel, const frame::FramePtr& frame,
                            const PublishOptions& options) = 0;

  // since: continue from this position (history channels only; ignored
  // elsewhere). The caller delivers `missed` before any newer publication.
  virtual Subscribed subscribe(std::string_view channel, Subscriber* sub, const Position* since) = 0;
  virtual bool unsubscribe(std::string_view channel, Subscriber* sub) = 0;
  virtual void unsubscribe_all(Subscriber* sub) = 0;

  // Null when the channel has no history. limit: at most this many (capped
  // by history_size); with since, the first ones after it, else the latest.
  virtual std::optional<HistoryPage> history(std::string_view channel, std::size_t limit,
                                             const Position* since) = 0;
  // Null when the channel has no presence.
  virtual std::optional<std::vector<PresenceEntry>> presence(std::string_view channel) const = 0;
};

}  // namespace wsrelay::pubsub
