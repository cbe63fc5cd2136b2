// fuzz_jwt: auth::verify_hs256 (and base64url) on hostile tokens.
//
// The first byte picks a mode, so the fuzzer reaches the code behind the
// signature check, which random bytes never pass:
//   0  the rest is a token, verified as it is;
//   1  the rest is a payload, signed with the fixed secret by sign_hs256;
//   2  the rest is "header\npayload", both encoded and signed here, so the
//      alg/typ checks see validly signed headers.
// Invariants: base64url round trips; a verified token's claims_json is the
// signed payload byte for byte; a failure carries no subject or claims; an
// error is one of the documented reasons; the echoed alg or crit name is
// printable ASCII.
#include "fuzz_common.hpp"

#include "auth/base64url.hpp"
#include "auth/jwt.hpp"

#include <openssl/evp.h>

using namespace wsrelay;

namespace {

constexpr std::string_view kSecret = "fuzz-secret";
constexpr std::int64_t kNow = 1'700'000'000;

std::string sign_parts(std::string_view header, std::string_view payload) {
  std::string token = auth::base64url_encode(header) + "." + auth::base64url_encode(payload);
  unsigned char mac[32];
  std::size_t mac_len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, kSecret.data(), kSecret.size(),
                reinterpret_cast<const unsigned char*>(token.data()), token.size(), mac, sizeof mac,
                &mac_len) == nullptr) {
    std::abort();
  }
  token += "." + auth::base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
  return token;
}

bool documented(const std::string& error) {
  static const char* const kExact[] = {"no secret configured", "token too long",   "malformed token",
                                       "bad signature",        "token expired",    "token not yet valid",
                                       "audience mismatch",    "issuer mismatch"};
  for (const char* e : kExact) {
    if (error == e) return true;
  }
  if (error.rfind("unsupported alg: ", 0) != 0 && error.rfind("unsupported critical header '", 0) != 0) {
    return false;
  }
  for (unsigned char c : error) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void verify(std::string_view token, const std::string* signed_payload) {
  auth::JwtOptions plain;
  plain.secret = std::string(kSecret);
  auth::JwtOptions strict = plain;
  strict.leeway_s = 30;
  strict.audience = "fuzz";
  strict.issuer = "wsrelay";
  for (const auth::JwtOptions* options : {&plain, &strict}) {
    const auth::JwtResult r = auth::verify_hs256(token, *options, kNow);
    if (r.ok) {
      FUZZ_CHECK(r.error.empty());
      if (signed_payload != nullptr) FUZZ_CHECK(r.claims_json == *signed_payload);
      FUZZ_CHECK(r.subject.find('\0') == std::string::npos);
    } else {
      FUZZ_CHECK(r.subject.empty() && r.claims_json.empty());
      FUZZ_CHECK(documented(r.error));
    }
  }
  // Without a secret nothing verifies.
  FUZZ_CHECK(auth::verify_hs256(token, auth::JwtOptions{}, kNow).error == "no secret configured");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest = fuzz::as_text(data + 1, size - 1);

  const std::string encoded = auth::base64url_encode(rest);
  const std::optional<std::string> decoded = auth::base64url_decode(encoded);
  FUZZ_CHECK(decoded.has_value() && *decoded == rest);
  if (const std::optional<std::string> raw = auth::base64url_decode(rest)) {
    // Whatever decodes re-encodes to the very same text: one spelling per
    // byte string (no padding, no stray bits).
    FUZZ_CHECK(auth::base64url_encode(*raw) == rest);
  }

  switch (data[0] % 3) {
    case 0:
      verify(rest, nullptr);
      break;
    case 1: {
      const std::string payload(rest);
      const std::string token = auth::sign_hs256(payload, kSecret);
      FUZZ_CHECK(!token.empty());
      verify(token, &payload);
      break;
    }
    default: {
      const std::size_t nl = rest.find('\n');
      const std::string header(rest.substr(0, nl));
      const std::string payload(nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1));
      verify(sign_parts(header, payload), &payload);
      break;
    }
  }
  return 0;
}
