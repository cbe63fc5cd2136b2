#include "pubsub/channel_name.hpp"

#include <catch2/catch.hpp>

#include <string>

using wsrelay::pubsub::channel_name_problem;

TEST_CASE("channel names: ordinary names, UTF-8 included, are fine", "[channel_name]") {
  CHECK(channel_name_problem("room") == nullptr);
  CHECK(channel_name_problem("user:alice") == nullptr);
  CHECK(channel_name_problem("caf\xC3\xA9") == nullptr);            // é
  CHECK(channel_name_problem("\xE2\x80\x94-dash") == nullptr);      // U+2014, next to the bidi range
  CHECK(channel_name_problem("\xC2\xA0nbsp") == nullptr);           // U+00A0, just past C1
}

TEST_CASE("channel names: C0, DEL and C1 controls are refused", "[channel_name]") {
  CHECK(channel_name_problem(std::string("a\nb")) != nullptr);
  CHECK(channel_name_problem("a\x7f") != nullptr);
  CHECK(channel_name_problem("a\xC2\x80") != nullptr);   // U+0080
  CHECK(channel_name_problem("a\xC2\x9F") != nullptr);   // U+009F
}

TEST_CASE("channel names: bidirectional controls are refused", "[channel_name]") {
  CHECK(std::string(channel_name_problem("user:eve\xE2\x80\xAE" "ecila")).find("bidirectional") != std::string::npos);
  CHECK(channel_name_problem("\xE2\x80\xAA") != nullptr);  // U+202A
  CHECK(channel_name_problem("\xE2\x80\x8F") != nullptr);  // U+200F
  CHECK(channel_name_problem("\xE2\x81\xA6") != nullptr);  // U+2066
  CHECK(channel_name_problem("\xE2\x81\xA9") != nullptr);  // U+2069
  CHECK(channel_name_problem("\xD8\x9C") != nullptr);      // U+061C
  CHECK(channel_name_problem("\xE2\x81\xA5") == nullptr);  // U+2065, unassigned, not a control
}
