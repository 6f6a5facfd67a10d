// netprobe::util::Scheduler - slow work on its own cadence, on one background thread:
// sock_diag reconciliation, cgroup walks, network-namespace listings, kernel symbol
// resolution. Nothing of that kind runs inside a read on the collector thread or on
// an HTTP thread; readers use what these tasks last produced.
//
//   util::Scheduler s;
//   auto id = s.every("cgroup walk", std::chrono::seconds(30), [&] { index.refresh(); });
//   s.start();
//   s.wake(id);   // run it soon (e.g. after a lookup miss), at most once per min_gap
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace netprobe::util {

class Scheduler {
public:
    using TaskId = std::size_t;
    using Duration = std::chrono::steady_clock::duration;

    struct TaskStats {
        std::string name;
        std::uint64_t runs = 0;
        double last_duration_seconds = 0;
        double max_duration_seconds = 0;
    };

    Scheduler() = default;
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Adds a task run every `period` (the first run at once when the thread starts).
    // wake() runs it earlier, but never sooner than min_gap after its last run.
    // Tasks may be added before or after start(); they never run concurrently.
    TaskId every(std::string name, Duration period, std::function<void()> fn, Duration min_gap = std::chrono::seconds(1));
    void wake(TaskId id);
    // The task never runs again; waits for a run in progress to end (call it from the
    // task's owner before the state the task uses goes away, not from a task).
    void cancel(TaskId id);
    void start();
    void stop();  // waits for a running task to finish
    [[nodiscard]] std::vector<TaskStats> stats() const;

private:
    struct Task {
        TaskStats stats;
        Duration period{}, min_gap{};
        std::function<void()> fn;
        std::chrono::steady_clock::time_point next{}, last_run{};
        bool cancelled = false;
    };
    static constexpr TaskId kNone = static_cast<TaskId>(-1);
    void run();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Task> tasks_;
    bool stopping_ = false;
    TaskId running_ = kNone;
    std::condition_variable idle_cv_;
    std::thread thread_;
};

}  // namespace netprobe::util
