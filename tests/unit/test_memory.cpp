// Unit tests for giving a burst's memory back: util::burst_over (when the
// keepalive sweep calls Relay::give_back_after_burst) and the registry's
// high-water mark that feeds it.
#include <catch2/catch.hpp>

#include "session/registry.hpp"
#include "stats/stats.hpp"
#include "util/memory.hpp"

#include <memory>
#include <string>
#include <vector>

using wsrelay::util::burst_over;
using wsrelay::util::kBurstDrop;

TEST_CASE("memory: a burst is over once kBurstDrop sessions and half the peak have gone", "[memory]") {
  CHECK_FALSE(burst_over(0, 0));
  CHECK_FALSE(burst_over(32, 0));        // a few dozen at once: not a burst
  CHECK(burst_over(kBurstDrop, 0));
  CHECK_FALSE(burst_over(kBurstDrop, 1));  // one fewer than kBurstDrop closed
  CHECK(burst_over(400, 0));
  CHECK(burst_over(400, 200));
  CHECK_FALSE(burst_over(400, 201));     // more than half still open
  CHECK_FALSE(burst_over(10000, 9000));  // a big server losing 10 %: not a burst ending
  CHECK(burst_over(10000, 826));
}

TEST_CASE("memory: the registry keeps its peak until give_back", "[memory]") {
  wsrelay::session::Registry registry;
  wsrelay::stats::Stats stats;
  std::vector<std::unique_ptr<wsrelay::session::Session>> sessions;
  for (int i = 0; i < 1000; ++i) {
    sessions.push_back(std::make_unique<wsrelay::session::Session>("s" + std::to_string(i),
                                                                    wsrelay::session::SessionInfo{}, nullptr,
                                                                    &stats, 1024));
    registry.add(sessions.back().get());
  }
  CHECK(registry.peak() == 1000);
  for (int i = 0; i < 990; ++i) registry.remove(sessions[i].get());
  CHECK(registry.size() == 10);
  CHECK(registry.peak() == 1000);  // closing does not lower it
  CHECK(burst_over(registry.peak(), registry.size()));
  registry.give_back();
  CHECK(registry.peak() == 10);  // restarts from what is open
  CHECK(registry.find("s995") == sessions[995].get());  // the sessions left are still found
  CHECK(registry.find("s5") == nullptr);
  CHECK_FALSE(burst_over(registry.peak(), registry.size()));
}
