#include "netprobe/collector/tc_collector.hpp"

#include <net/if.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>

namespace netprobe::collector {

namespace {

std::uint64_t monoNowNs() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

double rate(std::uint64_t cur, std::uint64_t prev, double secs) {
    if (secs <= 0 || cur < prev) return 0;
    return static_cast<double>(cur - prev) / secs;
}

}  // namespace

TCCollector::TCCollector(ebpf::Manager& manager, CollectorOptions options)
    : manager_(manager),
      options_(options),
      interval_ns_(options.interval.count()),
      flows_(options.max_flows, options.flow_idle_timeout),
      latest_(std::make_shared<const Snapshot>()) {}

TCCollector::~TCCollector() { stop(); }

std::uint64_t TCCollector::kernelIdleNs() const {
    // Two intervals without a packet, but never longer than the flow timeout.
    auto idle = std::max<std::int64_t>(2 * interval_ns_.load(), 1'000'000'000);
    if (options_.flow_idle_timeout.count() > 0) idle = std::min<std::int64_t>(idle, options_.flow_idle_timeout.count());
    return static_cast<std::uint64_t>(idle);
}

void TCCollector::setCollectInterval(std::chrono::nanoseconds interval) {
    interval_ns_.store(std::max<std::int64_t>(interval.count(), 1'000'000));
    run_cv_.notify_all();
}

std::chrono::nanoseconds TCCollector::collectInterval() const {
    return std::chrono::nanoseconds(interval_ns_.load());
}

std::shared_ptr<const Snapshot> TCCollector::latest() const { return latest_.load(); }

void TCCollector::setSnapshotObserver(std::function<void(const Snapshot&)> observer) {
    std::lock_guard lock(collect_mu_);
    observer_ = std::move(observer);
}

void TCCollector::setStackMonitor(const ebpf::StackMonitor* monitor) { stack_.store(monitor); }

void TCCollector::setCgroupTrafficMonitor(const ebpf::CgroupTrafficMonitor* monitor) { cgroup_traffic_.store(monitor); }

Result<std::vector<InterfaceStats>> TCCollector::collectOnce() {
    std::lock_guard lock(collect_mu_);
    auto snap = collectLocked();
    if (!snap) return std::unexpected(snap.error());
    return (*snap)->interfaces;
}

Result<std::shared_ptr<const Snapshot>> TCCollector::collectLocked() {
    const auto t0 = std::chrono::steady_clock::now();
    auto stats = manager_.getNetworkStats();
    if (!stats) {
        ++errors_;
        return std::unexpected(stats.error());
    }
    // A local buffer: 100k entries are ~8 MiB that need not stay resident (or add to
    // the peak while the snapshot is built) between collections.
    std::vector<ebpf::FlowDelta> kernel_flows;
    kernel_flows.reserve(last_kernel_entries_ + last_kernel_entries_ / 8 + 64);
    auto read = manager_.readFlows(kernel_flows, options_.read_mode);
    if (!read) {
        ++errors_;
        return std::unexpected(read.error());
    }
    const std::uint64_t now_mono = monoNowNs();
    flows_.beginInterval();
    for (const auto& d : kernel_flows) flows_.observe(d);
    last_kernel_entries_ = kernel_flows.size();
    std::vector<ebpf::FlowDelta>().swap(kernel_flows);
    // Idle kernel entries leave the kernel table (their final values are kept), so
    // its capacity serves live flows; the agent's record lives on until
    // --flow-timeout.
    for (const auto& key : flows_.kernelIdle(now_mono, kernelIdleNs())) {
        if (auto last = manager_.removeFlow(key)) flows_.retire({key, *last});
        else flows_.retire({key, {}});
    }
    flows_.expire(now_mono);

    auto snap = std::make_shared<Snapshot>();
    const auto wall_now = std::chrono::system_clock::now();
    const auto steady_now = stats->taken_at;
    snap->taken_at = wall_now;
    snap->sequence = ++sequence_;
    const double secs =
        prev_time_ == std::chrono::steady_clock::time_point{}
            ? 0.0
            : std::chrono::duration<double>(steady_now - prev_time_).count();
    snap->interval_seconds = secs;

    std::unordered_map<std::uint32_t, ebpf::AttachInfo> attached;
    for (auto& a : manager_.attachments()) attached.emplace(a.ifindex, std::move(a));

    for (const auto& d : stats->devices) {
        auto at = attached.find(d.ifindex);
        if (at == attached.end()) continue;  // counters of an interface being detached
        InterfaceStats s;
        s.name = at->second.ifname;
        s.index = d.ifindex;
        s.ingress_packets = d.ingress.packets;
        s.ingress_bytes = d.ingress.bytes;
        s.egress_packets = d.egress.packets;
        s.egress_bytes = d.egress.bytes;
        s.xdp_packets = d.xdp.packets;
        s.xdp_bytes = d.xdp.bytes;
        s.tc_mode = at->second.tc;
        s.xdp_mode = at->second.xdp;
        s.last_updated = wall_now;
        auto prev = std::find_if(prev_devices_.begin(), prev_devices_.end(),
                                 [&](const auto& p) { return p.ifindex == d.ifindex; });
        if (prev != prev_devices_.end()) {
            s.ingress_packets_rate = rate(d.ingress.packets, prev->ingress.packets, secs);
            s.ingress_bytes_rate = rate(d.ingress.bytes, prev->ingress.bytes, secs);
            s.egress_packets_rate = rate(d.egress.packets, prev->egress.packets, secs);
            s.egress_bytes_rate = rate(d.egress.bytes, prev->egress.bytes, secs);
        }
        snap->interfaces.push_back(std::move(s));
        attached.erase(at);
    }
    // Attached interfaces that have not seen a packet yet still get a row.
    for (const auto& [idx, a] : attached) {
        InterfaceStats s;
        s.name = a.ifname;
        s.index = idx;
        s.tc_mode = a.tc;
        s.xdp_mode = a.xdp;
        s.last_updated = wall_now;
        snap->interfaces.push_back(std::move(s));
    }
    std::sort(snap->interfaces.begin(), snap->interfaces.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    prev_devices_ = stats->devices;
    prev_time_ = steady_now;

    std::unordered_map<std::uint32_t, std::string> names;
    for (const auto& i : snap->interfaces) names.emplace(i.index, i.name);
    snap->flows = flows_.records(
        [&](std::uint32_t idx) -> std::string {
            if (auto it = names.find(idx); it != names.end()) return it->second;
            char buf[IF_NAMESIZE] = {};
            return if_indextoname(idx, buf) ? std::string(buf) : std::to_string(idx);
        },
        [&](std::uint64_t mono_ns) {
            auto age = std::chrono::nanoseconds(static_cast<std::int64_t>(now_mono) - static_cast<std::int64_t>(mono_ns));
            return std::chrono::time_point_cast<WallTime::duration>(wall_now - age);
        });

    snap->protocols = stats->protocols;
    snap->malformed = stats->malformed;
    snap->map_errors = stats->map_errors;
    snap->icmp = stats->icmp;
    snap->flow_health.kernel_capacity = manager_.flowTableCapacity();
    snap->flow_health.kernel_entries = *read;
    snap->flow_health.tracked = flows_.size();
    snap->flow_health.tracked_capacity = flows_.capacity();
    snap->flow_health.expired_total = flows_.expiredTotal();
    snap->flow_health.evicted_total = flows_.evictedTotal();
    if (const auto* sm = stack_.load()) {
        // A failed read of the stack maps must not cost the interface snapshot.
        if (auto st = sm->read()) snap->stack = std::make_shared<const ebpf::StackStats>(std::move(*st));
        else {
            ++errors_;
            spdlog::warn("stack monitor read failed: {}", st.error().what());
        }
    }
    if (const auto* cm = cgroup_traffic_.load()) {
        if (auto ct = cm->read()) snap->cgroup_traffic = std::make_shared<const ebpf::CgroupTrafficStats>(std::move(*ct));
        else {
            ++errors_;
            spdlog::warn("cgroup traffic read failed: {}", ct.error().what());
        }
    }
    snap->collect_errors_total = errors_;
    snap->collect_duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::shared_ptr<const Snapshot> out = std::move(snap);
    latest_.store(out);
    if (observer_) observer_(*out);
    return out;
}

void TCCollector::start() {
    std::lock_guard lock(run_mu_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] {
        std::unique_lock lk(run_mu_);
        while (!stopping_) {
            lk.unlock();
            {
                std::lock_guard c(collect_mu_);
                if (auto r = collectLocked(); !r) spdlog::warn("collection failed: {}", r.error().what());
            }
            lk.lock();
            run_cv_.wait_for(lk, collectInterval(), [this] { return stopping_; });
        }
    });
}

void TCCollector::stop() {
    {
        std::lock_guard lock(run_mu_);
        stopping_ = true;
    }
    run_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

}  // namespace netprobe::collector
