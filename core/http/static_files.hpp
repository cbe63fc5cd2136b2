// static_files: GET of a file under the configured `static` folder.
#pragma once

#include "http/request.hpp"

#include <string>

namespace wsrelay::http {

// Files under the configured static folder. Nothing outside it is reachable
// by the URL: ".." is refused and the normalised path must stay inside.
// Symlinks the operator put in the folder are followed, as nginx does.
// Fills r and returns true when path names a servable file (8 MiB at most).
bool serve_static(const std::string& root, const std::string& path, Response& r);

}  // namespace wsrelay::http
