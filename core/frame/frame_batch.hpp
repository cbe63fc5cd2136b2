// frame_batch: several queued frames encoded back to back, for one write.
// Owns: nothing. Uses: a frame queue (read only).
// A subscriber with a backlog (fan-out, a burst) would otherwise cost one
// send() per frame. The protocol copies the frames at the front of the queue,
// each with its WebSocket header, into one buffer and hands lws the lot as a
// raw write. Server→client frames are unmasked (RFC 6455 §5.1), so the header
// is a pure function of length and type: FIN, the opcode, a 7-bit, 16-bit or
// 64-bit length (2, 4 or 10 bytes). lws-free, so it is unit tested.
#pragma once

#include "frame/frame_queue.hpp"

#include <cstddef>
#include <string_view>

namespace wsrelay::frame {

inline constexpr std::size_t kMaxFrameHeader = 10;

// Writes the header of an unfragmented, unmasked frame (text or binary) with
// a payload of `payload_size` bytes into `out` (room for kMaxFrameHeader);
// returns its length.
std::size_t write_frame_header(unsigned char* out, std::size_t payload_size, bool binary);

// A control frame's payload is at most 125 bytes: the code, then a reason of
// at most this many bytes.
inline constexpr std::size_t kMaxCloseReason = 123;
inline constexpr std::size_t kMaxCloseFrame = 2 + 2 + kMaxCloseReason;

// Writes a whole close frame (header, code, reason cut to kMaxCloseReason
// bytes on a UTF-8 character boundary) into `out` (room for kMaxCloseFrame);
// returns its length.
std::size_t write_close_frame(unsigned char* out, int code, std::string_view reason);

struct Batch {
  std::size_t frames = 0;  // taken from the front of the queue
  std::size_t bytes = 0;   // headers and payloads written to the buffer
};

// Encodes as many frames from the front of `queue` as fit in `capacity`
// bytes, stopping at the first that does not (the order must not change).
// Fewer than `min_frames` fit: nothing is copied and {frames that fit, 0} is
// returned, so the caller can write the front frame the ordinary way.
Batch pack_frames(const FrameQueue& queue, unsigned char* out, std::size_t capacity, std::size_t min_frames = 2);

}  // namespace wsrelay::frame
