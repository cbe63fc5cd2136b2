// base64url: the URL-safe base64 alphabet of RFC 4648 section 5, as used by JWS/JWT.
// Owns: nothing; pure functions over bytes.
// Uses: only the standard library.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsrelay::auth {

// Encodes arbitrary bytes with '-' and '_', without '=' padding (JWS form).
std::string base64url_encode(std::string_view bytes);

// Decodes url-alphabet text in the unpadded form JWS uses (RFC 7515 section 2).
// Returns nullopt for characters outside the alphabet (including '+', '/',
// whitespace and '=': padding, even complete as in "Zg==", is refused), a
// length that no encoder can produce (4n+1), and non-zero unused bits in the
// last character: accepting those would let several texts decode to the same
// bytes, which makes signed tokens malleable. So every byte string has exactly
// one encoding that decodes, the one base64url_encode produces.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace wsrelay::auth
