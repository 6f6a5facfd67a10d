#include "netprobe/util/scheduler.hpp"

#include <algorithm>

namespace netprobe::util {

Scheduler::~Scheduler() { stop(); }

Scheduler::TaskId Scheduler::every(std::string name, Duration period, std::function<void()> fn, Duration min_gap) {
    std::lock_guard lock(mu_);
    Task t;
    t.stats.name = std::move(name);
    t.period = std::max(period, Duration(std::chrono::milliseconds(1)));
    t.min_gap = min_gap;
    t.fn = std::move(fn);
    t.next = std::chrono::steady_clock::now();
    tasks_.push_back(std::move(t));
    cv_.notify_all();
    return tasks_.size() - 1;
}

void Scheduler::wake(TaskId id) {
    std::lock_guard lock(mu_);
    if (id >= tasks_.size()) return;
    auto& t = tasks_[id];
    const auto soonest = t.last_run + t.min_gap;
    const auto now = std::chrono::steady_clock::now();
    const auto at = std::max(now, soonest);
    if (!t.cancelled && at < t.next) {
        t.next = at;
        cv_.notify_all();
    }
}

void Scheduler::cancel(TaskId id) {
    std::unique_lock lock(mu_);
    if (id >= tasks_.size()) return;
    tasks_[id].cancelled = true;
    tasks_[id].next = std::chrono::steady_clock::time_point::max();
    idle_cv_.wait(lock, [&] { return running_ != id; });
}

void Scheduler::start() {
    std::lock_guard lock(mu_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] { run(); });
}

void Scheduler::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::vector<Scheduler::TaskStats> Scheduler::stats() const {
    std::lock_guard lock(mu_);
    std::vector<TaskStats> out;
    out.reserve(tasks_.size());
    for (const auto& t : tasks_) out.push_back(t.stats);
    return out;
}

void Scheduler::run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
        auto due = tasks_.end();
        for (auto it = tasks_.begin(); it != tasks_.end(); ++it)
            if (!it->cancelled && (due == tasks_.end() || it->next < due->next)) due = it;
        if (due == tasks_.end()) {
            cv_.wait(lock);
            continue;
        }
        const auto now = std::chrono::steady_clock::now();
        if (due->next > now) {
            cv_.wait_until(lock, due->next);
            continue;  // re-pick: a wake() or a new task may have come first
        }
        const TaskId id = static_cast<TaskId>(due - tasks_.begin());
        auto fn = tasks_[id].fn;  // tasks_ may grow while it runs
        tasks_[id].last_run = now;
        tasks_[id].next = now + tasks_[id].period;
        running_ = id;
        lock.unlock();
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        lock.lock();
        running_ = kNone;
        idle_cv_.notify_all();
        auto& s = tasks_[id].stats;
        ++s.runs;
        s.last_duration_seconds = secs;
        s.max_duration_seconds = std::max(s.max_duration_seconds, secs);
    }
}

}  // namespace netprobe::util
