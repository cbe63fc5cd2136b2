// registry: open sessions by id, so scripts can address a session they saw
// earlier (relay.send(id, ...)) without holding a pointer that may dangle.
#pragma once

#include "session/session.hpp"

#include <string_view>
#include <unordered_map>

namespace wsrelay::session {

class Registry {
 public:
  void add(Session* s) { by_id_.emplace(s->id(), s); }
  void remove(Session* s) { by_id_.erase(s->id()); }
  Session* find(std::string_view id) const {
    auto it = by_id_.find(std::string(id));
    return it == by_id_.end() ? nullptr : it->second;
  }
  std::size_t size() const { return by_id_.size(); }
  template <typename F>
  void for_each(F&& f) const {
    for (auto& [id, s] : by_id_) f(*s);
  }

 private:
  std::unordered_map<std::string, Session*> by_id_;
};

}  // namespace wsrelay::session
