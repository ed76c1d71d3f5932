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
            throw std::invalid_argument(std::string("iou_matrix: ") + which + "[" + std::to_string(k / 4) +
                                        "] has a NaN or infinite coordinate");
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
            const std::string value = std::isnan(c) ? "NaN" : std::to_string(c);
            throw std::invalid_argument("linear_assignment: cost[" + std::to_string(k / cols) + ", " +
                                        std::to_string(k % cols) + "] is " + value +
                                        (limited ? "; expected finite or +inf"
                                                 : "; expected finite (max_cost is +inf)"));
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

namespace edge {
namespace {

// Heights below these are clamped: in the aspect ratio (no division by zero) and in the noise scale
// (the innovation covariance stays well conditioned). Same constants as edge_runtime/vision/kalman.py.
constexpr double kMinHeightPx = 1e-3;
constexpr double kMinNoiseHeightPx = 1.0;

void box_to_xyah(const float* box, double* z) {
    const double w = double(box[2]) - box[0];
    const double h = std::max(double(box[3]) - box[1], kMinHeightPx);
    z[0] = double(box[0]) + 0.5 * w;
    z[1] = double(box[1]) + 0.5 * h;
    z[2] = w / h;
    z[3] = h;
}

void state_to_box(const double* s, float* box) {
    const double h = s[3], w = s[2] * h;
    box[0] = static_cast<float>(s[0] - 0.5 * w);
    box[1] = static_cast<float>(s[1] - 0.5 * h);
    box[2] = static_cast<float>(s[0] + 0.5 * w);
    box[3] = static_cast<float>(s[1] + 0.5 * h);
}

// Solves S X = B for a 4x4 S and a 4x8 B by Gaussian elimination with partial pivoting (S is symmetric
// positive definite here; pivoting keeps it exact enough when it is nearly singular). B becomes X.
void solve4x8(double s[4][4], double b[4][8]) {
    for (int col = 0; col < 4; ++col) {
        int pivot = col;
        for (int r = col + 1; r < 4; ++r) {
            if (std::fabs(s[r][col]) > std::fabs(s[pivot][col])) pivot = r;
        }
        if (pivot != col) {
            for (int c = 0; c < 4; ++c) std::swap(s[col][c], s[pivot][c]);
            for (int c = 0; c < 8; ++c) std::swap(b[col][c], b[pivot][c]);
        }
        const double inv = 1.0 / s[col][col];
        for (int r = col + 1; r < 4; ++r) {
            const double f = s[r][col] * inv;
            if (f == 0.0) continue;
            for (int c = col; c < 4; ++c) s[r][c] -= f * s[col][c];
            for (int c = 0; c < 8; ++c) b[r][c] -= f * b[col][c];
        }
    }
    for (int col = 3; col >= 0; --col) {
        const double inv = 1.0 / s[col][col];
        for (int c = 0; c < 8; ++c) {
            double v = b[col][c];
            for (int k = col + 1; k < 4; ++k) v -= s[col][k] * b[k][c];
            b[col][c] = v * inv;
        }
    }
}

// Matches the tracks `rows` against the detections `cols` for one association stage; writes
// det_track[col] = row for every matched pair.
void widen(const float* box, float grow, float* out) {
    const float pw = grow * (box[2] - box[0]), ph = grow * (box[3] - box[1]);
    out[0] = box[0] - pw;
    out[1] = box[1] - ph;
    out[2] = box[2] + pw;
    out[3] = box[3] + ph;
}

// The first index in [0, count) at which value(index) is largest (0 when count is 0).
template <class Value>
std::size_t first_argmax(std::size_t count, const Value& value) {
    std::size_t best = 0;
    for (std::size_t k = 1; k < count; ++k) {
        if (value(k) > value(best)) best = k;
    }
    return best;
}

void match_stage(const float* track_boxes, const std::vector<std::size_t>& rows, const float* det_boxes,
                 const std::vector<std::size_t>& cols, const float* det_score, double max_cost,
                 const ByteTrackParams& params, std::int32_t* det_track, std::vector<float>& scratch,
                 std::vector<std::int32_t>& r2c, const std::uint8_t* forbid = nullptr, std::size_t n_all = 0) {
    if (rows.empty() || cols.empty()) return;
    const std::size_t nr = rows.size(), nc = cols.size();
    scratch.resize(4 * (nr + nc) + nr * nc);
    float* a = scratch.data();
    float* b = a + 4 * nr;
    float* cost = b + 4 * nc;
    for (std::size_t i = 0; i < nr; ++i) {
        widen(track_boxes + 4 * rows[i], params.track_grow ? params.track_grow[rows[i]] : 0.0f, a + 4 * i);
    }
    for (std::size_t j = 0; j < nc; ++j) widen(det_boxes + 4 * cols[j], params.det_grow, b + 4 * j);
    iou_matrix(a, nr, b, nc, cost);
    // Same float32 arithmetic as the reference: similarity = iou * score, cost = 1 - similarity; a
    // forbidden pair gets similarity 0 (cost 1, never below a stage's max_cost).
    for (std::size_t i = 0; i < nr; ++i) {
        const std::uint8_t* no = forbid ? forbid + rows[i] * n_all : nullptr;
        for (std::size_t j = 0; j < nc; ++j) {
            float sim = cost[i * nc + j];
            if (det_score) sim *= det_score[cols[j]];
            if (no && no[cols[j]]) sim = 0.0f;
            cost[i * nc + j] = 1.0f - sim;
        }
    }
    r2c.resize(nr);
    linear_assignment(cost, nr, nc, max_cost, r2c.data());
    for (std::size_t i = 0; i < nr; ++i) {
        if (r2c[i] >= 0) det_track[cols[static_cast<std::size_t>(r2c[i])]] = static_cast<std::int32_t>(rows[i]);
    }
}

}  // namespace

void kalman_initiate(const float* boxes, std::size_t k, KalmanNoise noise, double* mean, double* cov) {
    for (std::size_t i = 0; i < k; ++i) {
        double* x = mean + 8 * i;
        double* p = cov + 64 * i;
        box_to_xyah(boxes + 4 * i, x);
        for (int j = 4; j < 8; ++j) x[j] = 0.0;
        const double h = std::max(x[3], kMinNoiseHeightPx);
        const double sp = 2.0 * noise.std_position * h, sv = 10.0 * noise.std_velocity * h;
        const double var[8] = {sp * sp, sp * sp, 1e-4, sp * sp, sv * sv, sv * sv, 1e-10, sv * sv};
        std::fill(p, p + 64, 0.0);
        for (int j = 0; j < 8; ++j) p[j * 8 + j] = var[j];
    }
}

void kalman_predict(double* mean, double* cov, std::size_t t, const std::int64_t* miss, KalmanNoise noise,
                    float* boxes_out, double dt) {
    for (std::size_t i = 0; i < t; ++i) {
        double* x = mean + 8 * i;
        double* p = cov + 64 * i;
        const double h = std::max(x[3], kMinNoiseHeightPx);
        const double sp = noise.std_position * h, sv = noise.std_velocity * h;
        const double q[8] = {sp * sp, sp * sp, 1e-4, sp * sp, sv * sv, sv * sv, 1e-10, sv * sv};
        if (miss && miss[i] > 0) x[7] = 0.0;
        for (int k = 0; k < 4; ++k) x[k] += dt * x[k + 4];
        // F P F^T with F = [[I, dt I], [0, I]], by 4x4 blocks [[A, B], [C, D]] ->
        // [[A + dt (B + C) + dt^2 D, B + dt D], [C + dt D, D]].
        for (int r = 0; r < 4; ++r) {
            for (int c = 0; c < 4; ++c) {
                const double pa = p[r * 8 + c], pb = p[r * 8 + c + 4];
                const double pc = p[(r + 4) * 8 + c], pd = p[(r + 4) * 8 + c + 4];
                p[r * 8 + c] = pa + dt * (pb + pc) + dt * dt * pd;
                p[r * 8 + c + 4] = pb + dt * pd;
                p[(r + 4) * 8 + c] = pc + dt * pd;
            }
        }
        for (int k = 0; k < 8; ++k) p[k * 8 + k] += dt * q[k];
        if (boxes_out) state_to_box(x, boxes_out + 4 * i);
    }
}

void kalman_update(double* mean, double* cov, std::size_t t, const std::int64_t* rows, const float* boxes,
                   std::size_t k, KalmanNoise noise) {
    for (std::size_t m = 0; m < k; ++m) {
        if (rows[m] < 0 || static_cast<std::size_t>(rows[m]) >= t) {
            throw std::invalid_argument("kalman_update: rows[" + std::to_string(m) + "] = " + std::to_string(rows[m]) +
                                        " is outside [0, " + std::to_string(t) + ")");
        }
    }
    for (std::size_t m = 0; m < k; ++m) {
        double* x = mean + 8 * rows[m];
        double* p = cov + 64 * rows[m];
        double z[4];
        box_to_xyah(boxes + 4 * m, z);
        const double h = std::max(x[3], kMinNoiseHeightPx);
        const double sp = noise.std_position * h;
        const double r[4] = {sp * sp, sp * sp, 1e-2, sp * sp};
        double s[4][4], gain_t[4][8], ph[4][8];
        for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 4; ++j) s[i][j] = p[i * 8 + j];
            s[i][i] += r[i];
            for (int j = 0; j < 8; ++j) ph[i][j] = gain_t[i][j] = p[i * 8 + j];
        }
        solve4x8(s, gain_t);  // K^T = S^-1 H P
        double innovation[4];
        for (int i = 0; i < 4; ++i) innovation[i] = z[i] - x[i];
        for (int j = 0; j < 8; ++j) {
            double dx = 0.0;
            for (int i = 0; i < 4; ++i) dx += gain_t[i][j] * innovation[i];
            x[j] += dx;
        }
        // P -= K H P (= K S K^T).
        for (int j = 0; j < 8; ++j) {
            for (int c = 0; c < 8; ++c) {
                double d = 0.0;
                for (int i = 0; i < 4; ++i) d += gain_t[i][j] * ph[i][c];
                p[j * 8 + c] -= d;
            }
        }
    }
}

void associate_bytetrack(const float* track_boxes, const std::int64_t* track_id, const std::int64_t* miss,
                         std::size_t t, const float* det_boxes, const float* det_score, std::size_t n,
                         const ByteTrackParams& params, std::int32_t* det_track) {
    std::fill(det_track, det_track + n, -1);
    std::vector<std::size_t> pool, high, low, rows, cols;
    for (std::size_t j = 0; j < n; ++j) {
        if (det_score[j] >= params.high_score) {
            high.push_back(j);
        } else if (det_score[j] >= params.low_score) {
            low.push_back(j);
        }
    }
    for (std::size_t i = 0; i < t; ++i) {
        if (track_id[i] >= 0) pool.push_back(i);
    }
    std::vector<float> scratch;
    std::vector<std::int32_t> r2c;
    const float* fused = params.fuse_score ? det_score : nullptr;

    // 1) confirmed tracks (seen or lost) x high-score detections, less the pairs the fit and look rules refuse.
    std::vector<std::uint8_t> fit_forbid;
    const std::uint8_t* first_forbid = params.forbid;
    const auto refuse = [&](std::size_t i, std::size_t j) {
        if (fit_forbid.empty()) {
            fit_forbid.assign(t * n, 0);
            if (params.forbid) std::copy(params.forbid, params.forbid + t * n, fit_forbid.begin());
            first_forbid = fit_forbid.data();
        }
        fit_forbid[i * n + j] = 1;
    };
    const bool low_fit = params.low_fit_margin > 0.0 && !low.empty();
    const bool tentative_fit = params.tentative_fit_margin > 0.0 && pool.size() < t;
    const bool low_look = params.low_look_margin > 0.0 && params.look != nullptr && !low.empty();
    if ((low_fit || tentative_fit || low_look) && !high.empty() && !pool.empty()) {
        std::vector<float> iou(t * n);
        iou_matrix(track_boxes, t, det_boxes, n, iou.data());
        const auto at = [&](std::size_t i, std::size_t j) { return iou[i * n + j]; };
        // the low-score detection fitting track i best (the first of equals)
        const auto best_low = [&](std::size_t i) {
            return low[first_argmax(low.size(), [&](std::size_t k) { return at(i, low[k]); })];
        };
        // track k has a high-score detection fitting it better than detection j: it does not claim j
        const auto prefers_high = [&](std::size_t k, std::size_t j) {
            for (std::size_t h : high) {
                if (at(k, h) > at(k, j)) return true;
            }
            return false;
        };
        if (low_fit) {
            for (std::size_t i : pool) {
                const std::size_t best = best_low(i);
                if (!(at(i, best) > 0.0f)) continue;
                if (first_argmax(t, [&](std::size_t k) { return at(k, best); }) != i) continue;  // fits another better
                const double floor = static_cast<double>(at(i, best)) - params.low_fit_margin;
                for (std::size_t j : high) {
                    if (static_cast<double>(at(i, j)) < floor) refuse(i, j);
                }
            }
        }
        if (low_look) {
            const auto look = [&](std::size_t i, std::size_t j) { return params.look[i * n + j]; };
            for (std::size_t i : pool) {
                const std::size_t best = best_low(i);
                if (!(at(i, best) > 0.0f) || std::isnan(look(i, best))) continue;
                bool owner = true;  // no track fits it better, nor as well and looks more like it
                for (std::size_t k = 0; k < t && owner; ++k) {
                    if (k == i || prefers_high(k, best)) continue;
                    const float other = look(k, best);
                    owner = at(k, best) < at(i, best) ||
                            (at(k, best) == at(i, best) && (std::isnan(other) || other > look(i, best) ||
                                                            (other == look(i, best) && k > i)));
                }
                if (!owner) continue;
                const double floor = static_cast<double>(look(i, best)) + params.low_look_margin;
                for (std::size_t j : high) {
                    if (at(i, j) < at(i, best) && static_cast<double>(look(i, j)) >= floor) refuse(i, j);
                }
            }
        }
        if (tentative_fit) {
            for (std::size_t j : high) {
                std::size_t fit = t;
                for (std::size_t k = 0; k < t; ++k) {
                    if (track_id[k] < 0 && at(k, j) > 0.0f && (fit == t || at(k, j) > at(fit, j))) fit = k;
                }
                if (fit == t) continue;
                if (first_argmax(n, [&](std::size_t jj) { return at(fit, jj); }) != j) continue;  // not its best fit
                const double floor = static_cast<double>(at(fit, j)) - params.tentative_fit_margin;
                for (std::size_t i : pool) {
                    if (miss[i] == 0 && static_cast<double>(at(i, j)) < floor) refuse(i, j);
                }
            }
        }
    }
    match_stage(track_boxes, pool, det_boxes, high, fused, params.max_cost_high, params, det_track, scratch, r2c,
                first_forbid, n);
    // 2) confirmed tracks still unmatched (only those seen last frame unless revive_lost) x low-score ones.
    std::vector<char> taken(t, 0);
    for (std::size_t j : high) {
        if (det_track[j] >= 0) taken[static_cast<std::size_t>(det_track[j])] = 1;
    }
    for (std::size_t i : pool) {
        if (!taken[i] && (params.revive_lost || miss[i] == 0)) rows.push_back(i);
    }
    match_stage(track_boxes, rows, det_boxes, low, nullptr, params.max_cost_low, params, det_track, scratch, r2c,
                params.forbid, n);
    // 3) tentative tracks x high-score detections left over.
    rows.clear();
    for (std::size_t i = 0; i < t; ++i) {
        if (track_id[i] < 0) rows.push_back(i);
    }
    for (std::size_t j : high) {
        if (det_track[j] < 0) cols.push_back(j);
    }
    match_stage(track_boxes, rows, det_boxes, cols, fused, params.max_cost_tentative, params, det_track, scratch,
                r2c);
    // 4) with tentative_low: tentative tracks still unmatched x low-score detections left over (plain IoU).
    if (params.tentative_low) {
        std::vector<char> held(t, 0);
        for (std::size_t j = 0; j < n; ++j) {
            if (det_track[j] >= 0) held[static_cast<std::size_t>(det_track[j])] = 1;
        }
        std::vector<std::size_t> open_rows, open_cols;
        for (std::size_t i : rows) {
            if (!held[i]) open_rows.push_back(i);
        }
        for (std::size_t j : low) {
            if (det_track[j] < 0) open_cols.push_back(j);
        }
        match_stage(track_boxes, open_rows, det_boxes, open_cols, nullptr, params.max_cost_tentative, params,
                    det_track, scratch, r2c);
    }
    // 5) the jump gate: a pair whose centres are too far apart for the time that passed is undone (tried
    // inside the assignment instead, the gate made more tracks hop between neighbours on the by-eye
    // identity truth).
    if (params.track_jump) {
        for (std::size_t j = 0; j < n; ++j) {
            if (det_track[j] < 0) continue;
            const std::size_t i = static_cast<std::size_t>(det_track[j]);
            const double jump = params.track_jump[i];
            if (!(jump > 0.0)) continue;
            const float* t = track_boxes + 4 * i;
            const float* d = det_boxes + 4 * j;
            const double dx = 0.5 * (double(d[0]) + d[2]) - 0.5 * (double(t[0]) + t[2]);
            const double dy = 0.5 * (double(d[1]) + d[3]) - 0.5 * (double(t[1]) + t[3]);
            const double limit = jump * (double(d[3]) - d[1]);
            if (dx * dx + dy * dy > limit * limit) det_track[j] = -1;
        }
    }
    // 6) the growth gate on low-score matches (heights compared in float32, as the reference does).
    if (params.low_max_growth > 0.0f) {
        for (std::size_t j = 0; j < n; ++j) {
            if (det_track[j] < 0 || !(det_score[j] < params.high_score)) continue;
            const float* t = track_boxes + 4 * static_cast<std::size_t>(det_track[j]);
            const float* d = det_boxes + 4 * j;
            if (d[3] - d[1] > params.low_max_growth * std::max(t[3] - t[1], 0.0f)) det_track[j] = -1;
        }
    }
}

void position_gate(const double* mean, const double* cov, const std::int64_t* track_id, std::size_t t,
                   const float* det_boxes, std::size_t n, double std_position, double threshold,
                   std::uint8_t* forbid) {
    for (std::size_t i = 0; i < t; ++i) {
        if (track_id[i] < 0) continue;
        const double* x = mean + 8 * i;
        const double* p = cov + 64 * i;
        const double sp = std_position * std::max(x[3], kMinNoiseHeightPx);
        const double a = p[0] + sp * sp, b = p[1], c = p[8], d = p[9] + sp * sp;  // S, 2 x 2
        const double det = a * d - b * c;
        if (!(det > 0.0)) continue;  // a degenerate covariance gates nothing
        for (std::size_t j = 0; j < n; ++j) {
            const float* box = det_boxes + 4 * j;
            const double dx = 0.5 * (double(box[0]) + box[2]) - x[0];
            const double dy = 0.5 * (double(box[1]) + box[3]) - x[1];
            const double d2 = (d * dx * dx - (b + c) * dx * dy + a * dy * dy) / det;
            if (d2 > threshold) forbid[i * n + j] = 1;
        }
    }
}

double bytetrack_gates(const double* last_s, const std::int64_t* track_id, std::size_t t, double now, double fps,
                       double buffer_rel, double max_buffer_rel, double max_jump_rel, float* grow, float* jump) {
    for (std::size_t i = 0; i < t; ++i) {
        const double elapsed = std::max((now - last_s[i]) * fps, 1.0);
        grow[i] = static_cast<float>(std::min(buffer_rel * (elapsed - 1.0), max_buffer_rel));
        jump[i] = track_id[i] >= 0 ? static_cast<float>(max_jump_rel * elapsed) : 0.0f;
    }
    if (t == 0) return 0.0;
    std::vector<float> ordered(grow, grow + t);
    std::sort(ordered.begin(), ordered.end());
    return 0.5 * (static_cast<double>(ordered[(t - 1) / 2]) + static_cast<double>(ordered[t / 2]));
}

std::size_t bytetrack_commit(const std::int32_t* det_track, const float* det_boxes, const std::int32_t* det_class,
                             std::size_t n, const TrackBook& book, KalmanNoise noise, double now, double lost_s,
                             std::int64_t min_hits, std::int32_t* out_id, std::int32_t* out_class,
                             std::uint8_t* keep) {
    std::vector<std::int64_t> rows;
    std::vector<float> boxes;
    rows.reserve(n);
    boxes.reserve(4 * n);
    for (std::size_t j = 0; j < n; ++j) {
        if (det_track[j] < -1 || det_track[j] >= static_cast<std::int64_t>(book.t)) {
            throw std::invalid_argument("bytetrack_commit: det_track[" + std::to_string(j) + "] = " +
                                        std::to_string(det_track[j]) + " is outside [-1, " + std::to_string(book.t) +
                                        ")");
        }
        if (det_track[j] < 0) continue;
        rows.push_back(det_track[j]);
        boxes.insert(boxes.end(), det_boxes + 4 * j, det_boxes + 4 * j + 4);
    }
    kalman_update(book.mean, book.cov, book.t, rows.data(), boxes.data(), rows.size(), noise);

    std::vector<char> matched(book.t, 0);
    std::size_t confirmed = 0;
    for (std::size_t j = 0; j < n; ++j) {
        out_class[j] = det_class[j];
        out_id[j] = -1;
        if (det_track[j] < 0) continue;
        const auto i = static_cast<std::size_t>(det_track[j]);
        matched[i] = 1;
        book.hits[i] += 1;
        book.miss[i] = 0;
        book.last_s[i] = now;
        std::int32_t* v = book.votes + i * book.c;
        v[det_class[j]] += 1;
        const std::int32_t best = static_cast<std::int32_t>(std::max_element(v, v + book.c) - v);
        if (v[book.cls[i]] < v[best]) book.cls[i] = best;
        if (book.track_id[i] < 0 && book.hits[i] >= min_hits) {
            book.track_id[i] = book.uid[i];
            ++confirmed;
        }
        if (book.track_id[i] >= 0) {
            out_id[j] = static_cast<std::int32_t>(book.track_id[i]);
            out_class[j] = book.cls[i];
        } else {
            out_id[j] = static_cast<std::int32_t>(-2 - book.uid[i]);
        }
    }
    for (std::size_t i = 0; i < book.t; ++i) {
        keep[i] = 1;
        if (matched[i]) continue;
        book.miss[i] += 1;
        book.hits[i] = 0;
        keep[i] = book.track_id[i] >= 0 && now - book.last_s[i] <= lost_s + 1e-9;
    }
    return confirmed;
}

}  // namespace edge
