#include "util/memory.hpp"

#include <malloc.h>

namespace wsrelay::util {

void trim_heap() { malloc_trim(0); }

}  // namespace wsrelay::util
