#pragma once
// Association kernels of the multi-object tracker: box IoU and rectangular linear assignment.
// Plain C++17 over pointers and sizes; the NumPy references are edge_runtime/reference.py
// (iou_matrix, linear_assignment) and the assignment oracle in the tests is scipy's linear_sum_assignment.
//
// Shape legend: M rows (tracks), N columns (detections); boxes are row-major (count, 4) float32
// x1, y1, x2, y2; matrices are row-major (M, N).
#include <cstddef>
#include <cstdint>

namespace edge {

// IoU of every box in `a` (m, 4) against every box in `b` (n, 4), written to out (m, n).
// A box with x2 < x1 or y2 < y1 has zero area; a pair whose union is zero has IoU 0.
// Throws std::invalid_argument if any coordinate is NaN or infinite (nothing is written then).
void iou_matrix(const float* a, std::size_t m, const float* b, std::size_t n, float* out);

// Optimal rectangular assignment of rows to columns for the (rows, cols) cost matrix; writes
// row_to_col (rows,) with the matched column of each row or -1.
//
// max_cost = +inf: the classic problem (scipy.optimize.linear_sum_assignment): min(rows, cols) pairs of
//   minimum total cost. Every entry must be finite.
// max_cost finite: a pair (i, j) may be matched only if cost[i, j] < max_cost, and the matching
//   maximises the total gain sum(max_cost - cost[i, j]) over matched pairs, so a row stays unmatched
//   rather than take a pair at or beyond the limit (the `cost_limit` semantics of lapjv used by
//   ByteTrack). Entries may be +inf (never matched).
// Throws std::invalid_argument on NaN or -inf entries, on +inf entries when max_cost is +inf, or on a
// NaN max_cost. Solved by the shortest augmenting path method (Crouse 2016, as in scipy), O(r^2 c)
// with r = min(rows, cols).
void linear_assignment(const float* cost, std::size_t rows, std::size_t cols, double max_cost,
                       std::int32_t* row_to_col);

}  // namespace edge

namespace edge {

// Constant-velocity Kalman filter on boxes, batched over T tracks (the ByteTrack / DeepSORT model).
// State (T, 8) float64 cx, cy, a = w/h, h, and their velocities per frame; covariance (T, 8, 8) float64.
// Noise scales with the box height: std_position * h and std_velocity * h (ByteTrack: 1/20, 1/160).
// Reference: edge_runtime/vision/kalman.py (KalmanXYAH), exposed as reference.kalman_predict/update.
struct KalmanNoise {
    double std_position = 1.0 / 20.0;
    double std_velocity = 1.0 / 160.0;
};

// New tracks from first boxes (k, 4) float32 xyxy: writes mean (k, 8) with zero velocity and the initial
// diagonal covariance (k, 8, 8).
void kalman_initiate(const float* boxes, std::size_t k, KalmanNoise noise, double* mean, double* cov);

// dt frames ahead (any dt >= 0; 1 = one frame of the nominal rate), in place, for all T tracks:
// x' = F x with F = [[I, dt I], [0, I]], P' = F P F^T + dt Q. Tracks with miss[i] > 0 (lost) first get
// their height velocity zeroed, as ByteTrack does; miss may be null. Writes the predicted boxes (T, 4)
// float32 xyxy.
void kalman_predict(double* mean, double* cov, std::size_t t, const std::int64_t* miss, KalmanNoise noise,
                    float* boxes_out, double dt = 1.0);

// Corrects the k tracks rows[0..k) (each < t, no repeats) with measured boxes (k, 4) float32 xyxy, in place.
// Throws std::invalid_argument on a row out of range (nothing is written then).
void kalman_update(double* mean, double* cov, std::size_t t, const std::int64_t* rows, const float* boxes,
                   std::size_t k, KalmanNoise noise);

// Thresholds of the three ByteTrack associations. A pair matches only if its cost 1 - IoU (1 - IoU * score
// when fuse_score) is below the stage's max_cost.
struct ByteTrackParams {
    float high_score = 0.5f;         // detections >= this: stages 1 and 3
    float low_score = 0.1f;          // detections in [low_score, high_score): stage 2
    double max_cost_high = 0.8;      // stage 1: confirmed tracks x high-score detections
    double max_cost_low = 0.8;       // stage 2: unmatched confirmed tracks x low-score detections
    double max_cost_tentative = 0.7; // stage 3: tentative tracks x high-score detections left over
    bool fuse_score = true;          // weight IoU by detection score in stages 1 and 3
    bool revive_lost = true;         // stage 2 also takes tracks lost before the last frame (else: seen only)
    // Optional, per track (t,) or null: widen the track's box on every side by track_grow[i] times its
    // width / height for the IoU (detections by det_grow); after the three stages, undo a match whose
    // detection centre is more than track_jump[i] times the detection's height from the track box's
    // centre (<= 0: no gate); such a detection is left unmatched (-1).
    const float* track_grow = nullptr;
    float det_grow = 0.0f;
    const float* track_jump = nullptr;
    // Optional (t, n) row-major or null: a confirmed track i and detection j with forbid[i * n + j] != 0
    // are never matched in stages 1 and 2 (e.g. their appearance differs too much).
    const std::uint8_t* forbid = nullptr;
};

// The three associations of one ByteTrack frame. Tracks: predicted boxes (t, 4), track_id (< 0 =
// tentative), miss (consecutive missed frames before this one; 0 = seen last frame). Detections: boxes
// (n, 4), score (n,). Writes det_track (n,): the matched track's index, or -1. Boxes must be finite.
// Stage 2 takes the confirmed tracks left unmatched by stage 1: all of them with revive_lost, else only
// those seen last frame (the original ByteTrack).
void associate_bytetrack(const float* track_boxes, const std::int64_t* track_id, const std::int64_t* miss,
                         std::size_t t, const float* det_boxes, const float* det_score, std::size_t n,
                         const ByteTrackParams& params, std::int32_t* det_track);

}  // namespace edge
