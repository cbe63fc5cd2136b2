#include "connection/rate_gate.hpp"

#include "session/log_fields.hpp"
#include "util/log.hpp"

#include <string>

namespace wsrelay::connection {

RateGate::RateGate(server::Admission& admission, const config::Limits& limits, stats::Stats* stats)
    : session::MessageGate(!limits.message_types.empty()),
      admission_(admission),
      limits_(limits),
      stats_(stats),
      bucket_(admission.connection_bucket()) {}

RateGate::Answer RateGate::admit_message(std::int64_t now_ms) {
  std::int64_t retry_ms = 0;
  if (!bucket_.take(now_ms)) return refuse(bucket_.retry_after_ms(now_ms), "");
  const std::string& user = session_ != nullptr && session_->user() ? *session_->user() : std::string();
  const std::string& address = session_ != nullptr ? session_->info().remote : std::string();
  if (!admission_.allow_shared(address, user, now_ms, retry_ms)) return refuse(retry_ms, "");
  return {};
}

RateGate::Answer RateGate::admit_type(std::string_view type, std::int64_t now_ms) {
  const auto& rates = limits_.message_types;
  std::size_t index = 0;
  while (index < rates.size() && rates[index].type != type) ++index;
  if (index == rates.size()) return {};
  if (!type_buckets_) {
    type_buckets_ = std::make_unique<std::vector<util::TokenBucket>>();
    for (const config::MessageTypeRate& rate : rates) type_buckets_->emplace_back(rate.per_second, rate.burst);
  }
  util::TokenBucket& bucket = (*type_buckets_)[index];
  if (bucket.take(now_ms)) return {};
  return refuse(bucket.retry_after_ms(now_ms), type);
}

RateGate::Answer RateGate::refuse(std::int64_t retry_after_ms, std::string_view what) {
  if (stats_ != nullptr) ++stats_->rate_limited;
  ++refused_in_a_row_;
  const int close_after = limits_.rate_limit_close_after;
  if (close_after > 0 && refused_in_a_row_ >= close_after && session_ != nullptr) {
    log::warn((what.empty() ? std::string() : "'" + std::string(what) + "' ") + "rate limit exceeded " +
                  std::to_string(close_after) + " times in a row; closing with 1008",
              session::log_fields(*session_));
    session_->close(1008, "rate limit exceeded");
    return {Verdict::Closed, 0};
  }
  return {Verdict::Refused, retry_after_ms};
}

}  // namespace wsrelay::connection
