// memory: giving the heap a burst of connections used back to the system.
// Uses: glibc's malloc_trim.
//
// Why: a burst of connections (a churn at full speed, a stall that queues a
// few hundred handshakes) leaves the heap at its high-water mark once they
// close. The freed chunks sit between small survivors (Lua garbage not yet
// collected, lws's leftovers), not at the top, so glibc keeps them resident:
// 400 connections at once left +2.9 MB for good (bench/findings.md, "Churn:
// where the RSS goes"). A full Lua collection then malloc_trim(0) hands back
// whole free pages wherever they are.
#pragma once

#include <cstddef>

namespace wsrelay::util {

// At least this many sessions must have closed since the peak (~8 KiB each
// at their handshake) for a burst to count: a few dozen more or less is what
// any busy server has, and their pages are about to be used again.
inline constexpr std::size_t kBurstDrop = 64;

// peak: the most sessions open at once since the last give-back; open: now.
// Over when kBurstDrop have gone and at most half of the peak is left (a
// server that lost 10 % of its clients keeps its memory for their return).
constexpr bool burst_over(std::size_t peak, std::size_t open) {
  return peak >= open + kBurstDrop && open <= peak / 2;
}

// malloc_trim(0): every whole free page of the heap back to the system.
void trim_heap();

}  // namespace wsrelay::util
