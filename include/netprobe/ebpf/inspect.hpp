// What is loaded and attached, read from the kernel itself (BPF object ids, link
// infos, XDP and clsact queries): `netprobe-agent --doctor` and the lifecycle tests.
// Works whatever bpftool version is installed (tcx and netfilter links included).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::ebpf {

struct ProgInfo {
    std::uint32_t id = 0;
    std::string name;
    std::uint32_t type = 0;
    std::string type_name;
    std::uint64_t run_time_ns = 0;  // with kernel.bpf_stats_enabled=1
    std::uint64_t run_cnt = 0;
    std::vector<std::uint32_t> map_ids;
};

struct LinkInfo {
    std::uint32_t id = 0;
    std::uint32_t type = 0;
    std::string type_name;  // "tcx", "xdp", "netfilter", "cgroup", "tracing", ...
    std::uint32_t prog_id = 0;
    std::uint32_t ifindex = 0;       // tcx, xdp
    std::string attach;              // tcx: ingress/egress; cgroup: its attach type; netfilter: "ipv4 local_in prio -128"
    std::uint64_t cgroup_id = 0;
};

struct MapInfo {
    std::uint32_t id = 0;
    std::string name;
    std::uint32_t type = 0;
    std::string type_name;
    std::uint32_t key_size = 0, value_size = 0, max_entries = 0;
    std::optional<std::uint64_t> entries;  // counted for hash-like maps; arrays are always full
};

// Every program / link / map the kernel has whose program name starts with prefix
// (links and maps: those of such programs).
[[nodiscard]] Result<std::vector<ProgInfo>> listPrograms(const std::string& prefix = "netprobe_");
[[nodiscard]] Result<std::vector<LinkInfo>> listLinks(const std::vector<ProgInfo>& progs);
[[nodiscard]] Result<std::vector<MapInfo>> listMaps(const std::vector<ProgInfo>& progs, bool count_entries = true);

// Program ids on an interface's hooks, from the kernel's own queries (not links):
// XDP (driver/generic/offload), and our clsact filters (handle/priority 0x4e50).
struct HookPrograms {
    std::uint32_t xdp_driver = 0, xdp_generic = 0, xdp_offload = 0;
    std::uint32_t clsact_ingress = 0, clsact_egress = 0;
    // tcx programs on the device of this ifindex in the caller's network namespace
    // (a tcx link's info names an ifindex but not its namespace: this tells them apart)
    std::vector<std::uint32_t> tcx_ingress, tcx_egress;
};
[[nodiscard]] HookPrograms hookPrograms(std::uint32_t ifindex);

}  // namespace netprobe::ebpf
