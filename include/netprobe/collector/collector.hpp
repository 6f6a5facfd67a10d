// netprobe::collector::Collector - runs its sources every interval (or on demand),
// publishes each result as an immutable Snapshot, and hands it to its subscribers
// (the analysis pipelines, in order, one snapshot at a time).
//
//   collector::Collector c("security", std::chrono::milliseconds(250));
//   c.addSource(std::make_shared<collector::SecuritySource>(manager));
//   auto sub = c.subscribe([](const auto& snap) { /* ... */ });
//   c.start();
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <netprobe/collector/snapshot.hpp>
#include <netprobe/collector/source.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/publisher.hpp>

namespace netprobe::collector {

class Collector {
public:
    using SnapshotPtr = std::shared_ptr<const Snapshot>;
    using Subscriber = std::function<void(const SnapshotPtr&)>;

    using Subscription = util::Publisher<SnapshotPtr>::Subscription;

    Collector(std::string name, std::chrono::nanoseconds interval);
    virtual ~Collector();
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    // Sources run in the order added. Add them before start().
    void addSource(std::shared_ptr<Source> source);
    void setCollectInterval(std::chrono::nanoseconds interval);
    [[nodiscard]] std::chrono::nanoseconds collectInterval() const;
    [[nodiscard]] const std::string& name() const { return name_; }

    // Collects now, publishes the snapshot and notifies the subscribers (on this
    // thread, after the collection lock is released, before the next collection's
    // subscribers: they see every snapshot exactly once, in order).
    Result<SnapshotPtr> collect();
    // The latest published snapshot (never null: an empty one before the first); once its
    // subscribers ran, without the stage inputs (Snapshot::withoutFlowSamples).
    [[nodiscard]] SnapshotPtr latest() const;

    // Any number of subscribers. Do not unsubscribe from inside a notification.
    [[nodiscard]] Subscription subscribe(Subscriber fn);

    // Collects every interval on a background thread until stop().
    void start();
    void stop();
    [[nodiscard]] bool running() const;

private:
    std::string name_;
    std::atomic<std::int64_t> interval_ns_;
    std::vector<std::shared_ptr<Source>> sources_;
    std::vector<SourceHealth> health_;  // per source, guarded by collect_mu_
    std::mutex collect_mu_;             // one collection at a time
    util::Publisher<SnapshotPtr> subscribers_;
    std::atomic<SnapshotPtr> latest_;
    std::uint64_t errors_ = 0;
    std::uint64_t sequence_ = 0;
    MonoTime prev_time_{};

    mutable std::mutex run_mu_;
    std::condition_variable run_cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace netprobe::collector
