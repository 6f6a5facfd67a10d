// netprobe::analysis::Cost - bytes by destination class per local workload, and what they
// cost at a price table: the topology's conversations over a window, each local end's
// bytes sent and received classified by where the other end is:
//   same_node   the other end is local too (an address of this node, a pod of this node)
//   same_zone   in an address range of this node's zone (the cost config's zones)
//   cross_zone  in an address range of another zone
//   private     a private address of no known zone (RFC 1918, CGNAT, ULA, link-local)
//   internet    anything else
// An end is local when its address is one of the node's (interfaces, pods of this node) or
// a local socket was seen on it. Entities: namespace/workload, else namespace/pod, else the
// address. Cost = bytes sent / 1e9 x the class's price per GB (clouds bill egress).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

enum class CostClass : std::uint8_t { SameNode = 0, SameZone, CrossZone, Private, Internet, Count };
inline constexpr std::array<const char*, 5> kCostClassNames = {"same_node", "same_zone", "cross_zone", "private",
                                                               "internet"};

struct CostConfig {
    std::string zone;                  // this node's zone ("" : unknown)
    struct Range {
        util::Addr16 prefix{};
        unsigned len = 0;              // over the 128-bit form
        std::string zone;
        bool operator==(const Range&) const = default;
    };
    std::vector<Range> zones;          // longest prefix wins
    std::array<double, 5> price_per_gb{};  // by CostClass, per 10^9 bytes sent
    std::string currency = "USD";
};

// Parses the cost config (YAML): zone, zones [{cidr, zone}], prices {class: $/GB}, currency.
// Errors name the key and the reason.
[[nodiscard]] std::expected<CostConfig, std::string> parseCostConfig(std::string_view yaml);

// Zones learnt from the cluster (Kubernetes Nodes' topology.kubernetes.io/zone label):
// each node's addresses and pod CIDRs in its zone, and this node's zone.
struct ClusterZones {
    std::string node_zone;                    // "" : this node has no zone label (or is unknown)
    std::vector<CostConfig::Range> ranges;    // longest prefix first
    std::size_t nodes = 0, zoned_nodes = 0;   // nodes seen, nodes with a zone
    bool operator==(const ClusterZones&) const = default;
};
[[nodiscard]] ClusterZones clusterZones(const std::vector<ClusterNode>& nodes, std::string_view node_name);

// The config's zones with the cluster's: the config's zone for this node unless it has
// none; its ranges win over the cluster's of the same length (longest prefix first).
[[nodiscard]] CostConfig withClusterZones(const CostConfig& config, const ClusterZones& cluster);

struct CostOptions {
    std::chrono::seconds window{300};
    CostConfig config;
    // The node's own addresses (interfaces and this node's pods), refreshed on the
    // background cadence; may return null.
    std::function<std::shared_ptr<const std::set<util::Addr16>>()> local_addresses;
    // The cluster's zones (with Kubernetes), refreshed on the background cadence; may be
    // null or return null.
    std::function<std::shared_ptr<const ClusterZones>()> cluster_zones;
};

struct CostEntity {
    std::string entity;
    std::array<std::uint64_t, 5> sent{}, received{};  // bytes over the window, by CostClass
    double cost = 0;                                   // of the bytes sent over the window
};

struct CostView {
    std::chrono::seconds window{300};
    double window_seconds = 0;          // what the topology's slots covered
    std::vector<CostEntity> entities;   // by cost, then bytes sent
    std::string currency;
    std::array<double, 5> price_per_gb{};
    std::string zone;                   // this node's zone as classified ("" : unknown)
    std::string zone_source;            // "config", "kubernetes" or ""
    std::size_t cluster_nodes = 0, cluster_zoned_nodes = 0;  // Kubernetes Nodes seen, with a zone
};

// The class of a peer address seen from a local end.
[[nodiscard]] CostClass classify(const util::Addr16& peer, bool peer_local, const CostConfig& config);

class Cost final : public Stage {
public:
    explicit Cost(CostOptions options);
    [[nodiscard]] std::string_view name() const override { return "cost"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    CostOptions opts_;
    std::shared_ptr<const ClusterZones> zones_seen_;  // what merged_ was built from
    CostConfig merged_;
};

}  // namespace netprobe::analysis
