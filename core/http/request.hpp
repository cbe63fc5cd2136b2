// request: an HTTP request and response as the relay's routes see them —
// plain data, no lws, so the script engine can answer one.
#pragma once

#include <string>
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

}  // namespace wsrelay::http
