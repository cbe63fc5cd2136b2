#include "util/histogram.hpp"

#include <catch2/catch.hpp>

using wsrelay::util::Histogram;

TEST_CASE("histogram: values land in the first bucket whose bound is >= the value", "[histogram]") {
  Histogram<3> h({0.001, 0.01, 0.1});
  h.observe(0.0005);  // <= 0.001
  h.observe(0.001);   // on the bound: le is inclusive
  h.observe(0.05);    // <= 0.1
  h.observe(7.0);     // only +Inf
  CHECK(h.cumulative(0) == 2);
  CHECK(h.cumulative(1) == 2);
  CHECK(h.cumulative(2) == 3);
  CHECK(h.count() == 4);
  CHECK(h.sum() == 0.0005 + 0.001 + 0.05 + 7.0);
}

TEST_CASE("histogram: empty", "[histogram]") {
  Histogram<2> h({1, 2});
  CHECK(h.count() == 0);
  CHECK(h.cumulative(1) == 0);
  CHECK(h.sum() == 0);
  CHECK(h.bound(1) == 2);
}
