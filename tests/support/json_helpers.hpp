// Small conveniences for tests that inspect JSON messages and write config
// files. Built on cJSON, the parser the server itself links, so the tests need
// no extra dependency; every accessor is null-safe so a missing field makes an
// assertion fail instead of crashing the test runner.
#pragma once

#include <cjson/cJSON.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace wsrelay::test {

class Json {
public:
  Json() = default;  // a null (not ok()) value
  // Parses text; on a syntax error the result is simply not ok().
  static Json parse(std::string_view text);

  bool ok() const { return node_ != nullptr; }
  explicit operator bool() const { return ok(); }

  // Object members. Keys are case-sensitive. Missing keys and wrong types give
  // "", NaN (so any numeric comparison fails) and false respectively.
  bool has(const char* key) const;
  std::string str(const char* key) const;
  double num(const char* key) const;
  bool boolean(const char* key) const;  // true only for a JSON true
  // A view of a member (not ok() if absent). Views share ownership of the
  // parsed document, so they stay valid after the parent Json is gone.
  Json get(const char* key) const;

  // Arrays (size() is also the member count of an object; 0 for scalars).
  std::size_t size() const;
  Json at(std::size_t index) const;

  // The value itself, for array elements and other views.
  bool is_null() const;  // JSON null (a not-ok() Json is not JSON null)
  bool is_string() const;
  bool is_number() const;
  bool is_bool() const;
  bool is_array() const;
  bool is_object() const;
  std::string as_string() const;  // "" unless a string
  double as_number() const;       // NaN unless a number

  std::string print() const;  // unformatted; "" if not ok()
  const cJSON* raw() const { return node_; }

private:
  Json(std::shared_ptr<cJSON> root, const cJSON* node) : root_(std::move(root)), node_(node) {}
  const cJSON* member(const char* key) const;

  std::shared_ptr<cJSON> root_;  // owns the whole parsed document
  const cJSON* node_ = nullptr;  // this value within it
};

// A fresh directory under /tmp for config files, scripts and sockets,
// removed recursively on destruction.
class TempDir {
public:
  TempDir();  // throws std::runtime_error if mkdtemp fails
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes content to path()/name (creating subdirectories named in name) and
  // returns the full path. Throws std::runtime_error on failure.
  std::string write(const std::string& name, std::string_view content) const;

private:
  std::string path_;
};

}  // namespace wsrelay::test
