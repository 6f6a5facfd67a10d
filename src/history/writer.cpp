#include "netprobe/history/writer.hpp"

#include <system_error>

#include <spdlog/spdlog.h>

namespace netprobe::history {

namespace {
constexpr auto kErrorLogInterval = std::chrono::minutes(1);
}

Writer::Writer(Store store, WriterOptions options) : store_(std::move(store)), options_(std::move(options)) {
    if (options_.queue_batches == 0) options_.queue_batches = 1;
}

Result<std::unique_ptr<Writer>> Writer::start(Store store, WriterOptions options) {
    std::unique_ptr<Writer> w(new Writer(std::move(store), std::move(options)));
    try {
        w->thread_ = std::thread([p = w.get()] { p->loop(); });
    } catch (const std::system_error& e) {
        return std::unexpected(errnoError(e.code().value(), "history: start the writer thread"));
    }
    return w;
}

Writer::~Writer() {
    stop();
}

bool Writer::push(std::vector<Point> batch) {
    {
        std::lock_guard lock(mu_);
        if (stopping_) {
            ++counters_.batches_refused;
            return false;
        }
        if (queue_.size() >= options_.queue_batches) {
            ++counters_.batches_dropped;
            counters_.points_dropped += queue_.front().size();
            queue_.pop_front();
        }
        queue_.push_back(std::move(batch));
    }
    wake_.notify_one();
    return true;
}

void Writer::flush() {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return (queue_.empty() && !writing_) || exited_; });
}

void Writer::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    idle_.notify_all();
}

std::int64_t Writer::now() const {
    if (options_.now) return options_.now();
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void Writer::loop() {
    using Clock = std::chrono::steady_clock;
    auto next_maintain = Clock::now() + options_.maintain_interval;
    std::unique_lock lock(mu_);
    for (;;) {
        wake_.wait_until(lock, next_maintain, [&] { return !queue_.empty() || stopping_; });
        if (!queue_.empty()) {
            auto batch = std::move(queue_.front());
            queue_.pop_front();
            writing_ = true;
            lock.unlock();
            auto r = store_.append(batch);
            lock.lock();
            writing_ = false;
            ++counters_.batches_written;
            if (!r && Clock::now() - last_error_log_ >= kErrorLogInterval) {
                last_error_log_ = Clock::now();
                spdlog::warn("{} (further write errors for a minute are only counted)", r.error().what());
            }
            if (queue_.empty()) idle_.notify_all();
            continue;  // drain before maintaining or stopping
        }
        if (stopping_) break;
        if (Clock::now() >= next_maintain) {
            writing_ = true;
            lock.unlock();
            auto r = store_.maintain(now());
            lock.lock();
            writing_ = false;
            ++counters_.maintenance_runs;
            if (!r) {
                ++counters_.maintenance_errors;
                spdlog::warn("{}", r.error().what());
            }
            next_maintain = Clock::now() + options_.maintain_interval;
            idle_.notify_all();
        }
    }
    exited_ = true;
    idle_.notify_all();
}

WriterStats Writer::stats() const {
    WriterStats s;
    {
        std::lock_guard lock(mu_);
        s = counters_;
        s.queued = queue_.size();
    }
    s.store = store_.stats();
    return s;
}

}  // namespace netprobe::history
