#include "server/admission.hpp"

namespace wsrelay::server {

Admission::Verdict Admission::check(const std::string& address, std::uint64_t open_connections) const {
  if (limits_.max_connections > 0 && open_connections >= static_cast<std::uint64_t>(limits_.max_connections)) {
    return Verdict::TooManyConnections;
  }
  auto it = addresses_.find(address);
  if (limits_.max_connections_per_ip > 0 && it != addresses_.end() &&
      it->second.connections >= limits_.max_connections_per_ip) {
    return Verdict::TooManyFromAddress;
  }
  return Verdict::Admit;
}

Admission::Verdict Admission::admit(const std::string& address, std::uint64_t open_connections) {
  if (limits_.max_connections > 0 && open_connections >= static_cast<std::uint64_t>(limits_.max_connections)) {
    return Verdict::TooManyConnections;
  }
  Address& a = addresses_[address];
  if (limits_.max_connections_per_ip > 0 && a.connections >= limits_.max_connections_per_ip) {
    if (a.connections == 0) addresses_.erase(address);
    return Verdict::TooManyFromAddress;
  }
  if (a.connections == 0) {
    a.bucket = util::TokenBucket(limits_.ip_messages_per_second, limits_.message_burst);
  }
  ++a.connections;
  return Verdict::Admit;
}

void Admission::release(const std::string& address) {
  auto it = addresses_.find(address);
  if (it == addresses_.end()) return;
  // The entry (and its rate bucket) lives as long as the address has a
  // connection, so a stream of one-off clients leaves nothing behind.
  if (--it->second.connections <= 0) addresses_.erase(it);
}

bool Admission::origin_allowed(const std::vector<std::string>& allowed, const std::string& origin,
                               const std::string& host) {
  if (allowed.empty()) return true;
  std::string o = origin;
  while (o.size() > 1 && o.back() == '/') o.pop_back();
  for (const auto& a : allowed) {
    if (a == "*" || a == o) return true;
    if (a == "self" && !host.empty() && !o.empty() && (o == "http://" + host || o == "https://" + host)) return true;
  }
  return false;
}

bool Admission::allow_shared(const std::string& address, const std::string& user, std::int64_t now_ms,
                             std::int64_t& retry_after_ms) {
  if (limits_.ip_messages_per_second > 0) {
    auto it = addresses_.find(address);
    if (it != addresses_.end() && !it->second.bucket.take(now_ms)) {
      retry_after_ms = it->second.bucket.retry_after_ms(now_ms);
      return false;
    }
  }
  if (limits_.user_messages_per_second > 0 && !user.empty()) {
    // Forget users idle for a minute so the table stays as small as the set
    // of active users.
    if (users_.size() > 4096) {
      for (auto it = users_.begin(); it != users_.end();) {
        it = now_ms - it->second.last_ms > 60000 ? users_.erase(it) : std::next(it);
      }
    }
    auto [it, inserted] = users_.try_emplace(user);
    if (inserted) it->second.bucket = util::TokenBucket(limits_.user_messages_per_second, limits_.message_burst);
    it->second.last_ms = now_ms;
    if (!it->second.bucket.take(now_ms)) {
      retry_after_ms = it->second.bucket.retry_after_ms(now_ms);
      return false;
    }
  }
  return true;
}

}  // namespace wsrelay::server
