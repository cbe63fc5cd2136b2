#include "http/path_pattern.hpp"

namespace wsrelay::http {
namespace {

std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 1;  // paths start with '/'
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    parts.push_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

}  // namespace

PathPattern::PathPattern(std::string_view pattern) : text_(pattern) {
  for (std::string_view part : split(pattern)) {
    const bool placeholder = part.size() > 2 && part.front() == '{' && part.back() == '}';
    if (placeholder) {
      segments_.push_back({std::string(part.substr(1, part.size() - 2)), true});
      ++placeholders_;
    } else {
      segments_.push_back({std::string(part), false});
    }
  }
}

bool PathPattern::match(std::string_view path, Params& params) const {
  if (placeholders_ == 0) return path == text_;
  if (path.empty() || path.front() != '/') return false;
  const auto parts = split(path);
  if (parts.size() != segments_.size()) return false;
  Params found;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (segments_[i].placeholder) {
      if (parts[i].empty()) return false;
      found.emplace_back(segments_[i].text, std::string(parts[i]));
    } else if (parts[i] != segments_[i].text) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

}  // namespace wsrelay::http
