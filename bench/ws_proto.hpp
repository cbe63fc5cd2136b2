// ws_proto.hpp: the few pieces of RFC 6455 the bench needs, written out so
// the generator links no WebSocket library: the handshake key check
// (SHA-1 + base64), frame building (masked with one fixed key, so a frame
// is built once and written as is) and frame header parsing.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bench::ws {

enum Opcode : std::uint8_t { kCont = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA };

// A client must mask; nothing says the key must change. One fixed key lets
// every frame the generator sends be built once, before the run.
inline constexpr std::uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};

inline std::array<std::uint8_t, 20> sha1(const void* data, std::size_t len) {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  auto rol = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  std::string msg(static_cast<const char*>(data), len);
  const std::uint64_t bits = static_cast<std::uint64_t>(len) * 8;
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<char>((bits >> (i * 8)) & 0xff));
  for (std::size_t off = 0; off < msg.size(); off += 64) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(msg.data() + off + i * 4);
      w[i] = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
      else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
      else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
      else { f = b ^ c ^ d; k = 0xCA62C1D6; }
      const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d; d = c; c = rol(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  std::array<std::uint8_t, 20> out{};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j) out[i * 4 + j] = static_cast<std::uint8_t>(h[i] >> (24 - j * 8));
  return out;
}

inline std::string base64(const std::uint8_t* p, std::size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    std::uint32_t v = std::uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= std::uint32_t{p[i + 1]} << 8;
    if (i + 2 < n) v |= p[i + 2];
    out.push_back(tbl[(v >> 18) & 63]);
    out.push_back(tbl[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? tbl[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? tbl[v & 63] : '=');
  }
  return out;
}

inline std::string accept_key(std::string_view key) {
  std::string s(key);
  s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  const auto d = sha1(s.data(), s.size());
  return base64(d.data(), d.size());
}

// The fixed handshake key every generator connection sends, and its answer.
inline constexpr const char* kClientKey = "d3NyZWxheS1iZW5jaC0wMQ==";

inline void put_header(std::string& out, std::uint8_t opcode, std::size_t len, bool masked) {
  out.push_back(static_cast<char>(0x80 | opcode));
  const std::uint8_t m = masked ? 0x80 : 0;
  if (len < 126) {
    out.push_back(static_cast<char>(m | len));
  } else if (len <= 0xffff) {
    out.push_back(static_cast<char>(m | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xff));
  } else {
    out.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((static_cast<std::uint64_t>(len) >> (i * 8)) & 0xff));
  }
  if (masked) out.append(reinterpret_cast<const char*>(kMask), 4);
}

// Masks in place with the fixed key; `offset` is the payload position of p[0].
inline void mask_bytes(char* p, std::size_t n, std::size_t offset = 0) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>(p[i] ^ kMask[(offset + i) & 3]);
}

inline std::string client_frame(std::uint8_t opcode, std::string_view payload) {
  std::string out;
  put_header(out, opcode, payload.size(), true);
  const std::size_t at = out.size();
  out.append(payload);
  mask_bytes(out.data() + at, payload.size());
  return out;
}

inline std::string server_frame(std::uint8_t opcode, std::string_view payload) {
  std::string out;
  put_header(out, opcode, payload.size(), false);
  out.append(payload);
  return out;
}

inline std::string close_payload(std::uint16_t code) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xff));
  return p;
}

struct FrameHeader {
  bool fin = false;
  std::uint8_t opcode = 0;
  bool masked = false;
  std::uint8_t mask[4] = {0, 0, 0, 0};
  std::size_t header_len = 0;
  std::uint64_t len = 0;
};

// 1: header parsed into h; 0: need more bytes; -1: protocol error.
inline int parse_header(const std::uint8_t* p, std::size_t avail, FrameHeader& h) {
  if (avail < 2) return 0;
  h.fin = (p[0] & 0x80) != 0;
  if (p[0] & 0x70) return -1;  // no extension negotiated: RSV bits must be 0
  h.opcode = p[0] & 0x0f;
  h.masked = (p[1] & 0x80) != 0;
  std::uint64_t len = p[1] & 0x7f;
  std::size_t pos = 2;
  if (len == 126) {
    if (avail < 4) return 0;
    len = (std::uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (len == 127) {
    if (avail < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    pos = 10;
  }
  if (h.masked) {
    if (avail < pos + 4) return 0;
    std::memcpy(h.mask, p + pos, 4);
    pos += 4;
  }
  h.len = len;
  h.header_len = pos;
  return 1;
}

}  // namespace bench::ws
