// The sources of NetProbe's snapshots: each reads one BPF component's maps.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <atomic>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <netprobe/collector/flow_deltas.hpp>
#include <netprobe/collector/source.hpp>
#include <netprobe/ebpf/intel_maps.hpp>
#include <netprobe/ebpf/cgroup_traffic.hpp>
#include <netprobe/ebpf/l7_capture.hpp>
#include <netprobe/l7/tracker.hpp>
#include <netprobe/ebpf/manager.hpp>
#include <netprobe/ebpf/map_io.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/util/fd.hpp>
#include <netprobe/util/scheduler.hpp>

namespace netprobe::collector {

// Whether the kernel flow table is under pressure at this collection: demand (its entries
// plus the packets aggregated since the previous collection, each a would-be entry)
// reaches 3/4 of capacity; once under pressure, until demand falls below half.
[[nodiscard]] constexpr bool nextFlowPressure(bool was, std::uint64_t demand, std::uint64_t capacity) {
    if (capacity == 0) return false;
    return was ? demand * 2 >= capacity : demand * 4 >= capacity * 3;
}

// The datapath's maps: interface counters (with rates), protocols, malformed packets,
// ICMP, map errors, and the interval's flow activity. Kernel flow entries without a
// packet for two intervals (at most the flow timeout) are removed with their final
// values, so the table's capacity serves live flows. Under pressure (nextFlowPressure)
// the programs aggregate TCP connection attempts and refusals without an entry
// (Manager::setFlowPressure) and idle entries go after 1 s. Required.
class DatapathSource final : public Source {
public:
    DatapathSource(ebpf::Manager& manager, std::chrono::nanoseconds flow_idle_timeout,
                   std::function<std::chrono::nanoseconds()> interval);
    [[nodiscard]] std::string_view name() const override { return "datapath"; }
    [[nodiscard]] bool required() const override { return true; }
    Result<void> collect(SnapshotBuilder& b) override;

private:
    [[nodiscard]] std::uint64_t kernelIdleNs() const;

    ebpf::Manager& manager_;
    std::chrono::nanoseconds flow_idle_timeout_;
    std::function<std::chrono::nanoseconds()> interval_;
    FlowDeltaTracker deltas_;
    std::vector<ebpf::DeviceCounters> prev_devices_;
    MonoTime prev_time_{};
    bool pressure_ = false;
    std::uint64_t aggregated_packets_ = 0, remember_failures_ = 0;
    std::uint64_t removed_idle_ = 0, remove_failures_ = 0, read_failures_ = 0, handshake_failures_ = 0,
                  udp_timing_failures_ = 0;
};

// Socket layer, TCP health, drops, netfilter hooks.
class StackSource final : public Source {
public:
    explicit StackSource(const ebpf::StackMonitor& monitor) : monitor_(monitor) {}
    [[nodiscard]] std::string_view name() const override { return "stack"; }
    Result<void> collect(SnapshotBuilder& b) override;

private:
    const ebpf::StackMonitor& monitor_;
};

// The kernel's netstat/SNMP counters of the agent's namespace (/proc/self/net/netstat and
// /proc/self/net/snmp): two small files, read every collection. Counters the BPF programs
// cannot see (a SYN dropped on a full accept queue is consumed, not freed with a reason).
// When TcpExt.ListenOverflows moved since the previous read, also the listeners whose
// accept queue is full (one NETLINK_SOCK_DIAG dump of LISTEN sockets: which port
// overflowed, which the counter does not say).
class NetstatSource final : public Source {
public:
    explicit NetstatSource(std::string proc_net = "/proc/self/net") : dir_(std::move(proc_net)) {}
    [[nodiscard]] std::string_view name() const override { return "netstat"; }
    Result<void> collect(SnapshotBuilder& b) override;

private:
    std::string dir_;
    std::optional<std::uint64_t> overflows_;  // TcpExt.ListenOverflows at the previous read
    util::UniqueFd diag_;                     // sock_diag socket of this namespace (lazily)
    bool diag_warned_ = false;
};
// Parses /proc/net/netstat or /proc/net/snmp text (header line, value line per group) into
// "Group.Name" -> value; malformed pairs are skipped.
void parseNetstat(std::string_view text, std::map<std::string, std::uint64_t>& out);

// Links of the agent's namespace: each link's speed (/sys/class/net/IF/speed) and its
// queueing disciplines (an RTM_GETQDISC dump). The dumps are slow work: refresh() runs on
// a scheduler task at its own cadence (schedule()), collect() copies its latest result.
class LinkSource final : public Source {
public:
    LinkSource() = default;
    // Configured speeds (Mb/s by interface name, --link-speed) replace what the device says.
    explicit LinkSource(std::map<std::string, std::uint32_t> configured) : configured_(std::move(configured)) {}
    ~LinkSource() override;
    LinkSource(const LinkSource&) = delete;
    LinkSource& operator=(const LinkSource&) = delete;
    [[nodiscard]] std::string_view name() const override { return "links"; }
    Result<void> collect(SnapshotBuilder& b) override;
    // refresh() every `period` on the scheduler (the first run when it starts); the task
    // is cancelled when the source goes away.
    void schedule(util::Scheduler& scheduler, std::chrono::nanoseconds period = std::chrono::seconds(5));
    // One read: RTM_GETLINK and RTM_GETQDISC dumps, the links' speeds.
    void refresh();

private:
    std::map<std::string, std::uint32_t> configured_;
    std::atomic<std::shared_ptr<const LinkSample>> latest_;
    util::Scheduler* scheduler_ = nullptr;
    std::optional<util::Scheduler::TaskId> task_;
    std::uint64_t refreshes_ = 0, failures_ = 0;  // the task's (one at a time)
};
// A device kind whose /sys/class/net/IF/speed is a nominal figure, not a limit (veth, tun,
// netkit, bridge).
[[nodiscard]] bool nominalSpeed(std::string_view kind);

// The devices' own counters (rx/tx errors, drops, missed, fifo, carrier, ...) of every link
// of the agent's namespace, every collection: one RTM_GETSTATS dump asking for
// IFLA_STATS_LINK_64 only (about 200 bytes a link, no per-link syscall), so the
// interface-errors diagnosis compares the kernel's figures at the collections' instants.
class LinkCountersSource final : public Source {
public:
    [[nodiscard]] std::string_view name() const override { return "link_counters"; }
    Result<void> collect(SnapshotBuilder& b) override;
};

// The conntrack table of the agent's namespace: nf_conntrack_count and nf_conntrack_max
// (two tiny files) and the per-CPU drop counters of /proc/self/net/stat/nf_conntrack,
// every collection. Without nf_conntrack the sample says so (available = false), once in
// the log, and no error.
class ConntrackSource final : public Source {
public:
    explicit ConntrackSource(std::string sysctl_dir = "/proc/sys/net/netfilter",
                             std::string stat_file = "/proc/self/net/stat/nf_conntrack")
        : dir_(std::move(sysctl_dir)), stat_(std::move(stat_file)) {}
    [[nodiscard]] std::string_view name() const override { return "conntrack"; }
    Result<void> collect(SnapshotBuilder& b) override;

private:
    std::string dir_, stat_;
    bool told_absent_ = false;
};
// Parses /proc/net/stat/nf_conntrack (a header of names, one line of hex values per CPU)
// into `out`'s drop, early_drop and insert_failed (sums over the CPUs).
void parseConntrackStat(std::string_view text, ConntrackSample& out);

// Traffic of every protocol per cgroup.
class CgroupTrafficSource final : public Source {
public:
    explicit CgroupTrafficSource(const ebpf::CgroupTrafficMonitor& monitor) : monitor_(monitor) {}
    [[nodiscard]] std::string_view name() const override { return "cgroup_traffic"; }
    Result<void> collect(SnapshotBuilder& b) override;

private:
    const ebpf::CgroupTrafficMonitor& monitor_;
};

// Security analytics input: the datapath's sec_events ring (drained continuously by a
// thread of its own into a bounded queue; every record that does not fit is counted)
// and the per-address host_stats counters, as deltas since the previous collection.
class SecuritySource final : public Source {
public:
    [[nodiscard]] static Result<std::unique_ptr<SecuritySource>> create(const ebpf::Manager& manager,
                                                                        std::size_t max_queued = 65536);
    ~SecuritySource() override;
    [[nodiscard]] std::string_view name() const override { return "security"; }
    [[nodiscard]] bool required() const override { return true; }
    Result<void> collect(SnapshotBuilder& b) override;

private:
    SecuritySource() = default;
    Result<std::vector<HostDelta>> hostDeltas();
    static constexpr std::uint64_t kFullReadEvery = 16;  // 4 s at the 250 ms tick
    static constexpr std::size_t kSparseReadMax = 256;   // a lookup each: ~1 us; a full read ~1-2 ms

    util::UniqueFd host_stats_;
    std::size_t max_queued_ = 0;
    std::mutex queue_mu_;
    std::vector<np_sec_event> queue_;  // guarded by queue_mu_
    std::uint64_t records_total_ = 0, records_dropped_ = 0;  // guarded by queue_mu_
    std::unique_ptr<ebpf::RingReader> ring_;
    // The slots' bits of the datapath (np_host_dirty, netprobe/abi.h): a read takes them
    // and looks up only those slots; every kFullReadEvery-th read, and one with more than
    // kSparseReadMax bits set, reads every slot in batches. Not mapped: every read full.
    ebpf::MappedMap dirty_;
    std::vector<np_host_slot> slots_, fresh_;  // [slot * ncpu + cpu]: as last read; a full read's values
    std::vector<std::uint32_t> dirty_slots_;
    std::uint64_t reads_ = 0;
    MonoTime prev_read_{};
    std::uint64_t host_read_errors_ = 0;
};

// Name capture: the datapath's name_events ring (DNS responses, TLS ClientHello heads),
// read and parsed by a ring thread into a bounded queue, handed over at each collection.
class NameSource final : public Source {
public:
    [[nodiscard]] static Result<std::unique_ptr<NameSource>> create(const ebpf::Manager& manager,
                                                                    std::size_t max_queued = 65536);
    ~NameSource() override;
    [[nodiscard]] std::string_view name() const override { return "names"; }
    Result<void> collect(SnapshotBuilder& b) override;
    // One ring record (exposed for tests and fuzzing): parsed and queued.
    void onRecord(std::span<const std::byte> record);

private:
    NameSource() = default;
    std::size_t max_queued_ = 0;
    std::mutex mu_;
    NameSample state_;  // guarded by mu_: the queue and the counters
    std::unique_ptr<ebpf::RingReader> ring_;
};

// Threat intelligence: the per-feed counters of the datapath's intel_stats, and the
// indicator set the feed loader last installed (installer() hands it over).
class IntelSource final : public Source {
public:
    explicit IntelSource(const ebpf::IntelMaps& maps) : maps_(maps) {}
    [[nodiscard]] std::string_view name() const override { return "intel"; }
    Result<void> collect(SnapshotBuilder& b) override;
    // The feed loader's result: installs the set's prefixes in the kernel (on the
    // caller's thread, the loader's), then publishes it with the install's outcome.
    void installed(std::shared_ptr<const intel::IndicatorSet> set, const Result<ebpf::IntelInstall>& result);
    // The feeds' statuses after each refresh of the loader.
    void statuses(std::vector<intel::FeedStatus> feeds);

private:
    const ebpf::IntelMaps& maps_;
    std::mutex mu_;
    IntelSample state_;  // guarded by mu_ (counters filled per collection)
};

// Application-layer requests: loads the L7 programs; the capture's ring thread feeds
// each record, in place, to the connection tracker (parsing and pairing), whose
// completed requests (bounded; every one that does not fit is counted) are handed over
// at each collection, when idle connections are also forgotten.
class L7Source final : public Source {
public:
    struct Options {
        ebpf::L7CaptureOptions capture;
        l7::TrackerOptions tracker;
    };
    // With a scheduler, the TLS libraries of running processes are looked for (and
    // probed) at once and every 10 s; without one, only at creation.
    [[nodiscard]] static Result<std::unique_ptr<L7Source>> create(Options options, util::Scheduler* scheduler = nullptr);
    ~L7Source() override;
    [[nodiscard]] std::string_view name() const override { return "l7"; }
    Result<void> collect(SnapshotBuilder& b) override;

private:
    explicit L7Source(const l7::TrackerOptions& t) : tracker_(t) {}
    std::mutex mu_;
    l7::ConnectionTracker tracker_;  // guarded by mu_
    std::unique_ptr<ebpf::L7Capture> capture_;
    util::Scheduler* scheduler_ = nullptr;
    std::optional<util::Scheduler::TaskId> tls_task_;
    std::atomic<std::size_t> tls_libraries_{0};
    std::uint64_t counter_errors_ = 0;
    ebpf::L7KernelCounters last_kernel_{};
    // The storage of a sample's requests once the sample is gone (the pipeline ran): the
    // tracker's next requests go there (l7::ConnectionTracker::take). It was in use until
    // the pipeline ran, so keeping it until the next collection adds to the resident
    // memory between the two, not to its peak; kept up to kMaxSpareBytes. Shared with the
    // samples' deleters, which may run on any thread.
    struct Spare {
        std::mutex mu;
        std::vector<l7::Request> requests;
    };
    static constexpr std::size_t kMaxSpareBytes = 256u << 20;
    std::shared_ptr<Spare> spare_ = std::make_shared<Spare>();
};

}  // namespace netprobe::collector
