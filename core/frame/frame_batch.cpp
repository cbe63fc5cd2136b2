#include "frame/frame_batch.hpp"

#include <cstdint>
#include <cstring>

namespace wsrelay::frame {

std::size_t write_frame_header(unsigned char* out, std::size_t payload_size, bool binary) {
  out[0] = static_cast<unsigned char>(0x80 | (binary ? 0x2 : 0x1));  // FIN, opcode
  if (payload_size < 126) {
    out[1] = static_cast<unsigned char>(payload_size);
    return 2;
  }
  if (payload_size <= 0xffff) {
    out[1] = 126;
    out[2] = static_cast<unsigned char>(payload_size >> 8);
    out[3] = static_cast<unsigned char>(payload_size);
    return 4;
  }
  out[1] = 127;
  const auto n = static_cast<std::uint64_t>(payload_size);
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<unsigned char>(n >> (56 - 8 * i));
  return 10;
}

std::size_t write_close_frame(unsigned char* out, int code, std::string_view reason) {
  std::size_t size = reason.size();
  if (size > kMaxCloseReason) {
    size = kMaxCloseReason;
    // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
    while (size > 0 && (static_cast<unsigned char>(reason[size]) & 0xC0) == 0x80) --size;
  }
  out[0] = 0x88;  // FIN, close
  out[1] = static_cast<unsigned char>(2 + size);
  out[2] = static_cast<unsigned char>((code >> 8) & 0xff);
  out[3] = static_cast<unsigned char>(code & 0xff);
  std::memcpy(out + 4, reason.data(), size);
  return 4 + size;
}

namespace {

std::size_t header_size(std::size_t payload_size) {
  return payload_size < 126 ? 2 : payload_size <= 0xffff ? 4 : 10;
}

}  // namespace

Batch pack_frames(const FrameQueue& queue, unsigned char* out, std::size_t capacity, std::size_t min_frames) {
  // Count first, copy after: a front frame that cannot share the buffer with
  // the next one is written by the caller without being copied at all.
  const std::size_t queued = queue.size();
  Batch batch;
  std::size_t bytes = 0;
  while (batch.frames < queued) {
    const std::size_t size = queue[batch.frames]->size();
    const std::size_t need = header_size(size) + size;
    if (need > capacity - bytes) break;
    bytes += need;
    ++batch.frames;
  }
  if (batch.frames < min_frames) return batch;
  for (std::size_t i = 0; i < batch.frames; ++i) {
    const Frame& f = *queue[i];
    batch.bytes += write_frame_header(out + batch.bytes, f.size(), f.is_binary());
    std::memcpy(out + batch.bytes, f.payload().data(), f.size());
    batch.bytes += f.size();
  }
  return batch;
}

}  // namespace wsrelay::frame
