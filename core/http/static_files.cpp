#include "http/static_files.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

namespace wsrelay::http {

namespace {

const char* content_type_for(const std::string& path) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"}, {".png", "image/png"}, {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"}, {".md", "text/markdown; charset=utf-8"}};
  for (const auto& [ext, type] : kTypes) {
    const std::string_view e(ext);
    if (path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0) return type;
  }
  return "application/octet-stream";
}

}  // namespace

bool serve_static(const std::string& root, const std::string& path, Response& r) {
  if (root.empty() || path.empty() || path[0] != '/') return false;
  if (path.find("..") != std::string::npos || path.find('\0') != std::string::npos) return false;
  namespace fs = std::filesystem;
  std::string relative = path == "/" ? "/index.html" : path;
  if (relative.back() == '/') relative += "index.html";
  std::error_code ec;
  const fs::path file = fs::path(root + relative).lexically_normal();
  if (file.string().rfind(root + "/", 0) != 0 || !fs::is_regular_file(file, ec)) return false;
  const auto size = fs::file_size(file, ec);
  if (ec || size > (8u << 20)) return false;
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  r.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  r.status = 200;
  r.content_type = content_type_for(file.string());
  return true;
}

}  // namespace wsrelay::http
