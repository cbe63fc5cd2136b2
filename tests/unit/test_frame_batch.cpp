// frame::pack_frames / write_frame_header: several queued frames encoded
// back to back as a client reads them (RFC 6455 §5.2, unmasked).
#include <catch2/catch.hpp>

#include "frame/frame_batch.hpp"
#include "session/session.hpp"
#include "fakes/fake_transport.hpp"

#include <cstdint>
#include <string>
#include <vector>

using wsrelay::frame::Batch;
using wsrelay::frame::Frame;
using wsrelay::frame::FramePtr;
using wsrelay::session::Session;
using wsrelay::session::SessionInfo;

namespace {

struct Parsed {
  bool fin;
  int opcode;
  std::string payload;
};

// A client's reading of the bytes: every frame must be complete.
std::vector<Parsed> parse(const unsigned char* p, std::size_t n) {
  std::vector<Parsed> out;
  std::size_t at = 0;
  while (at < n) {
    REQUIRE(n - at >= 2);
    Parsed f{(p[at] & 0x80) != 0, p[at] & 0x0f, {}};
    REQUIRE((p[at] & 0x70) == 0);  // no RSV bits: no extension
    REQUIRE((p[at + 1] & 0x80) == 0);  // server frames are not masked
    std::uint64_t len = p[at + 1] & 0x7f;
    at += 2;
    if (len == 126) {
      REQUIRE(n - at >= 2);
      len = (std::uint64_t{p[at]} << 8) | p[at + 1];
      CHECK(len >= 126);  // the shortest form, as RFC 6455 requires
      at += 2;
    } else if (len == 127) {
      REQUIRE(n - at >= 8);
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[at + i];
      CHECK(len > 0xffff);
      at += 8;
    }
    REQUIRE(n - at >= len);
    f.payload.assign(reinterpret_cast<const char*>(p + at), len);
    at += len;
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

TEST_CASE("frame header: 2, 4 and 10 bytes at the length boundaries", "[frame_batch]") {
  unsigned char h[wsrelay::frame::kMaxFrameHeader];
  struct Case {
    std::size_t len;
    std::size_t header;
  };
  for (const Case c : {Case{0, 2}, Case{1, 2}, Case{125, 2}, Case{126, 4}, Case{65535, 4}, Case{65536, 10},
                       Case{(std::size_t{1} << 32) + 5, 10}}) {
    CAPTURE(c.len);
    REQUIRE(wsrelay::frame::write_frame_header(h, c.len, false) == c.header);
    CHECK(h[0] == 0x81);
    std::uint64_t len = h[1];
    if (c.header == 4) {
      CHECK(h[1] == 126);
      len = (std::uint64_t{h[2]} << 8) | h[3];
    } else if (c.header == 10) {
      CHECK(h[1] == 127);
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | h[2 + i];
    }
    CHECK(len == c.len);
  }
  CHECK(wsrelay::frame::write_frame_header(h, 3, true) == 2);
  CHECK(h[0] == 0x82);
}

TEST_CASE("pack_frames: mixed sizes and types come out whole and in order", "[frame_batch]") {
  wsrelay::fakes::FakeTransport transport;
  Session s("id", SessionInfo{}, &transport, nullptr, 1u << 24);
  const std::vector<FramePtr> frames = {Frame::text(""), Frame::text("a"), Frame::binary(std::string(125, '\x01')),
                                        Frame::text(std::string(126, 'b')), Frame::binary(std::string(300, '\0')),
                                        Frame::text(std::string(65535, 'c')), Frame::binary(std::string(70000, 'd'))};
  for (const auto& f : frames) s.send(f);
  std::vector<unsigned char> buf(1u << 20);
  const Batch b = wsrelay::frame::pack_frames(s.queue(), buf.data(), buf.size());
  REQUIRE(b.frames == frames.size());
  const auto parsed = parse(buf.data(), b.bytes);
  REQUIRE(parsed.size() == frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    CAPTURE(i);
    CHECK(parsed[i].fin);
    CHECK(parsed[i].opcode == (frames[i]->is_binary() ? 2 : 1));
    CHECK(parsed[i].payload == frames[i]->payload());
  }
  CHECK(s.pending_count() == frames.size());  // packing does not pop
}

TEST_CASE("pack_frames: stops at the first frame that does not fit", "[frame_batch]") {
  wsrelay::fakes::FakeTransport transport;
  Session s("id", SessionInfo{}, &transport, nullptr, 1u << 24);
  s.send(Frame::text("one"));                     // 2 + 3
  s.send(Frame::text("two"));                     // 2 + 3
  s.send(Frame::text(std::string(200, 'x')));     // 4 + 200: not in 64 bytes
  s.send(Frame::text("four"));                    // would fit, but must not jump the queue
  unsigned char buf[64];
  const Batch b = wsrelay::frame::pack_frames(s.queue(), buf, sizeof buf);
  CHECK(b.frames == 2);
  CHECK(b.bytes == 10);
  const auto parsed = parse(buf, b.bytes);
  REQUIRE(parsed.size() == 2);
  CHECK(parsed[0].payload == "one");
  CHECK(parsed[1].payload == "two");
}

TEST_CASE("pack_frames: fewer than two fit, nothing is copied", "[frame_batch]") {
  wsrelay::fakes::FakeTransport transport;
  Session s("id", SessionInfo{}, &transport, nullptr, 1u << 24);
  s.send(Frame::text(std::string(100, 'x')));
  s.send(Frame::text(std::string(100, 'y')));
  unsigned char buf[150];
  const Batch big = wsrelay::frame::pack_frames(s.queue(), buf, sizeof buf);
  CHECK(big.frames == 1);
  CHECK(big.bytes == 0);
  Session lone("id2", SessionInfo{}, &transport, nullptr, 1u << 24);
  lone.send(Frame::text("only"));
  const Batch one = wsrelay::frame::pack_frames(lone.queue(), buf, sizeof buf);
  CHECK(one.frames == 1);
  CHECK(one.bytes == 0);
  const Batch empty = wsrelay::frame::pack_frames(Session("id3", SessionInfo{}, &transport, nullptr, 1024).queue(), buf,
                                                    sizeof buf);
  CHECK(empty.frames == 0);
  CHECK(empty.bytes == 0);
}

TEST_CASE("close frame: code and reason, cut on a character boundary", "[frame_batch]") {
  using wsrelay::frame::kMaxCloseFrame;
  using wsrelay::frame::write_close_frame;
  unsigned char out[kMaxCloseFrame];

  SECTION("a short reason is kept whole") {
    const std::size_t n = write_close_frame(out, 1008, "rate limit exceeded");
    const auto frames = parse(out, n);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].fin);
    CHECK(frames[0].opcode == 0x8);
    REQUIRE(frames[0].payload.size() == 2 + 19);
    CHECK(static_cast<unsigned char>(frames[0].payload[0]) == 0x03);  // 1008 = 0x03F0
    CHECK(static_cast<unsigned char>(frames[0].payload[1]) == 0xF0);
    CHECK(frames[0].payload.substr(2) == "rate limit exceeded");
  }
  SECTION("no reason: the code alone") {
    const auto frames = parse(out, write_close_frame(out, 4000, ""));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].payload == std::string("\x0f\xa0", 2));
  }
  SECTION("a reason longer than 123 bytes is cut to 123") {
    const auto frames = parse(out, write_close_frame(out, 1000, std::string(200, 'r')));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].payload.size() == 125);  // a control frame's limit
  }
  SECTION("the cut never splits a UTF-8 character") {
    // 122 ASCII bytes, then "é" (2 bytes) straddling byte 123: it goes whole.
    const std::string reason = std::string(122, 'r') + "\xc3\xa9" + "tail";
    const auto frames = parse(out, write_close_frame(out, 1000, reason));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].payload.substr(2) == std::string(122, 'r'));
  }
}
