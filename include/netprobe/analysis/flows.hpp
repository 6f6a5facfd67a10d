// Flow accounting: the stage that keeps the flow records (FlowTable) and publishes
// them as a FlowView for /api/v1/flows and the security stage (the top talkers come
// from the samples: analysis/talkers.hpp).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <netprobe/analysis/flow_table.hpp>
#include <netprobe/analysis/pipeline.hpp>

namespace netprobe::analysis {

struct FlowHealth {
    std::uint64_t tracked = 0;           // flows held in user space
    std::uint64_t tracked_capacity = 0;  // --max-flows
    std::uint64_t expired_total = 0;     // forgotten after the idle timeout
    std::uint64_t evicted_total = 0;     // forgotten because the table was full
};

struct FlowView {
    // Sorted by interval bytes, then bytes, descending. Shared with the flow table (a view
    // costs no copy of the records); times are converted with the view's snapshot.
    FlowRecords records;
    FlowHealth health;
    std::vector<std::pair<std::uint32_t, std::string>> interfaces;  // ifindex -> name, sorted

    // The name of the flow's interface (the index as text when unknown).
    [[nodiscard]] std::string interfaceName(std::uint32_t ifindex) const;
};

struct FlowAccountingOptions {
    std::size_t max_flows = 100000;
    std::chrono::nanoseconds idle_timeout = std::chrono::minutes(2);
};

class FlowAccounting final : public Stage {
public:
    explicit FlowAccounting(FlowAccountingOptions options) : table_(options.max_flows, options.idle_timeout) {}
    [[nodiscard]] std::string_view name() const override { return "flows"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    FlowTable table_;
};

}  // namespace netprobe::analysis
