// Grouping: the stage that attributes traffic to pods, workloads and containers
// through the Attribution port, and publishes a GroupView for the pod, workload and
// container series and for /api/v1/pods, /api/v1/containers and the flows' container
// fields. Totals are built from every interval's flow samples (each packet once),
// not from the bounded flow records, so they stay exact whatever --max-flows is.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/collector/snapshot.hpp>

namespace netprobe::analysis {

// One 5-tuple's traffic in one interval, counted at one place.
struct TupleTraffic {
    flow_key key{};  // of the observation kept (its ifindex/direction: where it was counted)
    std::uint64_t packets = 0, bytes = 0;
};

// Host-side veths of local pods: ifindex -> the pod's IPs (from LocalPod::host_interfaces
// and the attached interfaces' names).
using PodVeths = std::unordered_map<std::uint32_t, std::vector<util::Addr16>>;
[[nodiscard]] PodVeths podVeths(const std::vector<LocalPod>& pods,
                                const std::vector<collector::InterfaceStats>& interfaces);

// The interval's samples with one observation per 5-tuple. A packet between two pods
// crosses both pods' host veths and so is in two samples. A tuple is counted at one
// place, the same in every interval: the sending pod's own monitored veth (where the
// packets leave it: host-side ingress), else the receiving pod's (host-side egress);
// samples elsewhere are ignored. Only a tuple without either takes the largest sample
// of the interval. Counting at a fixed place keeps totals exact: the larger of two
// hooks each interval counts a packet twice when their entries are read on either
// side of it, and so does switching hooks when one of them had nothing in an interval.
[[nodiscard]] std::vector<TupleTraffic> perTuple(std::span<const collector::FlowSample> samples,
                                                 const PodVeths& veths = {});

struct PodTraffic {
    const LocalPod* pod = nullptr;  // points into the vector the traffic was computed for
    std::uint64_t rx_packets = 0, rx_bytes = 0;  // flows whose destination is the pod
    std::uint64_t tx_packets = 0, tx_bytes = 0;  // flows whose source is the pod
};

// Per pod (same order as pods), the traffic of the tuples whose source (tx) or
// destination (rx) is one of the pod's IPs. Host-network pods get no traffic.
[[nodiscard]] std::vector<PodTraffic> podTraffic(std::span<const TupleTraffic> tuples,
                                                 const std::vector<LocalPod>& pods);

// Monotonic per-pod totals (netprobe_pod_*_total): every interval's traffic added per
// pod UID. A pod that is no longer known is forgotten (its series disappear).
class PodCounters {
public:
    void observe(std::span<const TupleTraffic> tuples, const std::vector<LocalPod>& pods);
    // The totals of the given pods, in their order (zero for pods not seen yet).
    [[nodiscard]] std::vector<PodTraffic> traffic(const std::vector<LocalPod>& pods) const;

private:
    struct Totals {
        std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
    };
    std::unordered_map<std::string, Totals> by_uid_;
};

// Workload-to-workload traffic: every interval's tuples (one observation per 5-tuple,
// as for the pods), added per (source workload, destination workload) pair; an
// end that is not a pod is the workload "external" (empty namespace). Flows with no pod
// at either end are not counted. Pairs whose pod workloads are no longer known
// (Attribution::workloads()) are forgotten, so their series disappear.
struct WorkloadPair {
    WorkloadRef src, dst;
    auto operator<=>(const WorkloadPair&) const = default;
};
struct WorkloadTraffic {
    WorkloadPair pair;
    std::uint64_t packets = 0, bytes = 0;
};
inline constexpr const char* kExternalWorkload = "external";
class WorkloadCounters {
public:
    // max_pairs bounds the memory: once that many pairs are held, new pairs are added to
    // one pair whose four labels are "other" (kept as long as it has traffic).
    explicit WorkloadCounters(std::size_t max_pairs = 100000) : max_pairs_(max_pairs) {}
    void observe(std::span<const TupleTraffic> tuples, const Attribution& attribution);
    [[nodiscard]] std::vector<WorkloadTraffic> traffic() const;  // sorted by pair

private:
    std::map<WorkloadPair, WorkloadTraffic> by_pair_;
    std::size_t max_pairs_;
};

// Per-container traffic of every protocol: the per-cgroup counters of the cgroup_skb
// programs grouped by container id through the attribution.
struct ContainerTraffic {
    std::string container_id;
    ContainerLabels labels;                  // of its first cgroup (pod fields with Kubernetes)
    std::vector<std::uint64_t> cgroup_ids;   // its cgroups with traffic (the container's and below)
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

// TCP flows -> the connection records of their local sockets, for the flows' container
// fields. A flow a->b matches the record whose local end is a (the sender's socket) and
// the record whose local end is b (the receiver's), whichever the node has.
class ConnectionIndex {
public:
    explicit ConnectionIndex(const collector::Snapshot& s);
    // The cgroup id of the socket bound to (ip, port) talking to (peer_ip, peer_port); 0 if none.
    [[nodiscard]] std::uint64_t cgroupOf(const util::Addr16& ip, std::uint16_t port, const util::Addr16& peer_ip,
                                         std::uint16_t peer_port) const;
    [[nodiscard]] bool empty() const { return by_tuple_.empty(); }

private:
    struct Key {
        util::Addr16 ip, peer_ip;
        std::uint16_t port, peer_port;
        auto operator<=>(const Key&) const = default;
    };
    std::map<Key, std::uint64_t> by_tuple_;
};

struct GroupView {
    GroupView() = default;
    GroupView(const GroupView&) = delete;  // pod_traffic points into pods
    GroupView& operator=(const GroupView&) = delete;

    bool attribution = false;  // an attribution is configured
    bool kubernetes = false;   // ... with the Kubernetes API (pods and workloads)
    bool synced = false;       // the pod list has been received once
    std::vector<LocalPod> pods;            // local pods (Kubernetes)
    std::vector<PodTraffic> pod_traffic;   // their monotonic totals, same order
    bool workloads_enabled = false;
    std::vector<WorkloadTraffic> workloads;  // monotonic totals, sorted by pair
    std::vector<ContainerTraffic> containers;
    ConnectionIndex connections{collector::Snapshot{}};
};

struct GroupingOptions {
    bool workloads = true;
    std::size_t max_workload_pairs = 100000;
};

class Grouping final : public Stage {
public:
    // attribution may be null: the view then only says so.
    Grouping(std::shared_ptr<const Attribution> attribution, GroupingOptions options);
    [[nodiscard]] std::string_view name() const override { return "grouping"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    std::shared_ptr<const Attribution> attribution_;
    GroupingOptions options_;
    PodCounters pods_;
    WorkloadCounters workloads_;
};

}  // namespace netprobe::analysis
