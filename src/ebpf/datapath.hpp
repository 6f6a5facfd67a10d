// Internal: RAII owner of the datapath skeleton, and readers of its maps.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "netprobe/ebpf/types.hpp"
#include "netprobe/util/error.hpp"

struct datapath_bpf;

namespace netprobe::ebpf {

struct DatapathConfig {
    std::uint32_t flow_table_size = 65536;
    bool enable_flows = true;
    bool enable_security = true;
    np_mitigate_mode mitigate = NP_MITIGATE_OFF;
};

class Datapath {
public:
    [[nodiscard]] static Result<Datapath> load(const DatapathConfig& cfg);
    Datapath() = default;
    Datapath(Datapath&& o) noexcept;
    Datapath& operator=(Datapath&& o) noexcept;
    ~Datapath();

    [[nodiscard]] int xdpProg() const;
    [[nodiscard]] int tcIngressProg() const;
    [[nodiscard]] int tcEgressProg() const;
    [[nodiscard]] int flowMap() const;
    [[nodiscard]] SecurityMaps securityMaps() const;
    [[nodiscard]] std::uint32_t flowCapacity() const { return flow_capacity_; }

    [[nodiscard]] Result<NetworkStats> readStats() const;
    Result<std::size_t> drainFlows(std::vector<FlowDelta>& out, MapReadMode mode) const;
    // Reads every flow (cumulative values) without deleting.
    Result<std::size_t> readFlows(std::vector<FlowDelta>& out, MapReadMode mode) const;
    // Deletes one flow, returning its final values (nullopt if it was not there).
    std::optional<np_flow_stats> removeFlow(const flow_key& key) const;
    // Removes the interface's device counters (after detach).
    void forgetDevice(std::uint32_t ifindex) const;

private:
    datapath_bpf* skel_ = nullptr;
    std::uint32_t flow_capacity_ = 0;
};

// Map readers, usable on any map with the datapath's layouts (also by benchmarks).
int possibleCpus();
np_flow_stats mergeFlowStats(const np_flow_stats* per_cpu, int ncpu);
// Reads and deletes every entry of a flow_stats map.
Result<std::size_t> drainFlowMap(int map_fd, std::vector<FlowDelta>& out, MapReadMode mode);
// Reads every entry without deleting it.
Result<std::size_t> readFlowMap(int map_fd, std::vector<FlowDelta>& out, MapReadMode mode);

}  // namespace netprobe::ebpf
