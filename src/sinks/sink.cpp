#include "netprobe/sinks/sink.hpp"

namespace netprobe::sinks {

void RecordQueue::push(const std::vector<FlowExportRecord>& records) {
    if (records.empty()) return;
    {
        std::lock_guard lock(mu_);
        for (const auto& r : records) {
            if (q_.size() >= capacity_) {
                q_.pop_front();
                ++dropped_;
            }
            q_.push_back(r);
        }
    }
    cv_.notify_one();
}

void RecordQueue::requeue(std::vector<FlowExportRecord> records) {
    if (records.empty()) return;
    std::lock_guard lock(mu_);
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
        if (q_.size() >= capacity_) {
            // Full: the records going back are the oldest; drop them rather than newer ones.
            ++dropped_;
            continue;
        }
        q_.push_front(std::move(*it));
    }
}

std::vector<FlowExportRecord> RecordQueue::take(std::size_t max, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return !q_.empty() || stopping_; });
    std::vector<FlowExportRecord> out;
    const std::size_t n = std::min(max, q_.size());
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(std::move(q_.front()));
        q_.pop_front();
    }
    return out;
}

void RecordQueue::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
}

bool RecordQueue::stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
}

std::size_t RecordQueue::size() const {
    std::lock_guard lock(mu_);
    return q_.size();
}

std::uint64_t RecordQueue::dropped() const {
    std::lock_guard lock(mu_);
    return dropped_;
}

}  // namespace netprobe::sinks
