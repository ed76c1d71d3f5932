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

// Thresholds of the ByteTrack associations. A pair matches only if its cost 1 - IoU (1 - IoU * score
// when fuse_score) is below the stage's max_cost.
struct ByteTrackParams {
    float high_score = 0.5f;         // detections >= this: stages 1 and 3
    float low_score = 0.1f;          // detections in [low_score, high_score): stage 2
    double max_cost_high = 0.8;      // stage 1: confirmed tracks x high-score detections
    double max_cost_low = 0.8;       // stage 2: unmatched confirmed tracks x low-score detections
    double max_cost_tentative = 0.7; // stage 3: tentative tracks x high-score detections left over
    bool fuse_score = true;          // weight IoU by detection score in stages 1 and 3
    bool revive_lost = true;         // stage 2 also takes tracks lost before the last frame (else: seen only)
    bool tentative_low = false;      // stage 4: tentative tracks still unmatched x low-score detections left over
    // Optional, per track (t,) or null: widen the track's box on every side by track_grow[i] times its
    // width / height for the IoU (detections by det_grow); after the stages, undo a match whose
    // detection centre is more than track_jump[i] times the detection's height from the track box's
    // centre (<= 0: no gate); such a detection is left unmatched (-1).
    const float* track_grow = nullptr;
    float det_grow = 0.0f;
    const float* track_jump = nullptr;
    // Optional (t, n) row-major or null: a confirmed track i and detection j with forbid[i * n + j] != 0
    // are never matched in stages 1 and 2 (e.g. their appearance differs too much).
    const std::uint8_t* forbid = nullptr;
    // > 0: last, a low-score detection (score < high_score) more than low_max_growth times as tall as its
    // matched track's predicted box is left unmatched (a merged box of two people, or a person and what
    // they pass, does not extend one of them). <= 0: off.
    float low_max_growth = 0.0f;
    // > 0: stage 1 does not match a confirmed track to a high-score detection whose IoU with it is more than
    // low_fit_margin below that of the low-score detection fitting it best (first of equals), unless another
    // track (first of equals, tentative ones included) fits that low-score detection better. Plain IoU.
    double low_fit_margin = 0.0;
    // > 0: stage 1 does not match a confirmed track seen last frame (miss 0) to a high-score detection whose IoU
    // with it is more than tentative_fit_margin below that of the tentative track fitting the detection best
    // (first of equals), where that detection is also the tentative track's best fit (first of equals). Plain IoU.
    double tentative_fit_margin = 0.0;
    // Optional (t, n) row-major or null: the appearance distance of track i and detection j (NaN where
    // either has none), for low_look_margin.
    const float* look = nullptr;
    // > 0 (with look): stage 1 does not match a confirmed track to a high-score detection that fits it less
    // well in IoU than the low-score detection fitting it best (first of equals), where that low-score detection
    // looks more like the track by at least low_look_margin in appearance distance and no other track fits it
    // better (on equal IoU, the track it looks most like owns it; then the first). Plain IoU.
    double low_look_margin = 0.0;
};

// The associations of one ByteTrack frame. Tracks: predicted boxes (t, 4), track_id (< 0 =
// tentative), miss (consecutive missed frames before this one; 0 = seen last frame). Detections: boxes
// (n, 4), score (n,). Writes det_track (n,): the matched track's index, or -1. Boxes must be finite.
// Stage 2 takes the confirmed tracks left unmatched by stage 1: all of them with revive_lost, else only
// those seen last frame (the original ByteTrack). With tentative_low, a fourth stage matches the tentative
// tracks stage 3 left unmatched to the low-score detections stage 2 left over (plain IoU, max_cost_tentative),
// so a track started on one confident box survives the partly hidden frames that follow it.
void associate_bytetrack(const float* track_boxes, const std::int64_t* track_id, const std::int64_t* miss,
                         std::size_t t, const float* det_boxes, const float* det_score, std::size_t n,
                         const ByteTrackParams& params, std::int32_t* det_track);

// The association gates of one frame from the time each of t tracks was last matched (last_s, seconds) to
// now, in nominal frames elapsed = max((now - last_s) * fps, 1): grow[i] = min(buffer_rel * (elapsed - 1),
// max_buffer_rel) and jump[i] = max_jump_rel * elapsed for a confirmed track (track_id >= 0), 0 for a
// tentative one; both rounded to float32. Returns the detections' widening: the median of grow (the mean of
// the two middle values for even t; 0 for t = 0).
double bytetrack_gates(const double* last_s, const std::int64_t* track_id, std::size_t t, double now, double fps,
                       double buffer_rel, double max_buffer_rel, double max_jump_rel, float* grow, float* jump);

// The motion gate: marks forbid[i * n + j] = 1 (leaving other entries as they are) for every confirmed
// track i (track_id >= 0) and detection j whose box centre is further than threshold from the track's
// predicted centre in squared Mahalanobis distance: d^T S^-1 d with d the centre offset and S the Kalman
// covariance of the centre plus the measurement noise (std_position * h per axis, h the track's box height),
// as the update would use. A threshold is a chi-square quantile of 2 degrees of freedom (5.99 = 95 %).
void position_gate(const double* mean, const double* cov, const std::int64_t* track_id, std::size_t t,
                   const float* det_boxes, std::size_t n, double std_position, double threshold,
                   std::uint8_t* forbid);

// The per-track arrays of the tracker (t tracks, c classes), updated in place by bytetrack_commit.
struct TrackBook {
    double* mean;               // (t, 8) Kalman state
    double* cov;                // (t, 8, 8)
    std::int64_t* track_id;     // (t,) the id once confirmed, -1 while tentative
    const std::int64_t* uid;    // (t,) the id allocated when the track started
    std::int64_t* hits;         // (t,) consecutive matched frames
    std::int64_t* miss;         // (t,) consecutive missed frames
    double* last_s;             // (t,) time of the last match
    std::int32_t* cls;          // (t,) majority class
    std::int32_t* votes;        // (t, c) matched detections per class
    std::size_t t = 0, c = 0;
};

// What one ByteTrack frame does with its association det_track (n,) (the matched track's index or -1;
// each track at most once), for detections det_boxes (n, 4) float32 xyxy of classes det_class (n,) in [0, c):
// - matched tracks: Kalman update with their box (noise.std_position), hits + 1, miss = 0, last_s = now,
//   a vote for the detection's class; the class becomes the most voted one (the current class stays on a
//   tie; otherwise the first of the most voted); a tentative track with hits >= min_hits is confirmed
//   (track_id = uid);
// - unmatched tracks: miss + 1, hits = 0;
// - keep[i] = 0 for a track to drop: a tentative one left unmatched, or one unmatched for more than lost_s
//   (+ 1e-9) seconds; else 1;
// - per detection: out_id = the track's id (-2 - uid while tentative; -1 unmatched) and out_class = the
//   track's class where matched to a confirmed track, else det_class.
// Returns how many tracks were confirmed. Throws std::invalid_argument on a det_track entry outside
// [-1, t) (nothing is written then).
std::size_t bytetrack_commit(const std::int32_t* det_track, const float* det_boxes, const std::int32_t* det_class,
                             std::size_t n, const TrackBook& book, KalmanNoise noise, double now, double lost_s,
                             std::int64_t min_hits, std::int32_t* out_id, std::int32_t* out_class,
                             std::uint8_t* keep);

}  // namespace edge
