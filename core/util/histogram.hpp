// histogram: a fixed-bucket histogram for /metrics (Prometheus "histogram":
// cumulative _bucket{le}, _sum, _count). Plain integers, one writer (the lws
// service thread), like the rest of stats::Stats.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace wsrelay::util {

template <std::size_t N>
class Histogram {
 public:
  // Upper bounds, ascending; +Inf is implicit.
  explicit constexpr Histogram(const std::array<double, N>& bounds) : bounds_(bounds) {}

  void observe(double value) {
    std::size_t i = 0;
    while (i < N && value > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += value;
    ++count_;
  }

  static constexpr std::size_t size() { return N; }
  double bound(std::size_t i) const { return bounds_[i]; }
  // Observations <= bound(i) (cumulative, as Prometheus wants them).
  std::uint64_t cumulative(std::size_t i) const {
    std::uint64_t total = 0;
    for (std::size_t k = 0; k <= i && k < N; ++k) total += counts_[k];
    return total;
  }
  std::uint64_t count() const { return count_; }  // also the +Inf bucket
  double sum() const { return sum_; }

 private:
  std::array<double, N> bounds_;
  std::array<std::uint64_t, N + 1> counts_{};  // per bucket; the last one is (bound(N-1), +Inf)
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace wsrelay::util
