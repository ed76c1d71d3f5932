// Persistent helper threads: see edge/workers.hpp.
//
// One pool per process, never freed (helpers are detached and sleep for the life of the process, so nothing
// depends on the order of static destructors at exit). A call publishes its job under the pool's lock and
// wakes the helpers; each helper that wakes while the job is open joins it (takes a slot) and claims tasks
// until none are left. The caller claims tasks too, then closes the job and waits only for the helpers that
// joined; a helper that wakes after the close goes back to sleep without touching the job, which lives on
// the caller's stack.
#include "edge/workers.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <system_error>
#include <thread>

namespace edge {
namespace {

// A condition variable on the POSIX one under std::mutex. libstdc++ exports std::condition_variable::wait under
// GLIBCXX_3.4.30 since GCC 12, newer than a manylinux_2_34 wheel may require; pthread_cond_* are in every glibc.
class CondVar {
public:
    CondVar() { pthread_cond_init(&cond_, nullptr); }
    ~CondVar() { pthread_cond_destroy(&cond_); }
    CondVar(const CondVar&) = delete;
    CondVar& operator=(const CondVar&) = delete;

    template <class Pred>
    void wait(std::unique_lock<std::mutex>& lk, Pred ready) {
        while (!ready()) pthread_cond_wait(&cond_, lk.mutex()->native_handle());
    }
    void notify_all() { pthread_cond_broadcast(&cond_); }

private:
    pthread_cond_t cond_;
};

struct Job {
    const std::function<void(int, int)>* task = nullptr;
    int n_tasks = 0;
    std::atomic<int> next{0};
};

class Pool {
public:
    explicit Pool(pid_t pid) : pid_(pid) {}

    pid_t pid() const { return pid_; }

    void run(int n_tasks, int helpers, const std::function<void(int, int)>& task) {
        std::unique_lock<std::mutex> use(use_, std::try_to_lock);
        if (!use.owns_lock()) {  // busy (another caller, or a task calling back in): run here
            for (int k = 0; k < n_tasks; ++k) task(k, 0);
            return;
        }
        helpers = std::min(helpers, kMaxHelpers);
        Job job;
        job.task = &task;
        job.n_tasks = n_tasks;
        {
            std::lock_guard<std::mutex> lk(m_);
            while (started_ < helpers) {
                try {
                    std::thread(&Pool::helper_loop, this).detach();
                } catch (const std::system_error&) {
                    break;  // no more threads to be had (a process limit): the helpers there are share the work
                }
                ++started_;
            }
            job_ = &job;
            wanted_ = std::min(helpers, started_);
            joined_ = 0;
            ++generation_;
        }
        work_.notify_all();
        claim(job, 0);
        std::unique_lock<std::mutex> lk(m_);
        job_ = nullptr;  // closed: helpers waking from now on leave it alone
        done_.wait(lk, [&] { return active_ == 0; });
    }

private:
    static void claim(Job& job, int slot) {
        for (int k = job.next.fetch_add(1, std::memory_order_relaxed); k < job.n_tasks;
             k = job.next.fetch_add(1, std::memory_order_relaxed))
            (*job.task)(k, slot);
    }

    void helper_loop() {
        unsigned long seen = 0;
        std::unique_lock<std::mutex> lk(m_);
        for (;;) {
            work_.wait(lk, [&] { return generation_ != seen; });
            seen = generation_;
            if (job_ == nullptr || joined_ >= wanted_) continue;
            Job* job = job_;
            const int slot = ++joined_;
            ++active_;
            lk.unlock();
            claim(*job, slot);
            lk.lock();
            if (--active_ == 0) done_.notify_all();
        }
    }

    const pid_t pid_;
    std::mutex use_;  // one call at a time uses the helpers
    std::mutex m_;    // guards everything below
    CondVar work_, done_;
    Job* job_ = nullptr;
    unsigned long generation_ = 0;
    int started_ = 0, wanted_ = 0, joined_ = 0, active_ = 0;
};

std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_mutex;

Pool& pool() {
    const pid_t pid = getpid();
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (p && p->pid() == pid) return *p;
    std::lock_guard<std::mutex> lk(g_pool_mutex);
    p = g_pool.load(std::memory_order_relaxed);
    if (!p || p->pid() != pid) {
        // A forked child has none of its parent's helpers: start afresh (the parent's pool object is left as
        // it is, since its locks may have been held at the fork).
        p = new Pool(pid);
        g_pool.store(p, std::memory_order_release);
    }
    return *p;
}

}  // namespace

void parallel_tasks(int n_tasks, int threads, const std::function<void(int, int)>& task) {
    if (n_tasks <= 0) return;
    if (threads <= 1 || n_tasks == 1) {
        for (int k = 0; k < n_tasks; ++k) task(k, 0);
        return;
    }
    pool().run(n_tasks, std::min(threads - 1, n_tasks - 1), task);
}

}  // namespace edge
