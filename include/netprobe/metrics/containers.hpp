// Per-container traffic of every protocol, from the per-cgroup counters of the
// cgroup_skb programs (Snapshot::cgroup_traffic) grouped by container id through the
// attribution (cgroup v2 id -> container). Pure functions over a snapshot.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/metrics/attribution.hpp>

namespace netprobe::metrics {

struct ContainerTraffic {
    std::string container_id;
    ContainerLabels labels;               // of its first cgroup (pod fields with Kubernetes)
    std::vector<std::uint64_t> cgroup_ids;  // its cgroups with traffic (the container's and below)
    std::vector<std::string> cgroup_paths;
    // [np_direction][np_cg_proto]: ingress = received by its sockets (rx), egress = sent (tx)
    std::array<std::array<ebpf::Counter, NP_CG_PROTO_MAX>, NP_DIR_MAX> counters{};
    [[nodiscard]] ebpf::Counter rx() const;
    [[nodiscard]] ebpf::Counter tx() const;
};

// The snapshot's cgroups grouped by container id (cgroups that are not a container's
// are left out), sorted by container id. Empty without cgroup traffic or attribution.
[[nodiscard]] std::vector<ContainerTraffic> containerTraffic(const collector::Snapshot& s,
                                                             const Attribution* attribution);

struct ContainerMetricsOptions {
    bool enabled = true;
    std::size_t limit = 500;  // containers with their own series; the rest summed as container_id="other"
};
// netprobe_container_{rx,tx}_{packets,bytes}_total{container_id,namespace,pod}: the
// containers with the most bytes (rx + tx; then by id) up to options.limit, the rest
// summed into {container_id="other",namespace="other",pod="other"}. namespace/pod are
// empty without Kubernetes. Series exist only for cgroups the kernel table holds, so a
// removed container's series disappear.
[[nodiscard]] std::string renderContainerMetrics(const std::vector<ContainerTraffic>& traffic,
                                                 const ContainerMetricsOptions& options);

}  // namespace netprobe::metrics
