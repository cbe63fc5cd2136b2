// loop::Timers: the scripts' relay.after / relay.every queue on a made-up
// clock (no lws, no sleeping): ordering, cancel, owners, every's schedule
// without drift and with missed periods skipped, and on_change.
#include <catch2/catch.hpp>

#include "loop/timers.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

using wsrelay::loop::TimerId;
using wsrelay::loop::Timers;

namespace {
const int kOwnerA = 1;
const int kOwnerB = 2;
const void* const A = &kOwnerA;
const void* const B = &kOwnerB;

std::vector<TimerId> ids_of(const std::vector<Timers::Due>& due) {
  std::vector<TimerId> out;
  for (const auto& d : due) out.push_back(d.id);
  return out;
}
}  // namespace

TEST_CASE("timers: empty queue has no deadline and nothing due", "[timers]") {
  Timers t;
  CHECK_FALSE(t.next_deadline().has_value());
  CHECK(t.take_due(1'000'000).empty());
  CHECK(t.size() == 0);
  CHECK_FALSE(t.cancel(1));
  CHECK(t.cancel_owned_by(A) == 0);
}

TEST_CASE("timers: add gives distinct ids; the earliest deadline leads", "[timers]") {
  Timers t;
  const TimerId late = t.add(1000, 500, 0, A);
  const TimerId early = t.add(1000, 100, 0, A);
  const TimerId mid = t.add(1000, 300, 0, B);
  CHECK(late != early);
  CHECK(early != mid);
  CHECK(t.size() == 3);
  REQUIRE(t.next_deadline().has_value());
  CHECK(*t.next_deadline() == 1100);
}

TEST_CASE("timers: take_due returns what is due, earliest first, ties in the order added", "[timers]") {
  Timers t;
  const TimerId c = t.add(0, 30, 0, A);
  const TimerId a = t.add(0, 10, 0, A);
  const TimerId b1 = t.add(0, 20, 0, A);
  const TimerId b2 = t.add(0, 20, 0, B);
  const TimerId d = t.add(0, 40, 0, A);
  CHECK(t.take_due(9).empty());
  CHECK(ids_of(t.take_due(30)) == std::vector<TimerId>{a, b1, b2, c});
  CHECK(t.size() == 1);
  REQUIRE(t.next_deadline().has_value());
  CHECK(*t.next_deadline() == 40);
  const auto last = t.take_due(40);  // due exactly now: taken
  REQUIRE(last.size() == 1);
  CHECK(last[0].id == d);
  CHECK(last[0].owner == A);
  CHECK_FALSE(last[0].repeating);
  CHECK(t.size() == 0);
  CHECK_FALSE(t.next_deadline().has_value());
  CHECK(t.take_due(1'000'000).empty());  // a one-shot fires once
}

TEST_CASE("timers: many timers in random order come out sorted by deadline", "[timers]") {
  Timers t;
  std::mt19937 rng(16);
  std::vector<std::int64_t> delays;
  for (int i = 0; i < 500; ++i) delays.push_back(static_cast<std::int64_t>(rng() % 10'000));
  for (auto d : delays) t.add(0, d, 0, A);
  std::vector<std::int64_t> seen;
  std::int64_t now = 0;
  while (auto next = t.next_deadline()) {
    REQUIRE(*next >= now);
    now = *next;
    for (const auto& due : t.take_due(now)) {
      (void)due;
      seen.push_back(now);
    }
  }
  std::sort(delays.begin(), delays.end());
  CHECK(seen == delays);
}

TEST_CASE("timers: a delay of 0 or less is due at once", "[timers]") {
  Timers t;
  const TimerId zero = t.add(500, 0, 0, A);
  const TimerId negative = t.add(500, -100, 0, A);
  REQUIRE(t.next_deadline().has_value());
  CHECK(*t.next_deadline() == 500);
  CHECK(ids_of(t.take_due(500)) == std::vector<TimerId>{zero, negative});
}

TEST_CASE("timers: cancel is true once while pending, false after; a cancelled timer never fires", "[timers]") {
  Timers t;
  const TimerId a = t.add(0, 10, 0, A);
  const TimerId b = t.add(0, 20, 0, A);
  CHECK(t.cancel(a));
  CHECK_FALSE(t.cancel(a));
  CHECK(t.size() == 1);
  REQUIRE(t.next_deadline().has_value());
  CHECK(*t.next_deadline() == 20);  // the stale slot of a is skipped
  CHECK(ids_of(t.take_due(100)) == std::vector<TimerId>{b});
  CHECK_FALSE(t.cancel(b));  // fired already
  CHECK_FALSE(t.cancel(12345));  // never existed
}

TEST_CASE("timers: cancel_owned_by takes one owner's timers only", "[timers]") {
  Timers t;
  t.add(0, 10, 0, A);
  const TimerId b1 = t.add(0, 20, 0, B);
  t.add(0, 30, 100, A);
  const TimerId b2 = t.add(0, 40, 100, B);
  t.add(0, 5, 0, A);
  CHECK(t.count_owned_by(A) == 3);
  CHECK(t.count_owned_by(B) == 2);
  CHECK(t.cancel_owned_by(A) == 3);
  CHECK(t.cancel_owned_by(A) == 0);
  CHECK(t.count_owned_by(A) == 0);
  CHECK(t.size() == 2);
  REQUIRE(t.next_deadline().has_value());
  CHECK(*t.next_deadline() == 20);
  const auto due = t.take_due(40);
  CHECK(ids_of(due) == std::vector<TimerId>{b1, b2});
  CHECK(due[1].repeating);
  CHECK(due[1].owner == B);
  CHECK(t.size() == 1);  // b2 repeats
  CHECK(t.cancel_owned_by(B) == 1);
  CHECK_FALSE(t.next_deadline().has_value());
  CHECK(t.take_due(1'000'000).empty());
}

TEST_CASE("timers: every keeps its schedule from the due time, not from when it ran (no drift)", "[timers]") {
  Timers t;
  const TimerId e = t.add(0, 100, 100, A);
  // The loop wakes a little late each time: 3 ms, then 7, then 50.
  for (const auto& [now, expected_next] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {103, 200}, {207, 300}, {350, 400}, {400, 500}}) {
    const auto due = t.take_due(now);
    REQUIRE(due.size() == 1);
    CHECK(due[0].id == e);
    CHECK(due[0].repeating);
    REQUIRE(t.next_deadline().has_value());
    CHECK(*t.next_deadline() == expected_next);
  }
  CHECK(t.take_due(499).empty());
  CHECK(t.size() == 1);
}

TEST_CASE("timers: an every late by several periods fires once and skips what it missed", "[timers]") {
  Timers t;
  const TimerId e = t.add(0, 100, 100, A);
  const TimerId one = t.add(0, 1000, 0, A);
  const auto due = t.take_due(1050);  // 10 periods late
  CHECK(std::count_if(due.begin(), due.end(), [&](const Timers::Due& d) { return d.id == e; }) == 1);
  CHECK(ids_of(due) == std::vector<TimerId>{e, one});
  REQUIRE(t.next_deadline().has_value());
  CHECK(*t.next_deadline() > 1050);
  CHECK(*t.next_deadline() <= 1150);
  CHECK(t.take_due(1050).empty());  // not again at the same instant
  const auto next = t.take_due(*t.next_deadline());
  CHECK(ids_of(next) == std::vector<TimerId>{e});
}

TEST_CASE("timers: an every is rescheduled before take_due returns, so its callback may cancel it", "[timers]") {
  Timers t;
  const TimerId e = t.add(0, 10, 10, A);
  REQUIRE(t.take_due(10).size() == 1);
  CHECK(t.size() == 1);
  CHECK(t.cancel(e));  // the callback's handle:cancel()
  CHECK_FALSE(t.cancel(e));
  CHECK_FALSE(t.next_deadline().has_value());
  CHECK(t.take_due(1000).empty());
}

TEST_CASE("timers: a huge take_due with a short every returns it once, not in a loop", "[timers]") {
  Timers t;
  t.add(0, 1, 1, A);
  CHECK(t.take_due(100'000'000).size() == 1);
  REQUIRE(t.next_deadline().has_value());
  CHECK(*t.next_deadline() == 100'000'001);
}

TEST_CASE("timers: on_change is told when the earliest deadline may have moved, and only then", "[timers]") {
  Timers t;
  int changes = 0;
  t.on_change = [&] { ++changes; };
  const TimerId a = t.add(0, 10, 0, A);
  CHECK(changes == 1);
  const TimerId e = t.add(0, 20, 20, B);
  CHECK(changes == 2);
  CHECK(t.cancel(a));
  CHECK(changes == 3);
  CHECK_FALSE(t.cancel(a));
  CHECK(changes == 3);  // nothing moved
  CHECK(t.cancel_owned_by(A) == 0);
  CHECK(changes == 3);
  CHECK(t.take_due(5).empty());
  CHECK(changes == 3);
  CHECK(t.take_due(20).size() == 1);  // e fired and was rescheduled
  CHECK(changes == 4);
  CHECK(t.cancel_owned_by(B) == 1);
  CHECK(changes == 5);
  (void)e;
  (void)t.next_deadline();
  CHECK(changes == 5);  // reading is not a change
}
