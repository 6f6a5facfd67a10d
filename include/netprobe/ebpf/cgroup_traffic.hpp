// netprobe::ebpf::CgroupTrafficMonitor - traffic of every protocol per cgroup v2 (and
// so per container): cgroup_skb ingress/egress programs attached with BPF links to the
// root of the cgroup v2 hierarchy count, per socket cgroup id, direction and protocol
// class (tcp, udp, icmp, other), the packets and IP bytes of every socket's traffic.
//
//   auto m = netprobe::ebpf::CgroupTrafficMonitor::create({});   // Result<std::unique_ptr<...>>
//   auto stats = (*m)->read();                                    // Result<CgroupTrafficStats>
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/scheduler.hpp>

namespace netprobe::ebpf {

// One cgroup's cumulative counters (since the monitor started, or since the cgroup
// appeared), [np_direction][np_cg_proto]. Ingress = received by its sockets.
struct CgroupTraffic {
    std::uint64_t cgroup_id = 0;
    std::array<std::array<Counter, NP_CG_PROTO_MAX>, NP_DIR_MAX> counters{};
    [[nodiscard]] Counter total(int direction) const;
};

struct CgroupTrafficStats {
    std::vector<CgroupTraffic> cgroups;  // by cgroup id
    std::uint64_t insert_failures = 0;   // packets not counted: the kernel table was full
    std::uint64_t entries = 0;           // kernel entries at this read
    std::uint32_t capacity = 0;          // kernel max entries
    std::uint64_t removed_total = 0;     // cgroups whose entries were removed because they no longer exist
    std::uint64_t remove_failures = 0;   // entry deletes that failed (retried at the next sweep)
    std::string cgroup_root;             // where the programs are attached
};

struct CgroupTrafficOptions {
    std::string cgroup_root;             // "" = the first cgroup2 mount of /proc/mounts
    std::uint32_t max_entries = 16384;   // (cgroup, direction, protocol) entries in the kernel
    // How often a background task walks the hierarchy to drop the entries of removed
    // cgroups (needs a scheduler).
    std::chrono::milliseconds sweep_interval{10000};
};

// "tcp", "udp", "icmp", "other"
[[nodiscard]] const char* cgroupProtoName(int proto);

class CgroupTrafficMonitor {
public:
    // Loads and attaches both programs; an error (no cgroup v2 mount, no permission,
    // a kernel without cgroup_skb links) says why, and nothing stays attached. With a
    // scheduler, a task removes the entries of cgroups that no longer exist: every
    // sweep_interval it walks the hierarchy and deletes the entries of cgroups absent
    // from a walk begun after their entry was first seen (so a new cgroup is never
    // mistaken for a gone one).
    [[nodiscard]] static Result<std::unique_ptr<CgroupTrafficMonitor>> create(CgroupTrafficOptions options = {},
                                                                               util::Scheduler* scheduler = nullptr);
    ~CgroupTrafficMonitor();
    CgroupTrafficMonitor(const CgroupTrafficMonitor&) = delete;
    CgroupTrafficMonitor& operator=(const CgroupTrafficMonitor&) = delete;

    // Sums the per-CPU counters (batch map reads only). Thread-safe.
    [[nodiscard]] Result<CgroupTrafficStats> read() const;
    [[nodiscard]] const std::string& cgroupRoot() const;

private:
    struct Impl;
    explicit CgroupTrafficMonitor(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::ebpf
