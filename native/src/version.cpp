// Keeps the edge_core library non-empty before any kernel family is added.
#include "edge/version.hpp"

namespace edge {
const char* version() { return "0.1.0"; }
}  // namespace edge
