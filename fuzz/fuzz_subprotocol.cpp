// fuzz_subprotocol: the split of a Sec-WebSocket-Protocol list
// (http::subprotocols), which picks the protocol an upgrade binds, on any
// bytes. Invariants: an accepted list gives at most kMaxSubprotocols names,
// each a non-empty token (no comma, no whitespace); their order is the
// list's; joining them and splitting again gives the same names; a list
// over kMaxSubprotocolList bytes is refused.
#include "fuzz_common.hpp"

#include "http/request.hpp"
#include "http/request_head.hpp"

using namespace wsrelay;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view list(reinterpret_cast<const char*>(data), size);
  const auto names = http::subprotocols(list);
  if (size > http::kMaxSubprotocolList) FUZZ_CHECK(!names.has_value());
  if (!names) return 0;
  FUZZ_CHECK(names->size() <= http::kMaxSubprotocols);
  std::string joined;
  std::size_t seen_at = 0;
  for (const std::string& n : *names) {
    FUZZ_CHECK(!n.empty() && http::is_token(n));
    FUZZ_CHECK(n.find_first_of(", \t") == std::string::npos);
    const std::size_t at = list.find(n, seen_at);
    FUZZ_CHECK(at != std::string_view::npos);  // in the list, in order
    seen_at = at + n.size();
    joined += (joined.empty() ? "" : ", ") + n;
  }
  const auto again = http::subprotocols(joined);
  FUZZ_CHECK(again.has_value() && *again == *names);
  return 0;
}
