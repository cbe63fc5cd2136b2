// histogram.hpp: a log-linear latency histogram (HdrHistogram's idea, two
// significant digits). Owns nothing but its counters: a plain struct that
// can be copied through a pipe between generator processes and summed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace bench {

struct Histogram {
  // Values below 2^kSubBits are exact; above, each power of two is split
  // into 2^kSubBits linear buckets, so a bucket is at most 1/64 (1.6%) wide.
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = kSub + (64 - kSubBits) * kSub;

  std::uint64_t counts[kBuckets];
  std::uint64_t total;
  std::uint64_t max;
  std::uint64_t min;
  double sum;

  Histogram() { reset(); }

  void reset() {
    std::memset(counts, 0, sizeof counts);
    total = 0;
    max = 0;
    min = UINT64_MAX;
    sum = 0;
  }

  static int index_of(std::uint64_t v) {
    if (v < static_cast<std::uint64_t>(kSub)) return static_cast<int>(v);
    const int e = 63 - __builtin_clzll(v);  // >= kSubBits
    const int sub = static_cast<int>((v >> (e - kSubBits)) & (kSub - 1));
    return kSub + (e - kSubBits) * kSub + sub;
  }

  // Middle of bucket i.
  static double value_of(int i) {
    if (i < kSub) return i;
    const int e = (i - kSub) / kSub + kSubBits;
    const int sub = (i - kSub) % kSub;
    const double low = std::ldexp(static_cast<double>(kSub + sub), e - kSubBits);
    const double width = std::ldexp(1.0, e - kSubBits);
    return low + width / 2;
  }

  void record(std::uint64_t v) {
    counts[index_of(v)]++;
    total++;
    sum += static_cast<double>(v);
    if (v > max) max = v;
    if (v < min) min = v;
  }

  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts[i] += o.counts[i];
    total += o.total;
    sum += o.sum;
    max = std::max(max, o.max);
    min = std::min(min, o.min);
  }

  // q in [0, 1]; 0 when empty. Never above the exact maximum.
  double percentile(double q) const {
    if (total == 0) return 0;
    std::uint64_t rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
    if (rank == 0) rank = 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts[i];
      if (seen >= rank) return std::min(value_of(i), static_cast<double>(max));
    }
    return static_cast<double>(max);
  }

  double mean() const { return total ? sum / static_cast<double>(total) : 0; }
};

}  // namespace bench
