#include "session/session.hpp"

#include "session/log_fields.hpp"

#include <sys/random.h>

#include <cerrno>
#include <random>

namespace wsrelay::session {

Session::Session(std::string id, SessionInfo info, Transport* transport, Stats* stats,
                 std::size_t max_queue_bytes, bool drop_oldest)
    : id_(std::move(id)),
      info_(std::move(info)),
      transport_(transport),
      stats_(stats),
      max_queue_bytes_(max_queue_bytes),
      drop_oldest_(drop_oldest) {}

SendStatus Session::enqueue(const FramePtr& frame, bool count_type) {
  if (transport_ == nullptr || closing()) return SendStatus::Closed;
  if (drop_oldest_) {
    // Keep the newest: a live feed where only the latest state matters. The
    // frame at the front may be half written by lws already, so keep it.
    while (queued_bytes_ + frame->size() > max_queue_bytes_ && queue_.size() > 1) {
      queued_bytes_ -= queue_[1]->size();
      queue_.erase(1);
      ++dropped;
      if (stats_ != nullptr) ++stats_->frames_dropped;
      if (dropped == 1) log::warn("slow consumer: outbound queue full; dropping the oldest frames", log_fields(*this));
    }
  }
  if (queued_bytes_ + frame->size() > max_queue_bytes_ && !queue_.empty() && !drop_oldest_) {
    // A reader this far behind would grow memory without bound: let it go and
    // keep serving everyone else. 1008 (policy) with a reason saying why.
    if (stats_ != nullptr) ++stats_->slow_consumer_closes;
    log::warn("slow consumer: outbound queue full (" + std::to_string(queued_bytes_) + " bytes); closing with 1008",
              log_fields(*this));
    // The close must not wait behind megabytes the reader is not reading:
    // drop what is queued so the 1008 goes out next.
    queue_.clear();
    queued_bytes_ = 0;
    close(1008, "slow consumer: outbound queue full");
    return SendStatus::Overflow;
  }
  const bool was_empty = queue_.empty();
  queue_.push_back(frame);
  queued_bytes_ += frame->size();
  ++messages_out;
  if (stats_ != nullptr) {
    ++stats_->messages_out;
    stats_->bytes_out += frame->size();
    if (count_type) stats_->count_out_type(frame->payload(), frame->is_binary());
  }
  if (was_empty) transport_->request_write();
  return SendStatus::Queued;
}

void Session::hold(std::vector<FramePtr> missed) {
  holding_ = true;
  held_.reserve(held_.size() + missed.size());
  for (FramePtr& frame : missed) held_.emplace_back(std::move(frame), true);
}

void Session::release_held() {
  if (!holding_) return;
  holding_ = false;
  std::vector<std::pair<FramePtr, bool>> held;
  held.swap(held_);
  for (const auto& [frame, count_type] : held) {
    if (enqueue(frame, count_type) != SendStatus::Queued) break;  // closed or overflowed: the rest cannot follow
  }
}

void Session::close(int code, std::string reason) {
  if (closing()) return;
  close_code_ = code;
  close_reason_ = std::move(reason);
  if (transport_ != nullptr) transport_->request_write();
}

void Session::pop_front() {
  queued_bytes_ -= queue_.front()->size();
  queue_.pop_front();
}

std::string new_session_id() {
  // The kernel's CSPRNG, not OpenSSL's RAND_bytes: on a plain ws:// server
  // nothing else uses libcrypto, and the first RAND_bytes sets up OpenSSL's
  // providers and DRBGs for good: ~420 KiB of RSS (256 KiB of libcrypto code,
  // ~160 KiB of heap) on the first connection, most of what a churn run left
  // behind (bench/findings.md, "Churn: where the RSS goes").
  unsigned char bytes[8];
  ssize_t got = -1;
  do {
    got = getrandom(bytes, sizeof bytes, 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof bytes)) {
    // The CSPRNG failing is near impossible; fall back rather than refuse service.
    std::random_device rd;
    for (auto& b : bytes) b = static_cast<unsigned char>(rd());
  }
  static const char* hex = "0123456789abcdef";
  std::string id(16, '0');
  for (int i = 0; i < 8; ++i) {
    id[2 * i] = hex[bytes[i] >> 4];
    id[2 * i + 1] = hex[bytes[i] & 0xf];
  }
  return id;
}

}  // namespace wsrelay::session
