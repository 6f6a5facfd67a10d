// netprobe::collector::TCCollector - the spec's collector: a Collector whose first
// source reads the datapath's maps (interfaces, protocols, flows) every interval.
//
//   netprobe::collector::TCCollector c(*manager);
//   c.setCollectInterval(std::chrono::seconds(5));
//   auto stats = c.collectOnce();   // Result<std::vector<InterfaceStats>>
//   c.addSource(std::make_shared<collector::StackSource>(*stack_monitor));
#pragma once

#include <chrono>
#include <vector>

#include <netprobe/collector/collector.hpp>
#include <netprobe/collector/sources.hpp>
#include <netprobe/ebpf/manager.hpp>

namespace netprobe::collector {

struct CollectorOptions {
    std::chrono::nanoseconds interval = std::chrono::seconds(5);
    // Flow accounting (the analysis stage a metrics::Server sets up for this collector):
    std::size_t max_flows = 100000;  // user-space flow records
    std::chrono::nanoseconds flow_idle_timeout = std::chrono::minutes(2);
};

class TCCollector : public Collector {
public:
    explicit TCCollector(ebpf::Manager& manager, CollectorOptions options = {});
    ~TCCollector() override;

    // Collects now and publishes a new snapshot; returns its interface stats.
    Result<std::vector<InterfaceStats>> collectOnce();
    [[nodiscard]] const CollectorOptions& options() const { return options_; }

private:
    CollectorOptions options_;
};

}  // namespace netprobe::collector
