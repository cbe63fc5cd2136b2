#include "auth/jwt.hpp"

#include "auth/base64url.hpp"
#include "json/json.hpp"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <memory>
#include <optional>
#include <utility>

namespace wsrelay::auth {
namespace {

// Large enough for any sane bearer token, small enough that a hostile client
// cannot make us decode and parse megabytes per handshake.
constexpr std::size_t kMaxTokenBytes = 8192;
// Attacker-chosen alg strings end up in logs and close reasons: keep them short.
constexpr std::size_t kMaxAlgEcho = 32;
constexpr std::size_t kSha256Bytes = 32;
// base64url of {"alg":"HS256","typ":"JWT"}, the only header sign_hs256 emits.
constexpr std::string_view kSignedHeaderB64 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

constexpr std::string_view kMalformed = "malformed token";

using json::JsonPtr;

using Mac = std::array<unsigned char, kSha256Bytes>;

JwtResult fail(std::string_view reason) {
  JwtResult result;
  result.error = std::string(reason);
  return result;
}

// cJSON accepts raw control characters inside strings and turns "\u0000" into
// a NUL that silently truncates the C string (so "sub":"admin\u0000x" would
// read as "admin"). Refusing both keeps claims_json strict JSON and makes
// every string claim mean exactly what was signed. Runs only on text cJSON
// already parsed, so quote/escape tracking is reliable.
bool has_unsafe_bytes(std::string_view text) {
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (in_string) {
      if (escaped) {
        escaped = false;
        if (c == 'u' && text.substr(i + 1, 4) == "0000") {
          return true;
        }
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      } else if (c < 0x20) {
        return true;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      return true;
    }
  }
  return false;
}

// Parses text that must be exactly one JSON object. json::parse applies the
// rule every client JSON follows (json/strict.hpp): a repeated claim such as
// {"sub":"ann","sub":"root"} is refused rather than read as "ann" here and
// "root" by the Lua that later decodes the same claims.
JsonPtr parse_object(std::string_view text) {
  JsonPtr root = json::parse(text);
  if (!root || !cJSON_IsObject(root.get())) {
    return nullptr;
  }
  if (has_unsafe_bytes(text)) {
    return nullptr;
  }
  return root;
}

const cJSON* member(const cJSON* object, const char* name) {
  // Case-sensitive on purpose: "EXP" is not "exp".
  return cJSON_GetObjectItemCaseSensitive(object, name);
}

// Renders a header value for an error message without echoing raw bytes.
std::string describe(const cJSON* value) {
  if (value == nullptr) {
    return "(missing)";
  }
  if (!cJSON_IsString(value) || value->valuestring == nullptr) {
    return "(not a string)";
  }
  const std::string_view raw(value->valuestring);
  std::string out;
  for (const char c : raw.substr(0, kMaxAlgEcho)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  if (raw.size() > kMaxAlgEcho) {
    out += "...";
  }
  return out;
}

bool string_equals(const cJSON* value, std::string_view expected) {
  return cJSON_IsString(value) && value->valuestring != nullptr &&
         std::string_view(value->valuestring) == expected;
}

std::optional<Mac> hmac_sha256(std::string_view key, std::string_view data) {
  Mac mac{};
  std::size_t mac_len = 0;
  // EVP_Q_mac rather than HMAC(): the latter is deprecated in OpenSSL 3 and
  // the build treats deprecation warnings as errors.
  const unsigned char* out =
      EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
                mac.size(), &mac_len);
  if (out == nullptr || mac_len != mac.size()) {
    return std::nullopt;
  }
  return mac;
}

}  // namespace

JwtResult verify_hs256(std::string_view token, const JwtOptions& options, int64_t now_s) {
  if (options.secret.empty()) {
    return fail("no secret configured");
  }
  if (token.size() > kMaxTokenBytes) {
    return fail("token too long");
  }

  const std::size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) {
    return fail(kMalformed);
  }
  const std::size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(kMalformed);
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);

  // The header has to be read before the signature is checked (it names the
  // algorithm), but nothing in it is trusted beyond "is it HS256".
  const std::optional<std::string> header_text = base64url_decode(header_b64);
  if (!header_text) {
    return fail(kMalformed);
  }
  const JsonPtr header = parse_object(*header_text);
  if (!header) {
    return fail(kMalformed);
  }
  // RFC 7515 4.1.11: "crit", when present, is a non-empty array of header
  // parameter names. Its shape is checked with the rest of the structure,
  // before alg, so that "malformed token" keeps meaning "not a JWS at all".
  const cJSON* crit = member(header.get(), "crit");
  if (crit != nullptr) {
    if (!cJSON_IsArray(crit) || cJSON_GetArraySize(crit) == 0) {
      return fail(kMalformed);
    }
    const cJSON* name = nullptr;
    cJSON_ArrayForEach(name, crit) {
      if (!cJSON_IsString(name) || name->valuestring == nullptr) {
        return fail(kMalformed);
      }
    }
  }
  const cJSON* alg = member(header.get(), "alg");
  if (!string_equals(alg, "HS256")) {
    // Covers "none", HS384/HS512, RS256 etc.: one key type, one algorithm,
    // so a token can never pick a weaker check than the server intended.
    return fail("unsupported alg: " + describe(alg));
  }
  const cJSON* typ = member(header.get(), "typ");
  if (typ != nullptr && !string_equals(typ, "JWT")) {
    return fail("unsupported alg: HS256 (typ " + describe(typ) + ")");
  }

  if (crit != nullptr) {
    // A recipient must refuse a token whose crit lists an extension it does
    // not implement, and this verifier implements none (b64, for instance,
    // would change what the signature covers). Refused before the MAC: the
    // header alone decides, and no key-dependent work is spent on it.
    return fail("unsupported critical header '" + describe(crit->child) + "'");
  }

  const std::optional<std::string> signature = base64url_decode(signature_b64);
  if (!signature) {
    return fail(kMalformed);
  }
  // The MAC covers the parts exactly as transmitted, not a re-encoding.
  const std::optional<Mac> expected = hmac_sha256(options.secret, token.substr(0, dot2));
  // An OpenSSL failure also lands here: fail closed, never skip the check.
  if (!expected || signature->size() != expected->size() ||
      CRYPTO_memcmp(signature->data(), expected->data(), expected->size()) != 0) {
    return fail("bad signature");
  }

  // From here on the payload is authentic; now it may be interpreted.
  std::optional<std::string> payload_text = base64url_decode(payload_b64);
  if (!payload_text) {
    return fail(kMalformed);
  }
  const JsonPtr claims = parse_object(*payload_text);
  if (!claims) {
    return fail(kMalformed);
  }

  const cJSON* sub = member(claims.get(), "sub");
  const cJSON* exp = member(claims.get(), "exp");
  const cJSON* nbf = member(claims.get(), "nbf");
  if ((sub != nullptr && !cJSON_IsString(sub)) || (exp != nullptr && !cJSON_IsNumber(exp)) ||
      (nbf != nullptr && !cJSON_IsNumber(nbf))) {
    return fail(kMalformed);
  }

  // Compared as doubles: NumericDate may be fractional or absurdly large
  // (1e300, or inf from "1e999"), and converting those to int64 would be UB.
  const double now = static_cast<double>(now_s);
  const double leeway = options.leeway_s > 0 ? static_cast<double>(options.leeway_s) : 0.0;
  if (exp != nullptr && now >= cJSON_GetNumberValue(exp) + leeway) {
    return fail("token expired");
  }
  if (nbf != nullptr && now + leeway < cJSON_GetNumberValue(nbf)) {
    return fail("token not yet valid");
  }

  if (!options.audience.empty()) {
    const cJSON* aud = member(claims.get(), "aud");
    bool matched = string_equals(aud, options.audience);
    if (!matched && cJSON_IsArray(aud)) {
      const cJSON* entry = nullptr;
      cJSON_ArrayForEach(entry, aud) {
        if (string_equals(entry, options.audience)) {
          matched = true;
          break;
        }
      }
    }
    if (!matched) {
      return fail("audience mismatch");
    }
  }
  if (!options.issuer.empty() && !string_equals(member(claims.get(), "iss"), options.issuer)) {
    return fail("issuer mismatch");
  }

  JwtResult result;
  result.ok = true;
  if (sub != nullptr && sub->valuestring != nullptr) {
    result.subject = sub->valuestring;
  }
  result.claims_json = std::move(*payload_text);
  return result;
}

std::string sign_hs256(std::string_view payload_json, std::string_view secret) {
  if (secret.empty()) {
    return {};
  }
  std::string token(kSignedHeaderB64);
  token.push_back('.');
  token += base64url_encode(payload_json);
  const std::optional<Mac> mac = hmac_sha256(secret, token);
  if (!mac) {
    return {};
  }
  token.push_back('.');
  token += base64url_encode(
      std::string_view(reinterpret_cast<const char*>(mac->data()), mac->size()));
  return token;
}

}  // namespace wsrelay::auth
