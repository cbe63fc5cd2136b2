// request: an HTTP request and response as the relay's routes see them —
// plain data, no lws, so the script engine can answer one.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsrelay::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string query;   // after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;  // lowercase names
  std::string body;
  std::string remote;
};

struct Response {
  int status = 404;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// RFC 7230 §3.2.6: a header name is a token (no separators, no controls).
inline bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) return false;
    if (std::string_view("()<>@,;:\\\"/[]?={}").find(ch) != std::string_view::npos) return false;
  }
  return true;
}

// A header value: no control character but tab (so no CR or LF that would
// end the header and start another, or the body).
inline bool is_field_value(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace wsrelay::http
