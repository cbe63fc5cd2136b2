// frame_queue: a session's outbound frames, oldest first.
// Owns: shared pointers to queued frames. Uses: nothing.
// Why not std::deque: libstdc++'s deque allocates its map and a 512-byte
// node when it is constructed, i.e. ~600 bytes for every idle connection.
// This is a vector and a read index: nothing allocated until the first
// frame, and the storage kept (up to kKeep slots) for the next message.
#pragma once

#include "frame/frame.hpp"

#include <cstddef>
#include <vector>

namespace wsrelay::frame {

class FrameQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  const FramePtr& front() const { return items_[head_]; }
  const FramePtr& operator[](std::size_t i) const { return items_[head_ + i]; }

  void push_back(const FramePtr& frame) {
    // Reading has caught up with a long queue: drop the consumed slots
    // before growing further.
    if (head_ > 0 && head_ >= items_.size() / 2 && items_.size() == items_.capacity()) compact();
    items_.push_back(frame);
  }
  void pop_front() {
    items_[head_].reset();
    if (++head_ == items_.size()) clear();
  }
  void pop_back() {
    items_.pop_back();
    if (head_ == items_.size()) clear();
  }
  void erase(std::size_t i) { items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(head_ + i)); }
  void clear() {
    items_.clear();
    head_ = 0;
    // A burst's storage goes back once it is drained; a few slots stay.
    if (items_.capacity() > kKeep) items_.shrink_to_fit();
  }

 private:
  static constexpr std::size_t kKeep = 8;
  void compact() {
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  std::vector<FramePtr> items_;
  std::size_t head_ = 0;
};

}  // namespace wsrelay::frame
