// timers: the scripts' relay.after / relay.every, as a pure queue — no clock,
// no lws. The loop asks for the earliest deadline, and at or after it hands
// the current time to take_due(); it is unit-tested with made-up times
// (tests/unit/test_timers.cpp), like session/keepalive.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <unordered_map>
#include <vector>

namespace wsrelay::loop {

using TimerId = std::uint64_t;

class Timers {
 public:
  struct Due {
    TimerId id = 0;
    const void* owner = nullptr;
    bool repeating = false;
  };

  // A timer that fires at now_ms + delay_ms, then (interval_ms > 0) every
  // interval_ms after the time it was due (not after it ran, so an every(1)
  // does not drift). owner: who cancels it wholesale (a script's engine).
  TimerId add(std::int64_t now_ms, std::int64_t delay_ms, std::int64_t interval_ms, const void* owner) {
    const TimerId id = ++last_id_;
    const std::int64_t due = now_ms + (delay_ms > 0 ? delay_ms : 0);
    live_.emplace(id, Entry{due, interval_ms, owner});
    heap_.push({due, id});
    changed();
    return id;
  }

  // False: it was not live (fired already, or cancelled).
  bool cancel(TimerId id) {
    if (live_.erase(id) == 0) return false;
    changed();  // the heap keeps a stale slot, skipped when reached
    return true;
  }

  // Every timer of one owner (a script reload, an engine going away).
  std::size_t cancel_owned_by(const void* owner) {
    std::size_t n = 0;
    for (auto it = live_.begin(); it != live_.end();) {
      if (it->second.owner == owner) {
        it = live_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    if (n > 0) changed();
    return n;
  }

  // The earliest deadline of a live timer.
  std::optional<std::int64_t> next_deadline() {
    drop_stale();
    if (heap_.empty()) return std::nullopt;
    return heap_.top().due;
  }

  // The timers due at now_ms, earliest first. Repeating ones are rescheduled
  // before they are returned (a callback may cancel its own handle); one due
  // several periods ago fires once and skips the periods it missed.
  std::vector<Due> take_due(std::int64_t now_ms) {
    std::vector<Due> out;
    for (;;) {
      drop_stale();
      if (heap_.empty() || heap_.top().due > now_ms) break;
      const Slot slot = heap_.top();
      heap_.pop();
      auto it = live_.find(slot.id);
      Entry& e = it->second;
      out.push_back({slot.id, e.owner, e.interval > 0});
      if (e.interval > 0) {
        std::int64_t next = e.due + e.interval;
        if (next <= now_ms) next = now_ms + e.interval;
        e.due = next;
        heap_.push({next, slot.id});
      } else {
        live_.erase(it);
      }
    }
    if (!out.empty()) changed();
    return out;
  }

  std::size_t size() const { return live_.size(); }
  std::size_t count_owned_by(const void* owner) const {
    std::size_t n = 0;
    for (const auto& [id, e] : live_) n += e.owner == owner ? 1 : 0;
    return n;
  }

  // Told whenever the earliest deadline may have moved, so the loop can
  // reschedule its one wake-up.
  std::function<void()> on_change;

 private:
  struct Entry {
    std::int64_t due;
    std::int64_t interval;
    const void* owner;
  };
  struct Slot {
    std::int64_t due;
    TimerId id;
    bool operator>(const Slot& o) const { return due != o.due ? due > o.due : id > o.id; }
  };
  void drop_stale() {
    // A slot is stale when its timer was cancelled or rescheduled to a later due.
    while (!heap_.empty()) {
      auto it = live_.find(heap_.top().id);
      if (it != live_.end() && it->second.due == heap_.top().due) return;
      heap_.pop();
    }
  }
  void changed() {
    if (on_change) on_change();
  }

  TimerId last_id_ = 0;
  std::unordered_map<TimerId, Entry> live_;
  std::priority_queue<Slot, std::vector<Slot>, std::greater<Slot>> heap_;
};

}  // namespace wsrelay::loop
