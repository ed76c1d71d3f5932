// Shared helper threads for the kernels that split their work (the letterbox's rows).
//
// Starting a thread costs tens of microseconds, about as much as a frame's letterbox saves by running on two
// cores, so the helpers are started once and sleep between calls. A call hands out its tasks from a shared
// counter: the calling thread starts at once and a helper takes whatever is left when it wakes, so a late
// helper never delays the call by more than the task it is running.
#pragma once

#include <functional>

namespace edge {

// Runs task(k, slot) for every k in [0, n_tasks) on the calling thread and up to threads - 1 helpers, and
// returns when all have finished. slot says which thread runs the task: 0 the caller, 1 .. threads - 1 a
// helper (for per-thread scratch); a slot runs its tasks one at a time. Tasks must not throw. With
// threads <= 1, n_tasks <= 1, or while another call is using the helpers (a second Python thread, or a call
// from inside a task), every task runs on the calling thread, in order. Safe after fork: a child process
// starts its own helpers. Where no more threads can be started, the helpers already running (or the caller
// alone) do the work.
void parallel_tasks(int n_tasks, int threads, const std::function<void(int task, int slot)>& task);

// Most helpers ever started (threads beyond this + 1 are not used).
constexpr int kMaxHelpers = 255;

}  // namespace edge
