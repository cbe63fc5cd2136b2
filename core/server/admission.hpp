// admission: who may connect and how fast they may talk — connection caps
// (total, per client address), origin allow-lists, and the per-connection,
// per-user and per-address message rate limits of config "limits".
// Owns: per-address and per-user state. lws-free: the protocol asks, this answers.
#pragma once

#include "config/config.hpp"
#include "util/token_bucket.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace wsrelay::server {

class Admission {
 public:
  explicit Admission(const config::Limits& limits) : limits_(limits) {}

  enum class Verdict { Admit, TooManyConnections, TooManyFromAddress };
  // check: at the upgrade, to answer 503 before accepting (counts nothing).
  // admit: when the connection is established; must be released once.
  Verdict check(const std::string& address, std::uint64_t open_connections) const;
  Verdict admit(const std::string& address, std::uint64_t open_connections);
  void release(const std::string& address);

  // "*" allows any Origin; "self" an Origin naming the host the request was
  // sent to (http://<Host> or https://<Host>): the page the relay serves.
  static bool origin_allowed(const std::vector<std::string>& allowed, const std::string& origin,
                             const std::string& host = {});

  // A fresh bucket for a new connection.
  util::TokenBucket connection_bucket() const {
    return util::TokenBucket(limits_.messages_per_second, limits_.message_burst);
  }
  // The shared per-address and per-user buckets (when configured). On refusal
  // sets retry_after_ms.
  bool allow_shared(const std::string& address, const std::string& user, std::int64_t now_ms,
                    std::int64_t& retry_after_ms);

  const config::Limits& limits() const { return limits_; }

 private:
  struct Address {
    int connections = 0;
    util::TokenBucket bucket;
  };
  struct User {
    util::TokenBucket bucket;
    std::int64_t last_ms = 0;
  };
  config::Limits limits_;
  std::unordered_map<std::string, Address> addresses_;
  std::unordered_map<std::string, User> users_;
};

}  // namespace wsrelay::server
