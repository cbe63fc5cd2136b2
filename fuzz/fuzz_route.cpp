// fuzz_route: the path matcher and the HTTP routes, without lws.
//
// Input: the first line is a path pattern, every other line a request
// "METHOD /path?query body" ("!" in front: with the admin bearer token).
//  * PathPattern: a pattern matches a path built from it (placeholders
//    replaced), captures are non-empty and hold no "/", and a pattern
//    without placeholders matches only itself.
//  * server::answer_http on a Relay with two endpoints — one runs a script with
//    http routes (fuzz/routes.lua-like, inline below), one the built-in
//    standard script — plus the relay's own /healthz and /status: the status
//    is a valid HTTP code, headers never carry line breaks, /status and the
//    /admin/* answers are JSON, and /admin/* without the token is 401.
#include "fuzz_common.hpp"

#include "config/config.hpp"
#include "http/request.hpp"
#include "server/http_routes.hpp"
#include "json/json.hpp"
#include "http/path_pattern.hpp"
#include "server/relay.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace wsrelay;

namespace {

constexpr const char* kRoutesScript = R"lua(
local function decode(body)
  local value = relay.json.decode(body)
  if value == nil then return body end
  return value
end
return {
  http = {
    ["GET /items/{id}"] = function(req)
      return { json = { id = req.params.id, query = req.query, method = req.method } }
    end,
    ["POST /echo/{a}/{b}"] = function(req)
      return { status = math.tointeger(tonumber(req.query)) or 201,
               json = { a = req.params.a, b = req.params.b, body = decode(req.body) },
               headers = { ["X-A"] = req.params.a, ["X-Query"] = req.query } }
    end,
    ["GET /text/{t}"] = function(req) return req.params.t .. "?" .. req.query end,
    ["PUT /fail"] = function(req) error("boom " .. req.body) end,
    ["DELETE /{x}"] = function(req) return nil end,
    ["OPTIONS /{a}/{b}/{c}"] = function(req)
      return { status = 299, body = req.params.a .. req.params.b .. req.params.c,
               content_type = req.params.c }
    end,
  },
  on_message = function(session, msg) return msg end,
}
)lua";

constexpr std::string_view kAdminToken = "fuzz-admin-token";

std::unique_ptr<server::Relay>& relay() {
  static std::unique_ptr<server::Relay> r;
  return r;
}

void check_pattern(std::string_view pattern, const std::vector<std::string_view>& paths) {
  const http::PathPattern p(pattern);
  for (std::string_view path : paths) {
    http::PathPattern::Params params;
    if (!p.match(path, params)) continue;
    if (!p.has_placeholders()) {
      FUZZ_CHECK(path == pattern);
      continue;
    }
    for (const auto& [name, value] : params) {
      FUZZ_CHECK(!name.empty());
      FUZZ_CHECK(!value.empty() && value.find('/') == std::string::npos);
    }
  }
  if (pattern.empty() || pattern.front() != '/') return;
  // The pattern with each placeholder segment replaced must match.
  std::string concrete;
  std::size_t placeholders = 0;
  std::size_t start = 1;
  while (start <= pattern.size()) {
    const std::size_t slash = pattern.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? pattern.size() : slash;
    const std::string_view seg = pattern.substr(start, end - start);
    concrete += '/';
    if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') {
      concrete += "x";
      ++placeholders;
    } else {
      concrete += seg;
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  http::PathPattern::Params params;
  FUZZ_CHECK(p.match(concrete, params));
  FUZZ_CHECK(params.size() == (p.has_placeholders() ? placeholders : 0));
}

// "[!]METHOD /path?query body": "!" adds the admin bearer token.
void check_request(std::string_view line) {
  http::Request req;
  const bool authorized = !line.empty() && line.front() == '!';
  if (authorized) line.remove_prefix(1);
  const std::size_t space = line.find(' ');
  req.method = std::string(line.substr(0, space));
  std::string_view target = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  if (const std::size_t body = target.find(' '); body != std::string_view::npos) {
    req.body = std::string(target.substr(body + 1));
    target = target.substr(0, body);
  }
  const std::size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  req.remote = "127.0.0.1";
  req.headers = {{"host", "localhost"}, {"content-type", "application/json"}, {"x-line", std::string(line)}};
  if (authorized) req.headers.emplace_back("authorization", "Bearer " + std::string(kAdminToken));

  server::Relay& r = *relay();
  const bool scripted = server::is_script_route(r, req.method, req.path);
  const http::Response res = server::answer_http(r, req);
  FUZZ_CHECK(res.status >= 100 && res.status <= 599);
  const bool admin = req.path.rfind("/admin/", 0) == 0;
  if (admin && !authorized) FUZZ_CHECK(res.status == 401);
  if (!scripted && !admin) {
    FUZZ_CHECK(res.status == 200 || res.status == 404 || res.status == 405);
  }
  if (res.status == 200 && !scripted && (req.path == "/status" || admin)) {
    json::JsonPtr body = json::parse(res.body);
    FUZZ_CHECK(body != nullptr && cJSON_IsObject(body.get()));
  }
  for (const auto& [name, value] : res.headers) {
    FUZZ_CHECK(name.find_first_of("\r\n") == std::string::npos);
    FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  // Relay::create reads scripts from files: write the routes script once.
  const std::string dir = std::filesystem::temp_directory_path().string() + "/wsrelay-fuzz-route-" +
                          std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string script = dir + "/routes.lua";
  std::ofstream(script) << kRoutesScript;

  config::Config cfg = config::default_config(fuzz::fake_env());
  cfg.admin_token = std::string(kAdminToken);
  config::Endpoint routes;
  routes.path = "/api/{room}";
  routes.script_name = "routes.lua";
  routes.script_path = script;
  routes.options_json = "{}";
  cfg.endpoints.push_back(routes);
  std::vector<std::string> errors;
  relay() = server::Relay::create(cfg, errors);
  std::filesystem::remove_all(dir);
  if (!relay()) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::string_view> all = fuzz::lines(fuzz::as_text(data, size));
  if (all.empty()) return 0;
  const std::vector<std::string_view> rest(all.begin() + 1, all.end());
  check_pattern(all[0], rest);
  for (std::string_view line : rest) check_request(line);
  return 0;
}
