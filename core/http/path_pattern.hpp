// path_pattern: endpoint paths with "{name}" segments, e.g. /api/v1/ws/{user_id}.
// A placeholder matches exactly one non-empty segment and is captured by name.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsrelay::http {

class PathPattern {
 public:
  // The config has already validated the syntax; this only splits it.
  explicit PathPattern(std::string_view pattern);

  bool has_placeholders() const { return placeholders_ > 0; }
  const std::string& text() const { return text_; }

  using Params = std::vector<std::pair<std::string, std::string>>;
  // Matches a request path (without query string); fills params on success.
  bool match(std::string_view path, Params& params) const;

 private:
  struct Segment {
    std::string text;
    bool placeholder;
  };
  std::string text_;
  std::vector<Segment> segments_;
  int placeholders_ = 0;
};

}  // namespace wsrelay::http
