// netprobe::collector::TCCollector - the spec's collector: reads the datapath's
// maps every interval, computes rates against the previous read, keeps the flow
// table, and publishes an immutable Snapshot.
//
//   netprobe::collector::TCCollector c(*manager);
//   c.setCollectInterval(std::chrono::seconds(5));
//   auto stats = c.collectOnce();   // Result<std::vector<InterfaceStats>>
#pragma once

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <netprobe/collector/flow_table.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/manager.hpp>
#include <netprobe/ebpf/cgroup_traffic.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::collector {

struct CollectorOptions {
    std::chrono::nanoseconds interval = std::chrono::seconds(5);
    std::size_t max_flows = 100000;                         // user-space flow records
    std::chrono::nanoseconds flow_idle_timeout = std::chrono::minutes(2);
    ebpf::MapReadMode read_mode = ebpf::MapReadMode::Batch;
};

class TCCollector {
public:
    explicit TCCollector(ebpf::Manager& manager, CollectorOptions options = {});
    ~TCCollector();
    TCCollector(const TCCollector&) = delete;
    TCCollector& operator=(const TCCollector&) = delete;

    void setCollectInterval(std::chrono::nanoseconds interval);
    [[nodiscard]] std::chrono::nanoseconds collectInterval() const;

    // Collects now and publishes a new snapshot; returns its interface stats.
    Result<std::vector<InterfaceStats>> collectOnce();
    // The latest published snapshot (never null: an empty one before the first).
    [[nodiscard]] std::shared_ptr<const Snapshot> latest() const;

    // Optional: also read the stack monitor into each snapshot (nullptr: none).
    // Set before start(); the monitor must outlive the collector's use of it.
    void setStackMonitor(const ebpf::StackMonitor* monitor);
    // Optional: also read the per-cgroup traffic counters into each snapshot (nullptr: none).
    void setCgroupTrafficMonitor(const ebpf::CgroupTrafficMonitor* monitor);

    // Called with every new snapshot, on the collecting thread, after it is
    // published (for state that must see every interval, e.g. monotonic per-pod
    // totals). Pass an empty function to remove it.
    void setSnapshotObserver(std::function<void(const Snapshot&)> observer);

    // Collects every interval on a background thread until stop().
    void start();
    void stop();

private:
    Result<std::shared_ptr<const Snapshot>> collectLocked();
    [[nodiscard]] std::uint64_t kernelIdleNs() const;

    ebpf::Manager& manager_;
    std::atomic<const ebpf::StackMonitor*> stack_{nullptr};
    std::atomic<const ebpf::CgroupTrafficMonitor*> cgroup_traffic_{nullptr};
    CollectorOptions options_;
    std::atomic<std::int64_t> interval_ns_;
    std::mutex collect_mu_;  // one collection at a time
    FlowTable flows_;
    std::function<void(const Snapshot&)> observer_;  // guarded by collect_mu_
    std::size_t last_kernel_entries_ = 0;  // sizes the next read's buffer
    std::atomic<std::shared_ptr<const Snapshot>> latest_;
    std::uint64_t errors_ = 0;
    std::uint64_t sequence_ = 0;
    std::chrono::steady_clock::time_point prev_time_{};
    std::vector<ebpf::DeviceCounters> prev_devices_;

    std::mutex run_mu_;
    std::condition_variable run_cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace netprobe::collector
