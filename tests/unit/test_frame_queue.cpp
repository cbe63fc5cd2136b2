// frame::FrameQueue: the outbound queue's order, middle erase and reuse.
#include <catch2/catch.hpp>

#include "frame/frame.hpp"
#include "frame/frame_queue.hpp"

#include <string>

using wsrelay::frame::Frame;
using wsrelay::frame::FramePtr;
using wsrelay::frame::FrameQueue;

TEST_CASE("frame queue: first in, first out, across compaction and reuse", "[frame_queue]") {
  FrameQueue q;
  CHECK(q.empty());
  int next_in = 0, next_out = 0;
  // Interleave pushes and pops so the read index runs ahead and the storage
  // is compacted and reused on the way.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 7; ++i) q.push_back(Frame::text(std::to_string(next_in++)));
    for (int i = 0; i < 5; ++i) {
      REQUIRE_FALSE(q.empty());
      CHECK(q.front()->payload() == std::to_string(next_out++));
      q.pop_front();
    }
  }
  CHECK(q.size() == static_cast<std::size_t>(next_in - next_out));
  while (!q.empty()) {
    CHECK(q.front()->payload() == std::to_string(next_out++));
    q.pop_front();
  }
  CHECK(next_out == next_in);
  q.push_back(Frame::text("again"));
  CHECK(q.size() == 1);
  CHECK(q.front()->payload() == "again");
}

TEST_CASE("frame queue: erase and pop_back keep the order of the rest", "[frame_queue]") {
  FrameQueue q;
  for (const char* s : {"a", "b", "c", "d"}) q.push_back(Frame::text(s));
  q.pop_front();  // b c d
  q.erase(1);     // b d
  REQUIRE(q.size() == 2);
  CHECK(q[0]->payload() == "b");
  CHECK(q[1]->payload() == "d");
  q.pop_back();
  REQUIRE(q.size() == 1);
  CHECK(q.front()->payload() == "b");
  q.pop_back();
  CHECK(q.empty());
}

TEST_CASE("frame: the payload follows the headroom, NUL-terminated", "[frame_queue]") {
  const auto f = Frame::text("hello");
  CHECK(f->payload() == "hello");
  CHECK(f->size() == 5);
  CHECK_FALSE(f->is_binary());
  CHECK(reinterpret_cast<const char*>(f->writable_payload()) == f->payload().data());
  CHECK(f->payload().data()[5] == '\0');
  CHECK(Frame::binary(std::string("\0x", 2))->is_binary());
  CHECK(Frame::binary(std::string("\0x", 2))->size() == 2);
  CHECK(Frame::text("")->payload().empty());
}

TEST_CASE("frame: references are counted; the last one frees it", "[frame_queue]") {
  FramePtr a = Frame::text("shared");
  CHECK(a.use_count() == 1);
  {
    FramePtr b = a;
    FramePtr c;
    c = b;
    CHECK(a.use_count() == 3);
    FramePtr d = std::move(c);
    CHECK_FALSE(c);
    CHECK(a.use_count() == 3);
    FramePtr& same = d;
    d = same;  // self-assignment keeps the reference
    CHECK(a.use_count() == 3);
  }
  CHECK(a.use_count() == 1);
  FramePtr e = Frame::text("other");
  e = a;  // drops "other" (ASan reports a leak or a double free if the count is wrong)
  CHECK(a.use_count() == 2);
  e.reset();
  CHECK_FALSE(e);
  CHECK(a->payload() == "shared");
}
