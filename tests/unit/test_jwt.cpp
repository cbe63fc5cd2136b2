// Unit tests for core/auth: base64url and HS256 JWT verification.
// Known-answer tokens were produced outside this code base (Python's hmac,
// hashlib and base64 modules; RFC 7515 appendix A.1), so a bug shared by
// sign_hs256 and verify_hs256 cannot hide behind the round trip tests.
#include <catch2/catch.hpp>

#include "auth/base64url.hpp"
#include "auth/jwt.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

using wsrelay::auth::base64url_decode;
using wsrelay::auth::base64url_encode;
using wsrelay::auth::JwtOptions;
using wsrelay::auth::JwtResult;
using wsrelay::auth::sign_hs256;
using wsrelay::auth::verify_hs256;

namespace {

constexpr int64_t kNow = 1'800'000'000;
constexpr std::string_view kSecret = "test-secret";

JwtOptions options_with(std::string_view secret = kSecret) {
  JwtOptions options;
  options.secret = std::string(secret);
  return options;
}

// Signs arbitrary, already-encoded parts, so tests can build validly signed
// tokens with any header (sign_hs256 always emits the same one) or with
// payload text that is not valid base64url at all.
std::string sign_parts(std::string_view header_b64, std::string_view payload_b64,
                       std::string_view secret = kSecret) {
  std::string input = std::string(header_b64) + "." + std::string(payload_b64);
  std::array<unsigned char, 32> mac{};
  std::size_t mac_len = 0;
  REQUIRE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                    reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                    mac.data(), mac.size(), &mac_len) != nullptr);
  REQUIRE(mac_len == mac.size());
  return input + "." +
         base64url_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac_len));
}

std::string sign_json(std::string_view header_json, std::string_view payload_json,
                      std::string_view secret = kSecret) {
  return sign_parts(base64url_encode(header_json), base64url_encode(payload_json), secret);
}

std::string error_of(std::string_view token, const JwtOptions& options, int64_t now = kNow) {
  const JwtResult result = verify_hs256(token, options, now);
  if (result.ok) {
    return "ok";
  }
  return result.error;
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// base64url

TEST_CASE("base64url encodes the RFC 4648 vectors without padding", "[jwt]") {
  CHECK(base64url_encode("") == "");
  CHECK(base64url_encode("f") == "Zg");
  CHECK(base64url_encode("fo") == "Zm8");
  CHECK(base64url_encode("foo") == "Zm9v");
  CHECK(base64url_encode("foob") == "Zm9vYg");
  CHECK(base64url_encode("fooba") == "Zm9vYmE");
  CHECK(base64url_encode("foobar") == "Zm9vYmFy");
  // Standard base64 "+/8=" and "+/+/": the url alphabet uses '-' and '_'.
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK(base64url_encode("\xfb\xff\xbf") == "-_-_");
  CHECK(base64url_encode(std::string_view("\0\0\0", 3)) == "AAAA");
}

TEST_CASE("base64url decodes the RFC 4648 vectors without padding", "[jwt]") {
  CHECK(base64url_decode("") == std::string());
  CHECK(base64url_decode("Zg") == "f");
  CHECK(base64url_decode("Zm8") == "fo");
  CHECK(base64url_decode("Zm9v") == "foo");
  CHECK(base64url_decode("Zm9vYg") == "foob");
  CHECK(base64url_decode("Zm9vYmE") == "fooba");
  CHECK(base64url_decode("Zm9vYmFy") == "foobar");
  CHECK(base64url_decode("-_8") == "\xfb\xff");
  CHECK(base64url_decode("-_-_") == "\xfb\xff\xbf");
  CHECK(base64url_decode("AAAA") == std::string("\0\0\0", 3));
}

TEST_CASE("base64url refuses '=' padding, even complete (the JWS form has none)", "[jwt][padding]") {
  // RFC 7515 section 2: base64url "with all trailing '=' characters omitted".
  // Accepting both forms would give every token a second spelling.
  CHECK_FALSE(base64url_decode("Zg=="));
  CHECK_FALSE(base64url_decode("Zm8="));
  CHECK_FALSE(base64url_decode("Zm9vYg=="));
  CHECK_FALSE(base64url_decode("Zm9vYmE="));
}

TEST_CASE("base64url rejects invalid input", "[jwt]") {
  // Standard-alphabet characters, whitespace, other bytes.
  CHECK_FALSE(base64url_decode("+/8="));
  CHECK_FALSE(base64url_decode("Zm9v+A"));
  CHECK_FALSE(base64url_decode("Zm9v/A"));
  CHECK_FALSE(base64url_decode("Zm 9v"));
  CHECK_FALSE(base64url_decode("Zm9v\n"));
  CHECK_FALSE(base64url_decode("Zm9v."));
  CHECK_FALSE(base64url_decode(std::string_view("Zm\0v", 4)));
  CHECK_FALSE(base64url_decode("Zm9\xc3\xa9"));
  // Impossible lengths: 4n+1 characters.
  CHECK_FALSE(base64url_decode("Z"));
  CHECK_FALSE(base64url_decode("Zm9vY"));
  // Broken padding: partial, too much, or not at the end.
  CHECK_FALSE(base64url_decode("Zg="));
  CHECK_FALSE(base64url_decode("Zg==="));
  CHECK_FALSE(base64url_decode("Z==="));
  CHECK_FALSE(base64url_decode("===="));
  CHECK_FALSE(base64url_decode("="));
  CHECK_FALSE(base64url_decode("Z=g="));
  CHECK_FALSE(base64url_decode("Zg==Zg=="));
  CHECK_FALSE(base64url_decode("Zm9v===="));
  // Non-zero unused bits: "Zh" and "Zm9" would otherwise alias "Zg" and "Zm8".
  CHECK_FALSE(base64url_decode("Zh"));
  CHECK_FALSE(base64url_decode("Zm9"));
  CHECK_FALSE(base64url_decode("Zm9="));
}

TEST_CASE("base64url round trips every byte value and length", "[jwt]") {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
  }
  for (std::size_t len = 0; len <= all.size(); ++len) {
    const std::string_view bytes(all.data(), len);
    const std::string encoded = base64url_encode(bytes);
    CHECK(encoded.find_first_of("+/=") == std::string::npos);
    const auto decoded = base64url_decode(encoded);
    REQUIRE(decoded);
    CHECK(*decoded == bytes);
  }
}

// ---------------------------------------------------------------------------
// Known answers

TEST_CASE("verify_hs256 accepts a token signed by Python's hmac module", "[jwt]") {
  // python3: b64(header) + "." + b64(payload), signed with
  // hmac.new(b"correct horse battery staple", signing_input, hashlib.sha256).
  constexpr std::string_view token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
      "eyJzdWIiOiJhbGljZSIsIm5hbWUiOiJBbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxOTAwMDAwMDAwLCJh"
      "dWQiOlsid3NyZWxheSIsIm90aGVyIl0sImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUifQ."
      "RSP899R628T7Tc_U7q4qzDB1_7lj5cSA0dZxV8jshVo";
  constexpr std::string_view payload =
      R"({"sub":"alice","name":"Alice","iat":1700000000,"exp":1900000000,)"
      R"("aud":["wsrelay","other"],"iss":"https://issuer.example"})";

  JwtOptions options = options_with("correct horse battery staple");
  options.audience = "wsrelay";
  options.issuer = "https://issuer.example";

  const JwtResult result = verify_hs256(token, options, kNow);
  REQUIRE(result.error == "");
  REQUIRE(result.ok);
  CHECK(result.subject == "alice");
  CHECK(result.claims_json == payload);

  // Our signer must produce the very same token for the same payload and key.
  CHECK(sign_hs256(payload, "correct horse battery staple") == token);

  CHECK(error_of(token, options, 1'900'000'000) == "token expired");
  CHECK(error_of(token, options_with("correct horse battery stapler")) == "bad signature");
}

TEST_CASE("verify_hs256 accepts the RFC 7515 appendix A.1 example", "[jwt]") {
  // Header {"typ":"JWT",\r\n "alg":"HS256"}: other key order, CRLF whitespace.
  constexpr std::string_view token =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
      "cnVlfQ."
      "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  // The JWK "k" of the example, as hex: a binary 64-byte key.
  JwtOptions options = options_with(from_hex(
      "0323354b2b0fa5bc837e0665777ba68f5ab328e6f054c928a90f84b2d2502ebf"
      "d3fb5a92d20647ef968ab4c377623d223d2e2172052e4f08c0cd9af567d080a3"));
  options.issuer = "joe";

  const JwtResult result = verify_hs256(token, options, 1'300'819'379);
  REQUIRE(result.error == "");
  REQUIRE(result.ok);
  CHECK(result.subject == "");
  CHECK(result.claims_json ==
        "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");

  CHECK(error_of(token, options, 1'300'819'380) == "token expired");
}

// ---------------------------------------------------------------------------
// Signature

TEST_CASE("sign_hs256 and verify_hs256 round trip", "[jwt]") {
  const std::string payload = R"({"sub":"bob","room":"lobby","n":[1,2,3]})";
  const std::string token = sign_hs256(payload, kSecret);
  REQUIRE_FALSE(token.empty());
  CHECK(token.rfind("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 0) == 0);

  const JwtResult result = verify_hs256(token, options_with(), kNow);
  REQUIRE(result.ok);
  CHECK(result.error == "");
  CHECK(result.subject == "bob");
  CHECK(result.claims_json == payload);

  // No sub claim: still valid, empty subject.
  const JwtResult anonymous = verify_hs256(sign_hs256("{}", kSecret), options_with(), kNow);
  REQUIRE(anonymous.ok);
  CHECK(anonymous.subject == "");
  CHECK(anonymous.claims_json == "{}");

  // A header without typ is fine as long as alg is HS256.
  CHECK(error_of(sign_json(R"({"alg":"HS256"})", R"({"sub":"x"})"), options_with()) == "ok");
}

TEST_CASE("verify_hs256 rejects a wrong secret", "[jwt]") {
  const std::string token = sign_hs256(R"({"sub":"bob"})", kSecret);
  CHECK(error_of(token, options_with("other-secret")) == "bad signature");
  CHECK(error_of(token, options_with("test-secreT")) == "bad signature");
  CHECK(error_of(token, options_with(std::string(kSecret) + "x")) == "bad signature");
}

TEST_CASE("verify_hs256 rejects tampered payloads and signatures", "[jwt]") {
  const std::string token = sign_hs256(R"({"sub":"bob"})", kSecret);
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = token.find('.', dot1 + 1);
  const std::string header = token.substr(0, dot1);
  const std::string signature = token.substr(dot2 + 1);

  const std::string forged =
      header + "." + base64url_encode(R"({"sub":"admin"})") + "." + signature;
  const JwtResult result = verify_hs256(forged, options_with(), kNow);
  CHECK_FALSE(result.ok);
  CHECK(result.error == "bad signature");
  CHECK(result.subject == "");
  CHECK(result.claims_json == "");

  // Flip one signature character (first char: all 6 bits are significant).
  std::string flipped = token;
  flipped[dot2 + 1] = flipped[dot2 + 1] == 'A' ? 'B' : 'A';
  CHECK(error_of(flipped, options_with()) == "bad signature");

  // Truncated (40 chars: 30 whole bytes), empty or extended signature.
  CHECK(error_of(token.substr(0, token.size() - 3), options_with()) == "bad signature");
  CHECK(error_of(token.substr(0, dot2 + 1), options_with()) == "bad signature");
  CHECK(error_of(token + "AAAA", options_with()) == "bad signature");
}

TEST_CASE("verify_hs256 rejects a tampered header", "[jwt]") {
  const std::string token = sign_hs256(R"({"sub":"bob"})", kSecret);
  const std::string rest = token.substr(token.find('.'));
  const std::string other_header =
      base64url_encode(R"({"alg":"HS256","typ":"JWT","kid":"attacker"})");
  CHECK(error_of(other_header + rest, options_with()) == "bad signature");
  // Same JSON meaning, different bytes: the MAC covers the text as sent.
  CHECK(error_of(base64url_encode(R"({"typ":"JWT","alg":"HS256"})") + rest, options_with()) ==
        "bad signature");
}

// ---------------------------------------------------------------------------
// Algorithm

TEST_CASE("verify_hs256 never accepts alg none", "[jwt]") {
  const std::string payload = base64url_encode(R"({"sub":"admin"})");
  CHECK(error_of(base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + payload + ".",
                 options_with()) == "unsupported alg: none");
  CHECK(error_of(base64url_encode(R"({"alg":"None"})") + "." + payload + ".", options_with()) ==
        "unsupported alg: None");
  // Even when "signed" with the right key.
  CHECK(error_of(sign_json(R"({"alg":"none"})", R"({"sub":"admin"})"), options_with()) ==
        "unsupported alg: none");
}

TEST_CASE("verify_hs256 rejects other algorithms and bad headers", "[jwt]") {
  const std::string payload = R"({"sub":"bob"})";
  CHECK(error_of(sign_json(R"({"alg":"HS512","typ":"JWT"})", payload), options_with()) ==
        "unsupported alg: HS512");
  CHECK(error_of(sign_json(R"({"alg":"RS256","typ":"JWT"})", payload), options_with()) ==
        "unsupported alg: RS256");
  CHECK(error_of(sign_json(R"({"alg":"hs256"})", payload), options_with()) ==
        "unsupported alg: hs256");
  CHECK(error_of(sign_json(R"({"typ":"JWT"})", payload), options_with()) ==
        "unsupported alg: (missing)");
  CHECK(error_of(sign_json(R"({"alg":256})", payload), options_with()) ==
        "unsupported alg: (not a string)");
  CHECK(error_of(sign_json(R"({"ALG":"HS256"})", payload), options_with()) ==
        "unsupported alg: (missing)");
  CHECK(error_of(sign_json(R"({"alg":"HS256","typ":"JOSE+JSON"})", payload), options_with()) ==
        "unsupported alg: HS256 (typ JOSE+JSON)");
  CHECK(error_of(sign_json(R"({"alg":"HS256","typ":null})", payload), options_with()) ==
        "unsupported alg: HS256 (typ (not a string))");
  // Attacker-chosen alg text is sanitised and truncated before it is echoed.
  CHECK(error_of(sign_json("{\"alg\":\"x\\u0001\xc3\xa9" + std::string(100, 'A') + "\"}", payload),
                 options_with()) == "unsupported alg: x???" + std::string(28, 'A') + "...");
  // Header that is not a JSON object.
  CHECK(error_of(sign_json(R"(["HS256"])", payload), options_with()) == "malformed token");
  CHECK(error_of(sign_json("not json", payload), options_with()) == "malformed token");
  CHECK(error_of(sign_json(R"({"alg":"HS256"} x)", payload), options_with()) ==
        "malformed token");
  CHECK(error_of(sign_json("", payload), options_with()) == "malformed token");
}

// ---------------------------------------------------------------------------
// Critical header parameters (RFC 7515 4.1.11)

TEST_CASE("verify_hs256 refuses any crit extension: it understands none", "[jwt][crit]") {
  const std::string payload = R"({"sub":"bob"})";
  // A well-formed crit names extensions the recipient must understand; this
  // verifier implements none, so every one is refused, named in the error.
  CHECK(error_of(sign_json(R"({"alg":"HS256","crit":["exp"],"exp":1})", payload), options_with()) ==
        "unsupported critical header 'exp'");
  CHECK(error_of(sign_json(R"({"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false})", payload),
                 options_with()) == "unsupported critical header 'b64'");
  // The first one is named; a listed name absent from the header changes nothing.
  CHECK(error_of(sign_json(R"({"alg":"HS256","crit":["x","y"]})", payload), options_with()) ==
        "unsupported critical header 'x'");
  // An empty name is still a name this verifier does not understand.
  CHECK(error_of(sign_json(R"({"alg":"HS256","crit":[""]})", payload), options_with()) ==
        "unsupported critical header ''");
  // Attacker-chosen names are sanitised and truncated like alg.
  CHECK(error_of(sign_json("{\"alg\":\"HS256\",\"crit\":[\"a\\u0001" + std::string(40, 'B') + "\"]}",
                           payload),
                 options_with()) == "unsupported critical header 'a?" + std::string(30, 'B') + "...'");
  // Refused before the signature is checked: the header alone decides.
  CHECK(error_of(sign_json(R"({"alg":"HS256","crit":["x"]})", payload, "another-secret"), options_with()) ==
        "unsupported critical header 'x'");
  // alg is still checked first.
  CHECK(error_of(sign_json(R"({"alg":"none","crit":["x"]})", payload), options_with()) ==
        "unsupported alg: none");
  // "Crit" is not crit (names are case-sensitive).
  CHECK(error_of(sign_json(R"({"alg":"HS256","Crit":["x"]})", payload), options_with()) == "ok");
}

TEST_CASE("verify_hs256 treats a crit that is not a non-empty array of strings as malformed", "[jwt][crit]") {
  const std::string payload = R"({"sub":"bob"})";
  for (const char* crit : {R"([])", R"("x")", R"(1)", R"(null)", R"(true)", R"({"x":1})", R"([1])",
                           R"(["x",2])", R"([["x"]])", R"([null])"}) {
    INFO("crit " << crit);
    CHECK(error_of(sign_json(std::string(R"({"alg":"HS256","crit":)") + crit + "}", payload), options_with()) ==
          "malformed token");
  }
}

// ---------------------------------------------------------------------------
// Structure and encoding

TEST_CASE("verify_hs256 requires exactly three parts", "[jwt]") {
  const std::string token = sign_hs256(R"({"sub":"bob"})", kSecret);
  const std::string header_and_payload = token.substr(0, token.rfind('.'));
  CHECK(error_of("", options_with()) == "malformed token");
  CHECK(error_of(".", options_with()) == "malformed token");
  CHECK(error_of("..", options_with()) == "malformed token");
  CHECK(error_of("...", options_with()) == "malformed token");
  CHECK(error_of("abc", options_with()) == "malformed token");
  CHECK(error_of(header_and_payload, options_with()) == "malformed token");
  CHECK(error_of(token.substr(0, token.find('.')), options_with()) == "malformed token");
  CHECK(error_of(token + ".", options_with()) == "malformed token");
  CHECK(error_of(token + ".AAAA", options_with()) == "malformed token");
  CHECK(error_of("." + token, options_with()) == "malformed token");
}

TEST_CASE("verify_hs256 rejects invalid base64url in any part", "[jwt]") {
  const std::string header = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  const std::string payload = base64url_encode(R"({"sub":"bob"})");
  const std::string token = sign_parts(header, payload);
  const std::string signature = token.substr(token.rfind('.') + 1);

  CHECK(error_of("*" + header + "." + payload + "." + signature, options_with()) ==
        "malformed token");
  CHECK(error_of(header + "+." + payload + "." + signature, options_with()) == "malformed token");
  CHECK(error_of(header + "." + payload + "." + signature + "*", options_with()) ==
        "malformed token");
  CHECK(error_of(header + "." + payload + "." + signature.substr(0, 40) + "/" +
                     signature.substr(41),
                 options_with()) == "malformed token");
  // Correctly signed, but the payload text itself is not base64url.
  CHECK(error_of(sign_parts(header, payload + "!"), options_with()) == "malformed token");
  CHECK(error_of(sign_parts(header, "e30" + std::string(1, '\0')), options_with()) ==
        "malformed token");
  CHECK(error_of(sign_parts(header, "Z"), options_with()) == "malformed token");
}

TEST_CASE("verify_hs256 refuses '=' padding in any part, signed or not", "[jwt][padding]") {
  // {"alg":"HS256" } is 16 bytes, {"sub":"bob"} 13: both end in a partial
  // group, so their padded forms ("==") are what a careless encoder emits.
  const std::string header = base64url_encode(R"({"alg":"HS256" })");
  const std::string payload = base64url_encode(R"({"sub":"bob"})");
  REQUIRE(header.size() % 4 == 2);
  REQUIRE(payload.size() % 4 == 2);
  const std::string token = sign_parts(header, payload);
  REQUIRE(error_of(token, options_with()) == "ok");
  const std::string signature = token.substr(token.rfind('.') + 1);
  REQUIRE(signature.size() == 43);  // 32 bytes: one '=' when padded

  // Each part padded, and signed over exactly what is sent, so only the
  // padding can be the reason for the refusal.
  CHECK(error_of(sign_parts(header + "==", payload), options_with()) == "malformed token");
  CHECK(error_of(sign_parts(header, payload + "=="), options_with()) == "malformed token");
  CHECK(error_of(header + "." + payload + "." + signature + "=", options_with()) == "malformed token");
  CHECK(error_of(sign_parts(header + "==", payload + "=="), options_with()) == "malformed token");
}

TEST_CASE("verify_hs256 requires the payload to be one JSON object", "[jwt]") {
  CHECK(error_of(sign_hs256("[]", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"("sub")", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256("42", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256("", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"({"sub":"bob")", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"({"sub":"bob"}{})", kSecret), options_with()) ==
        "malformed token");
  CHECK(error_of(sign_hs256(std::string(R"({"sub":"bob"})") + '\0', kSecret), options_with()) ==
        "malformed token");
  // Raw control characters and \u0000 (which cJSON would truncate at).
  CHECK(error_of(sign_hs256("{\"sub\":\"bo\x01\"}", kSecret), options_with()) ==
        "malformed token");
  CHECK(error_of(sign_hs256(R"({"sub":"admin\u0000x"})", kSecret), options_with()) ==
        "malformed token");
  // Surrounding whitespace and escaped characters are fine.
  const JwtResult spaced =
      verify_hs256(sign_hs256(" {\"sub\" : \"a\\\"b\\\\u0000\"}\r\n ", kSecret), options_with(), kNow);
  REQUIRE(spaced.ok);
  CHECK(spaced.subject == "a\"b\\u0000");
}

TEST_CASE("verify_hs256 requires sub to be a string", "[jwt]") {
  CHECK(error_of(sign_hs256(R"({"sub":42})", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"({"sub":null})", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"({"sub":["a"]})", kSecret), options_with()) == "malformed token");
  const JwtResult result = verify_hs256(sign_hs256(R"({"sub":""})", kSecret), options_with(), kNow);
  REQUIRE(result.ok);
  CHECK(result.subject == "");
}

// ---------------------------------------------------------------------------
// Time claims

TEST_CASE("verify_hs256 checks exp with leeway", "[jwt]") {
  const auto token_exp = [](std::string_view exp) {
    return sign_hs256(std::string(R"({"sub":"bob","exp":)") + std::string(exp) + "}", kSecret);
  };
  JwtOptions options = options_with();

  CHECK(error_of(token_exp("1799999000"), options) == "token expired");
  CHECK(error_of(token_exp("1800000000"), options) == "token expired");  // now == exp
  CHECK(error_of(token_exp("1800000001"), options) == "ok");
  CHECK(error_of(token_exp("1900000000"), options) == "ok");
  CHECK(error_of(token_exp("1800000000.5"), options) == "ok");
  // No double holds 1e999: refused like any client JSON (json/strict.hpp),
  // where it used to become +inf (a token that never expires).
  CHECK(error_of(token_exp("1e999"), options) == "malformed token");
  CHECK(error_of(token_exp("-1e999"), options) == "malformed token");

  options.leeway_s = 60;
  CHECK(error_of(token_exp("1799999941"), options) == "ok");        // 59 s late
  CHECK(error_of(token_exp("1799999940"), options) == "token expired");
  CHECK(error_of(token_exp("1799999000"), options) == "token expired");

  options.leeway_s = -60;  // meaningless: treated as no leeway
  CHECK(error_of(token_exp("1800000001"), options) == "ok");
  CHECK(error_of(token_exp("1800000000"), options) == "token expired");
}

TEST_CASE("verify_hs256 checks nbf with leeway", "[jwt]") {
  const auto token_nbf = [](std::string_view nbf) {
    return sign_hs256(std::string(R"({"sub":"bob","nbf":)") + std::string(nbf) + "}", kSecret);
  };
  JwtOptions options = options_with();

  CHECK(error_of(token_nbf("1800000100"), options) == "token not yet valid");
  CHECK(error_of(token_nbf("1800000001"), options) == "token not yet valid");
  CHECK(error_of(token_nbf("1800000000"), options) == "ok");  // now == nbf
  CHECK(error_of(token_nbf("1700000000"), options) == "ok");

  options.leeway_s = 60;
  CHECK(error_of(token_nbf("1800000060"), options) == "ok");
  CHECK(error_of(token_nbf("1800000061"), options) == "token not yet valid");
}

TEST_CASE("verify_hs256 rejects non-numeric exp and nbf", "[jwt]") {
  CHECK(error_of(sign_hs256(R"({"exp":"1900000000"})", kSecret), options_with()) ==
        "malformed token");
  CHECK(error_of(sign_hs256(R"({"exp":null})", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"({"exp":true})", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"({"nbf":"0"})", kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_hs256(R"({"nbf":{}})", kSecret), options_with()) == "malformed token");
  // Claim names are case-sensitive: "EXP" is just another claim.
  CHECK(error_of(sign_hs256(R"({"EXP":0,"Nbf":"x"})", kSecret), options_with()) == "ok");
}

TEST_CASE("verify_hs256 checks the signature before any claim", "[jwt]") {
  const std::string token = sign_hs256(R"({"exp":0,"nbf":"x","sub":1})", kSecret);
  CHECK(error_of(token, options_with("wrong")) == "bad signature");
}

// ---------------------------------------------------------------------------
// Audience and issuer

TEST_CASE("verify_hs256 checks aud as a string or an array", "[jwt]") {
  JwtOptions options = options_with();
  options.audience = "wsrelay";

  CHECK(error_of(sign_hs256(R"({"aud":"wsrelay"})", kSecret), options) == "ok");
  CHECK(error_of(sign_hs256(R"({"aud":["other","wsrelay"]})", kSecret), options) == "ok");
  CHECK(error_of(sign_hs256(R"({"aud":"other"})", kSecret), options) == "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"aud":"wsrelay2"})", kSecret), options) == "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"aud":"WSRELAY"})", kSecret), options) == "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"aud":["other","x"]})", kSecret), options) ==
        "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"aud":[]})", kSecret), options) == "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"aud":[["wsrelay"]]})", kSecret), options) ==
        "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"aud":{"wsrelay":1}})", kSecret), options) ==
        "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"aud":7})", kSecret), options) == "audience mismatch");
  CHECK(error_of(sign_hs256(R"({"sub":"bob"})", kSecret), options) == "audience mismatch");

  // Not configured: aud is not looked at.
  CHECK(error_of(sign_hs256(R"({"aud":"other"})", kSecret), options_with()) == "ok");
}

TEST_CASE("verify_hs256 checks iss", "[jwt]") {
  JwtOptions options = options_with();
  options.issuer = "https://issuer.example";

  CHECK(error_of(sign_hs256(R"({"iss":"https://issuer.example"})", kSecret), options) == "ok");
  CHECK(error_of(sign_hs256(R"({"iss":"https://evil.example"})", kSecret), options) ==
        "issuer mismatch");
  CHECK(error_of(sign_hs256(R"({"iss":["https://issuer.example"]})", kSecret), options) ==
        "issuer mismatch");
  CHECK(error_of(sign_hs256(R"({"sub":"bob"})", kSecret), options) == "issuer mismatch");

  CHECK(error_of(sign_hs256(R"({"iss":"anyone"})", kSecret), options_with()) == "ok");
}

// ---------------------------------------------------------------------------
// Configuration and limits

TEST_CASE("verify_hs256 refuses to run without a secret", "[jwt]") {
  const std::string token = sign_hs256(R"({"sub":"bob"})", kSecret);
  CHECK(error_of(token, options_with("")) == "no secret configured");
  CHECK(error_of("", options_with("")) == "no secret configured");
  // Nothing to sign with either.
  CHECK(sign_hs256(R"({"sub":"bob"})", "") == "");
}

TEST_CASE("verify_hs256 caps the token length at 8192 bytes", "[jwt]") {
  // 18 + 6063 + 2 = 6083 payload bytes -> 8111 base64url characters, so the
  // token is 36 + 1 + 8111 + 1 + 43 = 8192 bytes: exactly the cap.
  const std::string payload = R"({"sub":"x","pad":")" + std::string(6063, 'a') + R"("})";
  const std::string at_cap = sign_hs256(payload, kSecret);
  REQUIRE(at_cap.size() == 8192);
  CHECK(error_of(at_cap, options_with()) == "ok");

  const std::string over_cap = sign_hs256(R"({"sub":"x","pad":")" + std::string(6064, 'a') +
                                              R"("})",
                                          kSecret);
  REQUIRE(over_cap.size() > 8192);
  CHECK(error_of(over_cap, options_with()) == "token too long");
  CHECK(error_of(std::string(1 << 20, 'A'), options_with()) == "token too long");
}

TEST_CASE("verify_hs256 survives hostile input", "[jwt]") {
  // Deep nesting, signed so the payload really is parsed.
  const std::string deep_array = std::string(2000, '[') + std::string(2000, ']');
  const std::string deep_object = R"({"a":)" + deep_array + "}";
  CHECK(error_of(sign_hs256(deep_object, kSecret), options_with()) == "malformed token");
  CHECK(error_of(sign_json(deep_object, R"({"sub":"x"})"), options_with()) ==
        "malformed token");
  // Nesting within cJSON's limit is fine.
  const std::string shallow = R"({"a":)" + std::string(100, '[') + std::string(100, ']') + "}";
  CHECK(error_of(sign_hs256(shallow, kSecret), options_with()) == "ok");

  // Random bytes, dots sprinkled in, and random valid-alphabet parts.
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 300);
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 2000; ++i) {
    std::string junk;
    const int n = length(rng);
    for (int j = 0; j < n; ++j) {
      junk.push_back(i % 2 == 0 ? static_cast<char>(byte(rng)) : alphabet[pick(rng)]);
    }
    const JwtResult result = verify_hs256(junk, options_with(), kNow);
    CHECK_FALSE(result.ok);
    CHECK_FALSE(result.error.empty());
  }
}
