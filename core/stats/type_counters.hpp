// type_counters: message counters by type for /status and /metrics.
// Owns: the counters. Uses: nothing.
// Counted once per message on the hot path, so the last few types seen keep
// a pointer to their counter (map nodes never move): traffic is mostly a few
// types, often alternating (a publish's "chat" and its sender's "chat.ok"),
// and most calls then skip the map lookup. Bounded: once `max_types` names
// are held, every new one counts under `overflow`, so a client cannot grow
// it without bound.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace wsrelay::stats {

class TypeCounters {
 public:
  using Map = std::map<std::string, std::uint64_t, std::less<>>;

  // At least two: one name and the overflow.
  TypeCounters(std::size_t max_types, std::string_view overflow)
      : max_types_(max_types < 2 ? 2 : max_types), overflow_(overflow) {}
  // Not copyable: the cache points into the map.
  TypeCounters(const TypeCounters&) = delete;
  TypeCounters& operator=(const TypeCounters&) = delete;

  void add(std::string_view type, std::uint64_t messages = 1) {
    for (Recent& r : recent_) {
      if (r.counter != nullptr && r.type == type) {
        *r.counter += messages;
        return;
      }
    }
    Recent& slot = recent_[next_];
    next_ = (next_ + 1) % recent_.size();
    slot.type.assign(type);  // before `type` may be mapped to the overflow name
    auto it = counters_.find(type);
    if (it == counters_.end()) {
      // One slot stays for the overflow name, where every later type goes.
      if (counters_.size() >= max_types_ - 1) type = overflow_;
      it = counters_.try_emplace(std::string(type), 0).first;
    }
    it->second += messages;
    slot.counter = &it->second;
  }

  const Map& map() const { return counters_; }
  std::size_t max_types() const { return max_types_; }

 private:
  struct Recent {
    std::string type;
    std::uint64_t* counter = nullptr;
  };
  Map counters_;
  std::size_t max_types_;
  std::string overflow_;
  std::array<Recent, 4> recent_;
  std::size_t next_ = 0;
};

}  // namespace wsrelay::stats
