#include "netprobe/collector/collector.hpp"
#include "netprobe/collector/tc_collector.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace netprobe::collector {

Collector::Collector(std::string name, std::chrono::nanoseconds interval)
    : name_(std::move(name)),
      interval_ns_(std::max<std::int64_t>(interval.count(), 1'000'000)),
      latest_(std::make_shared<const Snapshot>()) {}

Collector::~Collector() { stop(); }

void Collector::addSource(std::shared_ptr<Source> source) {
    std::lock_guard lock(collect_mu_);
    health_.push_back({std::string(source->name()), 0, {}});
    sources_.push_back(std::move(source));
}

void Collector::setCollectInterval(std::chrono::nanoseconds interval) {
    interval_ns_.store(std::max<std::int64_t>(interval.count(), 1'000'000));
    run_cv_.notify_all();
}

std::chrono::nanoseconds Collector::collectInterval() const { return std::chrono::nanoseconds(interval_ns_.load()); }

Collector::SnapshotPtr Collector::latest() const { return latest_.load(); }

Collector::Subscription Collector::subscribe(Subscriber fn) { return subscribers_.subscribe(std::move(fn)); }

Result<Collector::SnapshotPtr> Collector::collect() {
    std::unique_lock lock(collect_mu_);
    const auto t0 = std::chrono::steady_clock::now();
    const double secs =
        prev_time_ == MonoTime{} ? 0.0 : std::chrono::duration<double>(t0 - prev_time_).count();
    SnapshotBuilder b(sequence_ + 1, t0, std::chrono::system_clock::now(), secs);
    for (std::size_t i = 0; i < sources_.size(); ++i) {
        auto r = sources_[i]->collect(b);
        auto& h = health_[i];
        if (r) {
            h.last_error.clear();
            continue;
        }
        ++h.errors_total;
        ++errors_;
        if (h.last_error.empty()) spdlog::warn("{}: source {} failed: {}", name_, h.name, r.error().what());
        h.last_error = r.error().what();
        if (sources_[i]->required()) return std::unexpected(r.error());
    }
    ++sequence_;
    prev_time_ = t0;
    auto& snap = b.snapshot();
    snap.sources = health_;
    snap.collect_errors_total = errors_;
    snap.collect_duration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    SnapshotPtr out = b.finish();
    latest_.store(out);
    // Hand over: the next collection may start while the subscribers of this one run,
    // but its subscribers wait for these to finish.
    auto held = subscribers_.hold();
    lock.unlock();
    subscribers_.publish(out, held);
    // The stage inputs (flow samples, ring records) were the subscribers': they ran, so
    // latest() keeps the snapshot without them. Otherwise they would stay until the next
    // collection's are read (two sets alive at once; up to one sample per kernel flow).
    if (out->hasStageInputs()) {
        SnapshotPtr expected = out;
        latest_.compare_exchange_strong(expected, out->withoutFlowSamples());
    }
    return out;
}

void Collector::start() {
    std::lock_guard lock(run_mu_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] {
        std::unique_lock lk(run_mu_);
        while (!stopping_) {
            lk.unlock();
            if (auto r = collect(); !r) spdlog::warn("{}: collection failed: {}", name_, r.error().what());
            lk.lock();
            run_cv_.wait_for(lk, collectInterval(), [this] { return stopping_; });
        }
    });
}

void Collector::stop() {
    {
        std::lock_guard lock(run_mu_);
        stopping_ = true;
    }
    run_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool Collector::running() const {
    std::lock_guard lock(run_mu_);
    return thread_.joinable() && !stopping_;
}

// ---- TCCollector ----

TCCollector::TCCollector(ebpf::Manager& manager, CollectorOptions options)
    : Collector("collector", options.interval), options_(options) {
    addSource(std::make_shared<DatapathSource>(manager, options.flow_idle_timeout,
                                               [this] { return collectInterval(); }));
}

TCCollector::~TCCollector() { stop(); }

Result<std::vector<InterfaceStats>> TCCollector::collectOnce() {
    auto snap = collect();
    if (!snap) return std::unexpected(snap.error());
    return (*snap)->interfaces;
}

}  // namespace netprobe::collector
