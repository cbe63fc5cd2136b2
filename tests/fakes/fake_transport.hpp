// fake_transport: a recording session::Transport for socket-free unit tests.
// Owns: nothing but counters. A real Session queues frames and asks its
// transport for a write; here the test is the writer, draining the queue the
// way the protocol's WRITEABLE callback would (one frame at a time).
#pragma once

#include "session/session.hpp"

#include <string>
#include <vector>

namespace wsrelay::fakes {

struct FakeTransport : session::Transport {
  int write_requests = 0;
  void request_write() override { ++write_requests; }
};

// Everything queued on s so far, oldest first; leaves the queue empty.
inline std::vector<std::string> drain(session::Session& s) {
  std::vector<std::string> payloads;
  while (s.has_pending()) {
    payloads.emplace_back(s.front()->payload());
    s.pop_front();
  }
  return payloads;
}

// Same, keeping the frames themselves (for identity and binary checks).
inline std::vector<frame::FramePtr> drain_frames(session::Session& s) {
  std::vector<frame::FramePtr> frames;
  while (s.has_pending()) {
    frames.push_back(s.front());
    s.pop_front();
  }
  return frames;
}

}  // namespace wsrelay::fakes
