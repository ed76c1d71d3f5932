// Association kernels of the tracker: IoU matrix and rectangular linear assignment (see track.hpp).
#include "edge/track.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace edge {
namespace {

void check_finite_boxes(const float* boxes, std::size_t count, const char* which) {
    for (std::size_t k = 0; k < count * 4; ++k) {
        if (!std::isfinite(boxes[k])) {
            throw std::invalid_argument(std::string("iou_matrix: ") + which + "[" + std::to_string(k / 4) + "] has a NaN or infinite coordinate");
        }
    }
}

// Augmenting path search of Crouse's shortest augmenting path method ("On implementing 2D rectangular
// assignment algorithms", IEEE TAES 2016), the method scipy's linear_sum_assignment uses. Works on an
// (nr, nc) matrix with nr <= nc and every entry finite. Returns the sink column, or -1 if none is reachable.
std::ptrdiff_t augmenting_path(std::size_t nc, const double* cost, std::vector<double>& u,
                               std::vector<double>& v, std::vector<std::ptrdiff_t>& path,
                               const std::vector<std::ptrdiff_t>& row4col, std::vector<double>& shortest,
                               std::size_t cur_row, std::vector<char>& sr, std::vector<char>& sc,
                               std::vector<std::size_t>& remaining, double* min_val_out) {
    const double inf = std::numeric_limits<double>::infinity();
    double min_val = 0.0;
    // Columns are scanned in reverse order, like scipy, so that ties break the same way in most cases.
    std::size_t num_remaining = nc;
    for (std::size_t it = 0; it < nc; ++it) remaining[it] = nc - it - 1;
    std::fill(sr.begin(), sr.end(), 0);
    std::fill(sc.begin(), sc.end(), 0);
    std::fill(shortest.begin(), shortest.end(), inf);

    std::ptrdiff_t sink = -1;
    std::size_t i = cur_row;
    while (sink == -1) {
        std::ptrdiff_t index = -1;
        double lowest = inf;
        sr[i] = 1;
        const double* row = cost + i * nc;
        for (std::size_t it = 0; it < num_remaining; ++it) {
            const std::size_t j = remaining[it];
            const double r = min_val + row[j] - u[i] - v[j];
            if (r < shortest[j]) {
                path[j] = static_cast<std::ptrdiff_t>(i);
                shortest[j] = r;
            }
            // Prefer an unassigned column among equals: it ends the search early.
            if (shortest[j] < lowest || (shortest[j] == lowest && row4col[j] == -1)) {
                lowest = shortest[j];
                index = static_cast<std::ptrdiff_t>(it);
            }
        }
        min_val = lowest;
        if (index < 0 || !(min_val < inf)) return -1;
        const std::size_t j = remaining[static_cast<std::size_t>(index)];
        if (row4col[j] == -1) {
            sink = static_cast<std::ptrdiff_t>(j);
        } else {
            i = static_cast<std::size_t>(row4col[j]);
        }
        sc[j] = 1;
        remaining[static_cast<std::size_t>(index)] = remaining[--num_remaining];
    }
    *min_val_out = min_val;
    return sink;
}

// Solves the (nr, nc) problem with nr <= nc; writes col4row (nr,). Entries must be finite.
void solve_rectangular(const double* cost, std::size_t nr, std::size_t nc, std::vector<std::ptrdiff_t>& col4row) {
    std::vector<double> u(nr, 0.0), v(nc, 0.0), shortest(nc);
    std::vector<std::ptrdiff_t> path(nc, -1), row4col(nc, -1);
    std::vector<char> sr(nr), sc(nc);
    std::vector<std::size_t> remaining(nc);
    col4row.assign(nr, -1);

    for (std::size_t cur_row = 0; cur_row < nr; ++cur_row) {
        double min_val = 0.0;
        const std::ptrdiff_t sink =
            augmenting_path(nc, cost, u, v, path, row4col, shortest, cur_row, sr, sc, remaining, &min_val);
        if (sink < 0) {
            // Unreachable with finite entries; kept so a logic error can never loop or index out of range.
            throw std::runtime_error("linear_assignment: no augmenting path (internal error)");
        }
        u[cur_row] += min_val;
        for (std::size_t i = 0; i < nr; ++i) {
            if (sr[i] && i != cur_row) u[i] += min_val - shortest[static_cast<std::size_t>(col4row[i])];
        }
        for (std::size_t j = 0; j < nc; ++j) {
            if (sc[j]) v[j] -= min_val - shortest[j];
        }
        std::size_t j = static_cast<std::size_t>(sink);
        while (true) {
            const std::size_t i = static_cast<std::size_t>(path[j]);
            row4col[j] = static_cast<std::ptrdiff_t>(i);
            const std::ptrdiff_t previous = col4row[i];
            col4row[i] = static_cast<std::ptrdiff_t>(j);
            if (i == cur_row) break;
            j = static_cast<std::size_t>(previous);
        }
    }
}

}  // namespace

void iou_matrix(const float* a, std::size_t m, const float* b, std::size_t n, float* out) {
    check_finite_boxes(a, m, "a");
    check_finite_boxes(b, n, "b");
    // Areas once per box; double accumulation keeps results equal to the float64 NumPy reference.
    std::vector<double> area_b(n);
    for (std::size_t j = 0; j < n; ++j) {
        const float* q = b + 4 * j;
        area_b[j] = std::max(0.0, double(q[2]) - q[0]) * std::max(0.0, double(q[3]) - q[1]);
    }
    for (std::size_t i = 0; i < m; ++i) {
        const float* p = a + 4 * i;
        const double area_a = std::max(0.0, double(p[2]) - p[0]) * std::max(0.0, double(p[3]) - p[1]);
        float* row = out + i * n;
        for (std::size_t j = 0; j < n; ++j) {
            const float* q = b + 4 * j;
            const double iw = std::min(double(p[2]), double(q[2])) - std::max(double(p[0]), double(q[0]));
            const double ih = std::min(double(p[3]), double(q[3])) - std::max(double(p[1]), double(q[1]));
            const double inter = std::max(0.0, iw) * std::max(0.0, ih);
            const double uni = area_a + area_b[j] - inter;
            row[j] = uni > 0.0 ? static_cast<float>(inter / uni) : 0.0f;
        }
    }
}

void linear_assignment(const float* cost, std::size_t rows, std::size_t cols, double max_cost,
                       std::int32_t* row_to_col) {
    if (std::isnan(max_cost)) throw std::invalid_argument("linear_assignment: max_cost is NaN");
    const bool limited = max_cost < std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < rows * cols; ++k) {
        const float c = cost[k];
        if (std::isnan(c) || c == -std::numeric_limits<float>::infinity() || (!limited && std::isinf(c))) {
            throw std::invalid_argument("linear_assignment: cost[" + std::to_string(k / cols) + ", " +
                                        std::to_string(k % cols) + "] is " + (std::isnan(c) ? "NaN" : std::to_string(c)) +
                                        (limited ? "; expected finite or +inf" : "; expected finite (max_cost is +inf)"));
        }
    }
    std::fill(row_to_col, row_to_col + rows, -1);
    if (rows == 0 || cols == 0) return;

    // With a limit, pair (i, j) costs min(cost - max_cost, 0): a pair at or beyond the limit is worth
    // nothing, so an optimal full assignment restricted to pairs below the limit is an optimal partial one.
    const bool transpose = rows > cols;
    const std::size_t nr = transpose ? cols : rows, nc = transpose ? rows : cols;
    std::vector<double> work(nr * nc);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            const double c = cost[i * cols + j];
            const double w = limited ? (c < max_cost ? c - max_cost : 0.0) : c;
            work[transpose ? j * nc + i : i * nc + j] = w;
        }
    }
    std::vector<std::ptrdiff_t> col4row;
    solve_rectangular(work.data(), nr, nc, col4row);
    for (std::size_t r = 0; r < nr; ++r) {
        const std::size_t i = transpose ? static_cast<std::size_t>(col4row[r]) : r;
        const std::size_t j = transpose ? r : static_cast<std::size_t>(col4row[r]);
        if (limited && !(double(cost[i * cols + j]) < max_cost)) continue;
        row_to_col[i] = static_cast<std::int32_t>(j);
    }
}

}  // namespace edge
