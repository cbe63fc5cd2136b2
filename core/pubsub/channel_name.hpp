// channel_name: which bytes a channel name may hold. Pure: no Lua, no hub.
// A name ends up in logs, /status, /admin output and other clients' screens,
// so characters that change how text around them reads are refused: C0 and
// C1 controls, DEL, and the Unicode bidirectional controls (U+202E would make
// "user:eve\u202Eecila" display as another user's channel).
#pragma once

#include <cstddef>
#include <string_view>

namespace wsrelay::pubsub {

// Null when name may be a channel; otherwise why not. Names arrive as UTF-8
// (text frames are validated by lws), so code points are matched by bytes.
inline const char* channel_name_problem(std::string_view name) {
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) return "channel name contains a control character";
    const auto next = [&](std::size_t k) { return i + k < name.size() ? static_cast<unsigned char>(name[i + k]) : 0; };
    // U+0080..U+009F: C2 80..C2 9F.
    if (c == 0xC2 && next(1) >= 0x80 && next(1) <= 0x9F) return "channel name contains a control character";
    // U+061C (arabic letter mark): D8 9C.
    if (c == 0xD8 && next(1) == 0x9C) return "channel name contains a bidirectional control";
    if (c == 0xE2) {
      const unsigned b1 = next(1), b2 = next(2);
      // U+200E, U+200F (marks), U+202A..U+202E (embeddings, overrides): E2 80 8E/8F, E2 80 AA..AE.
      if (b1 == 0x80 && (b2 == 0x8E || b2 == 0x8F || (b2 >= 0xAA && b2 <= 0xAE))) {
        return "channel name contains a bidirectional control";
      }
      // U+2066..U+2069 (isolates): E2 81 A6..A9.
      if (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9) return "channel name contains a bidirectional control";
    }
  }
  return nullptr;
}

}  // namespace wsrelay::pubsub
