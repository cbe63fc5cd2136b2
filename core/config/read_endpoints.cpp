// The endpoints of a config, and each one's upstream.
#include "config/loader.hpp"
#include "http/request.hpp"

#include "json/json.hpp"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <system_error>
#include <type_traits>
#include <utility>

namespace wsrelay::config {

namespace fs = std::filesystem;
using json::JsonPtr;
using JsonText = json::PrintedJson;

bool Loader::check_endpoint_path(const std::string& value, const std::string& path) {
  const std::size_t before = errors_.size();
  if (value.empty() || value.front() != '/') error(path, "must start with \"/\"");
  if (std::any_of(value.begin(), value.end(),
                  [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; })) {
    error(path, "must not contain whitespace");
  }
  if (value.find_first_of("?#") != std::string::npos) {
    error(path, "must not contain \"?\" or \"#\"");
  }
  std::set<std::string_view> names;
  for (std::string_view seg : split_segments(value)) {
    if (seg.find_first_of("{}") == std::string_view::npos) continue;
    const bool whole = seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
    const std::string_view name = whole ? seg.substr(1, seg.size() - 2) : std::string_view{};
    if (!whole || !is_placeholder_name(name)) {
      error(path, "invalid placeholder in segment " + quote(seg) +
                      " (expected a whole segment \"{name}\" with name matching "
                      "[A-Za-z_][A-Za-z0-9_]*)");
    } else if (!names.insert(name).second) {
      error(path, "placeholder \"{" + std::string(name) + "}\" appears more than once");
    }
  }
  return errors_.size() == before;
}

void Loader::check_script_file(const std::string& path, Endpoint& ep) {
  fs::path p(ep.script_name);
  if (p.is_relative()) p = fs::path(base_dir_) / p;
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) abs = p;
  abs = abs.lexically_normal();
  const std::string shown = abs.string();

  const fs::file_status st = fs::status(abs, ec);
  if (st.type() == fs::file_type::not_found) {
    error(path, "file not found: " + shown);
  } else if (ec) {
    error(path, "cannot access: " + shown + ": " + ec.message());
  } else if (!fs::is_regular_file(st)) {
    error(path, "not a regular file: " + shown);
  } else if (::access(shown.c_str(), R_OK) != 0) {
    error(path, "cannot read: " + shown + ": " + errno_text(errno));
  } else {
    ep.script_path = shown;
  }
}

void Loader::expand_tree(cJSON* node, const std::string& path) {
  if (cJSON_IsString(node) && node->valuestring != nullptr) {
    Expanded e = expand_env(node->valuestring, env_);
    if (!e.error.empty()) {
      error(path, e.error);
    } else if (e.value != node->valuestring &&
               cJSON_SetValuestring(node, e.value.c_str()) == nullptr) {
      error(path, "out of memory");
    }
    return;
  }
  if (cJSON_IsObject(node)) {
    for (cJSON* c = node->child; c != nullptr; c = c->next) {
      expand_tree(c, child_path(path, c->string != nullptr ? c->string : ""));
    }
  } else if (cJSON_IsArray(node)) {
    std::size_t i = 0;
    for (cJSON* c = node->child; c != nullptr; c = c->next, ++i) expand_tree(c, index_path(path, i));
  }
}

std::pair<Endpoint, bool> Loader::read_endpoint(cJSON* obj, const std::string& path) {
  Endpoint ep;
  ep.script_name = std::string(kBuiltinScriptName);
  ep.options_json = "{}";
  bool path_ok = false;
  check_keys(obj, path,
             {"path", "script", "max_message_size", "options", "upstream", "allowed_origins", "handshake_headers"});
  if (const cJSON* v = member(obj, "handshake_headers")) {
    // Headers beyond the known ones (http/handshake.hpp) the script reads
    // in session.headers and on_upgrade's req.headers.
    const std::string list_path = child_path(path, "handshake_headers");
    if (!cJSON_IsArray(v)) {
      error(list_path, "expected an array of header names like \"x-api-key\"");
    } else {
      std::size_t i = 0;
      for (const cJSON* h = v->child; h != nullptr; h = h->next, ++i) {
        if (i >= 32) {
          error(list_path, "at most 32 header names");
          break;
        }
        if (auto name = get_string(h, index_path(list_path, i))) {
          std::string lower = *name;
          for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          if (!http::is_token(lower)) {
            error(index_path(list_path, i), "expected a header name (a token like \"x-api-key\"), got " + quote(*name));
            continue;
          }
          ep.handshake_headers.push_back(std::move(lower));
        }
      }
    }
  }
  if (const cJSON* v = member(obj, "allowed_origins")) {
    const std::string origins_path = child_path(path, "allowed_origins");
    if (!cJSON_IsArray(v)) {
      error(origins_path, "expected an array of origins like \"https://example.com\"");
    } else {
      std::size_t i = 0;
      for (const cJSON* o = v->child; o != nullptr; o = o->next, ++i) {
        if (auto origin = get_string(o, index_path(origins_path, i))) {
          if (origin->empty() || (origin->rfind("http://", 0) != 0 && origin->rfind("https://", 0) != 0 &&
                                  *origin != "*" && *origin != "self")) {
            error(index_path(origins_path, i), "expected an origin like \"https://example.com\", \"self\" or \"*\"");
            continue;
          }
          while (origin->size() > 1 && origin->back() == '/') origin->pop_back();
          ep.allowed_origins.push_back(std::move(*origin));
        }
      }
    }
  }

  const std::string route_path = child_path(path, "path");
  if (const cJSON* v = member(obj, "path")) {
    if (auto s = get_string(v, route_path)) {
      path_ok = check_endpoint_path(*s, route_path);
      ep.path = std::move(*s);
    }
  } else {
    error(route_path, "required key is missing");
  }

  if (const cJSON* v = member(obj, "script")) {
    const std::string script_path = child_path(path, "script");
    if (auto s = get_string(v, script_path)) {
      if (s->empty()) {
        error(script_path, "expected a non-empty string");
      } else {
        ep.script_name = std::move(*s);
        check_script_file(script_path, ep);
      }
    }
  }

  if (const cJSON* v = member(obj, "max_message_size")) {
    if (auto n = get_integer(v, child_path(path, "max_message_size"), 1,
                             static_cast<long long>(kMaxMessageSizeLimit))) {
      ep.max_message_size = static_cast<std::size_t>(*n);
    }
  }

  if (cJSON* v = member(obj, "options")) {
    const std::string options_path = child_path(path, "options");
    if (!cJSON_IsObject(v)) {
      error(options_path, "expected an object");
    } else {
      const std::size_t before = errors_.size();
      expand_tree(v, options_path);
      if (errors_.size() == before) {
        JsonText text(cJSON_PrintUnformatted(v));
        if (text) {
          ep.options_json = text.get();
        } else {
          error(options_path, "out of memory");
        }
      }
    }
  }
  if (const cJSON* v = member(obj, "upstream")) ep.upstream = read_upstream(v, child_path(path, "upstream"));
  return {std::move(ep), path_ok};
}

bool Loader::parse_ws_url(const std::string& url, Upstream& up, const std::string& path) {
  std::string_view rest = url;
  if (rest.rfind("wss://", 0) == 0) {
    up.tls = true;
    rest.remove_prefix(6);
  } else if (rest.rfind("ws://", 0) == 0) {
    up.tls = false;
    rest.remove_prefix(5);
  } else {
    error(path, "expected a ws:// or wss:// URL");
    return false;
  }
  const std::size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!target.empty() && target[0] == '?') target = "/" + target;
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    error(path, "expected a host in the URL (and no user info)");
    return false;
  }
  int port = up.tls ? 443 : 80;
  std::string_view host = authority;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error(path, "unterminated [IPv6] host in the URL");
      return false;
    }
    host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') {
      error(path, "unexpected characters after the [IPv6] host");
      return false;
    }
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    authority.remove_prefix(colon);
  } else {
    authority = {};
  }
  if (!authority.empty()) {  // ":port"
    const std::string digits(authority.substr(1));
    char* end = nullptr;
    const long value = std::strtol(digits.c_str(), &end, 10);
    if (digits.empty() || *end != '\0' || value < 1 || value > 65535) {
      error(path, "invalid port in the URL");
      return false;
    }
    port = static_cast<int>(value);
  }
  if (host.empty()) {
    error(path, "expected a host in the URL");
    return false;
  }
  up.host = std::string(host);
  up.port = port;
  up.path = target;
  return true;
}

std::optional<Upstream> Loader::read_upstream(const cJSON* obj, const std::string& path) {
  if (!cJSON_IsObject(obj)) {
    error(path, "expected an object");
    return std::nullopt;
  }
  const std::size_t before = errors_.size();
  Upstream up;
  check_keys(obj, path, {"url", "headers", "connect", "tls_insecure", "queue_limit", "on_close", "retries",
                         "backoff_ms", "backoff_max_ms"});
  const std::string url_path = child_path(path, "url");
  if (const cJSON* v = member(obj, "url")) {
    if (auto s = get_string(v, url_path)) {
      up.url = *s;
      parse_ws_url(*s, up, url_path);
    }
  } else {
    error(url_path, "required key is missing");
  }
  if (const cJSON* v = member(obj, "headers")) {
    const std::string headers_path = child_path(path, "headers");
    if (!cJSON_IsObject(v)) {
      error(headers_path, "expected an object of header names to string values");
    } else {
      for (const cJSON* h = v->child; h != nullptr; h = h->next) {
        const std::string name = h->string != nullptr ? h->string : "";
        const std::string header_path = child_path(headers_path, name);
        const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        });
        if (!token) {
          error(header_path, "not a valid header name");
          continue;
        }
        if (auto value = get_string(h, header_path)) {
          if (value->find_first_of("\r\n") != std::string::npos) {
            error(header_path, "header values must not contain line breaks");
            continue;
          }
          up.headers.emplace_back(name, std::move(*value));
        }
      }
    }
  }
  if (const cJSON* v = member(obj, "connect")) {
    const std::string connect_path = child_path(path, "connect");
    if (auto s = get_string(v, connect_path)) {
      if (*s == "open") {
        up.connect_on_open = true;
      } else if (*s == "lazy") {
        up.connect_on_open = false;
      } else {
        error(connect_path, "expected \"open\" or \"lazy\" (got " + quote(*s) + ")");
      }
    }
  }
  if (const cJSON* v = member(obj, "tls_insecure")) {
    if (!cJSON_IsBool(v)) {
      error(child_path(path, "tls_insecure"), "expected a boolean");
    } else {
      up.tls_insecure = cJSON_IsTrue(v);
    }
  }
  if (const cJSON* v = member(obj, "on_close")) {
    const std::string on_close_path = child_path(path, "on_close");
    if (auto s = get_string(v, on_close_path)) {
      if (*s == "close_client" || *s == "reconnect" || *s == "keep") {
        up.on_close = *s;
      } else {
        error(on_close_path, "expected \"close_client\", \"reconnect\" or \"keep\" (got " + quote(*s) + ")");
      }
    }
  }
  if (const cJSON* v = member(obj, "queue_limit")) {
    if (auto n = get_integer(v, child_path(path, "queue_limit"), 1, 100000)) up.queue_limit = static_cast<std::size_t>(*n);
  }
  if (const cJSON* v = member(obj, "retries")) {
    if (auto n = get_integer(v, child_path(path, "retries"), 0, 1000)) up.retries = static_cast<int>(*n);
  }
  if (const cJSON* v = member(obj, "backoff_ms")) {
    if (auto n = get_integer(v, child_path(path, "backoff_ms"), 10, 600000)) up.backoff_ms = static_cast<int>(*n);
  }
  if (const cJSON* v = member(obj, "backoff_max_ms")) {
    if (auto n = get_integer(v, child_path(path, "backoff_max_ms"), 10, 3600000)) up.backoff_max_ms = static_cast<int>(*n);
  }
  if (errors_.size() != before) return std::nullopt;
  return up;
}

void Loader::read_endpoints(const cJSON* item, Config& cfg) {
  const std::string path = "endpoints";
  if (item == nullptr) {
    error(path, "required key is missing");
    return;
  }
  if (!cJSON_IsArray(item) || item->child == nullptr) {
    error(path, "expected a non-empty array");
    return;
  }
  std::map<std::string, std::pair<std::string, std::string>> routes;  // shape -> (key path, path)
  std::size_t i = 0;
  for (cJSON* el = item->child; el != nullptr; el = el->next, ++i) {
    const std::string el_path = index_path(path, i);
    if (!cJSON_IsObject(el)) {
      error(el_path, "expected an object");
      continue;
    }
    auto [ep, path_ok] = read_endpoint(el, el_path);
    if (path_ok) {
      const std::string route_key_path = child_path(el_path, "path");
      auto [it, inserted] = routes.try_emplace(route_shape(ep.path), route_key_path, ep.path);
      if (!inserted) {
        error(route_key_path, "duplicate of " + it->second.first + " " + quote(it->second.second));
      }
    }
    cfg.endpoints.push_back(std::move(ep));
  }
}

}  // namespace wsrelay::config
