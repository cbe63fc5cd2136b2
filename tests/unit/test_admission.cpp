// Unit tests for core/server/admission: the Origin allow-list.
#include <catch2/catch.hpp>

#include "server/admission.hpp"

#include <string>
#include <vector>

using wsrelay::server::Admission;

TEST_CASE("admission: an empty allow-list admits any Origin and none", "[admission]") {
  CHECK(Admission::origin_allowed({}, "https://evil.example"));
  CHECK(Admission::origin_allowed({}, ""));
}

TEST_CASE("admission: exact origins and *", "[admission]") {
  const std::vector<std::string> list{"https://chat.example.org"};
  CHECK(Admission::origin_allowed(list, "https://chat.example.org"));
  CHECK(Admission::origin_allowed(list, "https://chat.example.org/"));
  CHECK_FALSE(Admission::origin_allowed(list, "https://evil.example"));
  CHECK_FALSE(Admission::origin_allowed(list, ""));
  CHECK(Admission::origin_allowed({"*"}, "https://anything.example"));
}

TEST_CASE("admission: self is the host the request was sent to", "[admission]") {
  const std::vector<std::string> self{"self"};
  CHECK(Admission::origin_allowed(self, "http://127.0.0.1:8000", "127.0.0.1:8000"));
  CHECK(Admission::origin_allowed(self, "https://relay.example", "relay.example"));
  CHECK_FALSE(Admission::origin_allowed(self, "http://evil.example", "127.0.0.1:8000"));
  CHECK_FALSE(Admission::origin_allowed(self, "http://127.0.0.1:8001", "127.0.0.1:8000"));
  CHECK_FALSE(Admission::origin_allowed(self, "", "127.0.0.1:8000"));  // no Origin: not a page
  CHECK_FALSE(Admission::origin_allowed(self, "http://", ""));         // no Host: nothing to match
}
