// registry: open sessions by id, so scripts can address a session they saw
// earlier (relay.send(id, ...)) without holding a pointer that may dangle.
// Also keeps the most sessions open at once since the last give_back(): the
// keepalive sweep's sign that a burst of connections is over.
#pragma once

#include "session/session.hpp"

#include <algorithm>
#include <string_view>
#include <unordered_map>

namespace wsrelay::session {

class Registry {
 public:
  void add(Session* s) {
    by_id_.emplace(s->id(), s);
    peak_ = std::max(peak_, by_id_.size());
  }
  void remove(Session* s) { by_id_.erase(s->id()); }
  Session* find(std::string_view id) const {
    auto it = by_id_.find(std::string(id));
    return it == by_id_.end() ? nullptr : it->second;
  }
  std::size_t size() const { return by_id_.size(); }
  // The most sessions open at once since the last give_back().
  std::size_t peak() const { return peak_; }
  // After a burst: the bucket array back to the size the open sessions need
  // (an unordered_map never shrinks it by itself), and the peak restarts
  // from the sessions open now.
  void give_back() {
    by_id_.rehash(0);
    peak_ = by_id_.size();
  }
  template <typename F>
  void for_each(F&& f) const {
    for (auto& [id, s] : by_id_) f(*s);
  }

 private:
  std::unordered_map<std::string, Session*> by_id_;
  std::size_t peak_ = 0;
};

}  // namespace wsrelay::session
