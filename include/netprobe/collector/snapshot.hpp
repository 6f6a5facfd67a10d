// Immutable results of one collection, shared with HTTP handlers through an
// atomic shared_ptr swap: a scrape never touches BPF maps.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/cgroup_traffic.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/ebpf/types.hpp>

namespace netprobe::collector {

using WallTime = std::chrono::system_clock::time_point;

// The spec's InterfaceStats, plus where the counters come from.
struct InterfaceStats {
    std::string name;
    std::uint32_t index = 0;
    std::uint64_t ingress_packets = 0;
    std::uint64_t ingress_bytes = 0;
    std::uint64_t egress_packets = 0;
    std::uint64_t egress_bytes = 0;
    double ingress_packets_rate = 0;  // per second over the last collect interval
    double ingress_bytes_rate = 0;
    double egress_packets_rate = 0;
    double egress_bytes_rate = 0;
    WallTime last_updated{};
    std::uint64_t xdp_packets = 0;  // driver-level receive (XDP), when attached
    std::uint64_t xdp_bytes = 0;
    std::string tc_mode;   // "tcx" | "clsact"
    std::string xdp_mode;  // "native" | "generic" | "off" | "failed: ..."
};

struct FlowRecord {
    flow_key key{};
    std::string interface;
    std::uint64_t packets = 0;  // cumulative since first seen
    std::uint64_t bytes = 0;
    std::uint64_t interval_packets = 0;  // during the last collect interval
    std::uint64_t interval_bytes = 0;
    WallTime first_seen{};
    WallTime last_seen{};
    std::uint8_t tcp_flags = 0;  // OR of all flags seen
};

struct FlowTableHealth {
    std::uint32_t kernel_capacity = 0;        // flow_stats max_entries
    std::uint64_t kernel_entries = 0;         // flows in the kernel table at the last collection
    std::uint64_t tracked = 0;                // flows held in user space
    std::uint64_t tracked_capacity = 0;
    std::uint64_t expired_total = 0;          // removed after the idle timeout
    std::uint64_t evicted_total = 0;          // removed because the user table was full
};

struct Snapshot {
    WallTime taken_at{};
    double interval_seconds = 0;  // since the previous collection (0 on the first)
    std::uint64_t sequence = 0;   // collections so far
    std::vector<InterfaceStats> interfaces;  // sorted by name
    std::vector<FlowRecord> flows;           // sorted by interval bytes, then bytes, descending
    std::array<std::array<ebpf::Counter, NP_PROTO_MAX>, NP_DIR_MAX> protocols{};
    std::array<std::array<std::uint64_t, NP_MAL_REASON_MAX>, NP_DIR_MAX> malformed{};
    std::array<std::uint64_t, NP_MAP_ID_MAX> map_errors{};
    std::vector<ebpf::IcmpCount> icmp;  // ICMP/ICMPv6 by direction, family, type, code
    FlowTableHealth flow_health;
    double collect_duration_seconds = 0;
    std::uint64_t collect_errors_total = 0;
    // Socket layer, TCP health, drops, netfilter hooks; null when the stack monitor is off.
    std::shared_ptr<const ebpf::StackStats> stack;
    // Traffic of every protocol per cgroup v2 id; null when --cgroup-traffic is off or
    // the programs could not be attached.
    std::shared_ptr<const ebpf::CgroupTrafficStats> cgroup_traffic;
};

}  // namespace netprobe::collector
