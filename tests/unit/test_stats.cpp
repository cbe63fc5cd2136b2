// Unit tests for stats::Stats::count_out_type: the type label of messages
// out, read from the frame without parsing it, with a bounded label set.
#include <catch2/catch.hpp>

#include "stats/stats.hpp"

#include <string>

using wsrelay::stats::Stats;

TEST_CASE("stats: messages out are counted by the frame's leading type", "[stats]") {
  Stats st;
  st.count_out_type(R"({"type":"chat","data":1})", false);
  st.count_out_type(R"({"type":"chat"})", false);
  st.count_out_type(R"({"type":"response.text.delta","delta":"x"})", false);
  st.count_out_type(R"({"data":1,"type":"late"})", false);   // type not first: other
  st.count_out_type(R"({"type":"a\"b"})", false);            // escaped: other
  st.count_out_type(R"({"type":""})", false);                 // empty: other
  st.count_out_type("plain text", false);
  st.count_out_type(R"({"type":"chat"})", true);             // binary, whatever it holds
  st.count_out_type(R"({"type":")", false);                   // cut short: other
  CHECK(st.messages_out_by_type.map().at("chat") == 2);
  CHECK(st.messages_out_by_type.map().at("response.text.delta") == 1);
  CHECK(st.messages_out_by_type.map().at("other") == 5);
  CHECK(st.messages_out_by_type.map().at("binary") == 1);
  CHECK(st.messages_out_by_type.map().size() == 4);
}

TEST_CASE("stats: the out-by-type label set is bounded", "[stats]") {
  Stats st;
  for (int i = 0; i < 1000; ++i) st.count_out_type(R"({"type":"t)" + std::to_string(i) + R"("})", false);
  CHECK(st.messages_out_by_type.map().size() <= Stats::kMaxOutTypes);
  std::uint64_t total = 0;
  for (const auto& [type, count] : st.messages_out_by_type.map()) total += count;
  CHECK(total == 1000);
  CHECK(st.messages_out_by_type.map().at("other") == 1000 - (Stats::kMaxOutTypes - 1));
}

TEST_CASE("stats: alternating types and types past the bound are counted where they belong", "[stats]") {
  Stats st;
  // More types in rotation than the recent-type cache holds, several times over.
  const char* types[] = {"chat", "chat.ok", "typing", "presence", "error", "chat"};
  for (int round = 0; round < 10; ++round) {
    for (const char* t : types) st.count_out_type(std::string(R"({"type":")") + t + R"("})", false, 2);
  }
  CHECK(st.messages_out_by_type.map().at("chat") == 40);
  CHECK(st.messages_out_by_type.map().at("chat.ok") == 20);
  CHECK(st.messages_out_by_type.map().at("typing") == 20);
  CHECK(st.messages_out_by_type.map().at("error") == 20);
  // Fill the label set, then keep sending a type that no longer gets its own.
  for (std::size_t i = st.messages_out_by_type.map().size(); i < Stats::kMaxOutTypes - 1; ++i) {
    st.count_out_type(R"({"type":"fill)" + std::to_string(i) + R"("})", false);
  }
  for (int i = 0; i < 5; ++i) {
    st.count_out_type(R"({"type":"late"})", false);
    st.count_out_type(R"({"type":"chat"})", false);
  }
  CHECK(st.messages_out_by_type.map().count("late") == 0);
  CHECK(st.messages_out_by_type.map().at("other") == 5);
  CHECK(st.messages_out_by_type.map().at("chat") == 45);
  CHECK(st.messages_out_by_type.map().size() == Stats::kMaxOutTypes);
}

TEST_CASE("type counters: exact counts whether a type is cached or not", "[stats]") {
  wsrelay::stats::TypeCounters counters(4, "other");
  // Six names round robin: more than the four cached, so lookups and cache
  // hits interleave; past the bound (3 names + "other") the rest count as other.
  const char* names[] = {"a", "b", "c", "d", "e", "a"};
  for (int round = 0; round < 10; ++round) {
    for (const char* n : names) counters.add(n);
  }
  counters.add("b", 5);
  const auto& m = counters.map();
  CHECK(m.size() == 4);
  CHECK(m.at("a") == 20);
  CHECK(m.at("b") == 15);
  CHECK(m.at("c") == 10);
  CHECK(m.at("other") == 20);  // d and e
}
