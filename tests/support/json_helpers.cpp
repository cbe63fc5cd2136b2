#include "support/json_helpers.hpp"

#include <stdlib.h>  // mkdtemp

#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace wsrelay::test {

Json Json::parse(std::string_view text) {
  cJSON* root = cJSON_ParseWithLength(text.data(), text.size());
  if (root == nullptr) return {};
  std::shared_ptr<cJSON> owner(root, cJSON_Delete);
  return Json(owner, root);
}

const cJSON* Json::member(const char* key) const {
  if (node_ == nullptr || key == nullptr || !cJSON_IsObject(node_)) return nullptr;
  return cJSON_GetObjectItemCaseSensitive(node_, key);
}

bool Json::has(const char* key) const { return member(key) != nullptr; }

std::string Json::str(const char* key) const { return get(key).as_string(); }

double Json::num(const char* key) const { return get(key).as_number(); }

bool Json::boolean(const char* key) const { return cJSON_IsTrue(member(key)) != 0; }

Json Json::get(const char* key) const {
  const cJSON* m = member(key);
  return m ? Json(root_, m) : Json();
}

std::size_t Json::size() const {
  if (node_ == nullptr || !(cJSON_IsArray(node_) || cJSON_IsObject(node_))) return 0;
  return static_cast<std::size_t>(cJSON_GetArraySize(node_));
}

Json Json::at(std::size_t index) const {
  if (index >= size()) return {};
  const cJSON* item = cJSON_GetArrayItem(node_, static_cast<int>(index));
  return item ? Json(root_, item) : Json();
}

bool Json::is_null() const { return cJSON_IsNull(node_) != 0; }
bool Json::is_string() const { return cJSON_IsString(node_) != 0; }
bool Json::is_number() const { return cJSON_IsNumber(node_) != 0; }
bool Json::is_bool() const { return cJSON_IsBool(node_) != 0; }
bool Json::is_array() const { return cJSON_IsArray(node_) != 0; }
bool Json::is_object() const { return cJSON_IsObject(node_) != 0; }

std::string Json::as_string() const {
  return is_string() && node_->valuestring != nullptr ? std::string(node_->valuestring) : std::string();
}

double Json::as_number() const {
  return is_number() ? node_->valuedouble : std::numeric_limits<double>::quiet_NaN();
}

std::string Json::print() const {
  if (node_ == nullptr) return {};
  char* text = cJSON_PrintUnformatted(node_);
  if (text == nullptr) return {};
  std::string out(text);
  cJSON_free(text);
  return out;
}

TempDir::TempDir() {
  std::string tmpl = "/tmp/wsrelay-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;  // never throw from a destructor; a leftover dir in /tmp is harmless
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, std::string_view content) const {
  const std::filesystem::path full = std::filesystem::path(path_) / name;
  std::error_code ec;
  std::filesystem::create_directories(full.parent_path(), ec);
  std::ofstream out(full, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + full.string());
  return full.string();
}

}  // namespace wsrelay::test
