#pragma once

namespace edge {
// Version string of the native core; matches edge_runtime.__version__.
const char* version();
}  // namespace edge
