// jwt: verification (and, for tests and dev tooling, signing) of HS256 JSON Web Tokens.
// Owns: nothing beyond the call; no global state, safe to call from any thread.
// Uses: base64url (this directory), cJSON for header/claims, OpenSSL 3 EVP_MAC
//       for HMAC-SHA256 and CRYPTO_memcmp for the constant-time comparison.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wsrelay::auth {

struct JwtOptions {
  std::string secret;          // HMAC key (raw bytes of the string)
  int64_t leeway_s = 0;        // clock skew allowed for exp/nbf (negative counts as 0)
  std::string audience;        // if non-empty, "aud" must equal it (string) or contain it (array)
  std::string issuer;          // if non-empty, "iss" must equal it
};

struct JwtResult {
  bool ok = false;
  std::string subject;         // "sub" claim (empty if absent)
  std::string claims_json;     // the payload JSON as decoded (valid JSON object text)
  std::string error;           // when !ok, a short reason (see below)
};

// Errors, checked in this order; the first failure wins:
//   "no secret configured"     options.secret is empty
//   "token too long"           more than 8192 bytes
//   "malformed token"          not three base64url parts (no '=' padding),
//                              header/payload not a JSON object, header crit
//                              not a non-empty array of strings, exp/nbf not
//                              numbers, sub not a string
//   "unsupported alg: <alg>"   header alg is not "HS256" (or typ is not "JWT");
//                              <alg> is sanitised and truncated, never raw bytes
//   "unsupported critical header '<name>'"
//                              header crit lists an extension (RFC 7515 4.1.11);
//                              none is understood, so any crit is refused; <name>
//                              (the first) is sanitised like <alg>
//   "bad signature"            HMAC-SHA256 mismatch (checked before any claim)
//   "token expired"            now_s >= exp + leeway
//   "token not yet valid"      now_s + leeway < nbf
//   "audience mismatch" / "issuer mismatch"
// On success ok is true, error is empty; on failure subject/claims_json are empty.
JwtResult verify_hs256(std::string_view token, const JwtOptions& options, int64_t now_s);

// For tests and the CLI's dev tooling: signs a JSON object payload with HS256
// (header {"alg":"HS256","typ":"JWT"}). The payload is signed byte for byte and
// not validated, so tests can build validly signed tokens with bad claims.
// Returns an empty string if secret is empty (verify_hs256 would refuse such a
// token anyway) or if OpenSSL fails.
std::string sign_hs256(std::string_view payload_json, std::string_view secret);

}  // namespace wsrelay::auth
