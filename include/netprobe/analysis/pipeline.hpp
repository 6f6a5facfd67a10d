// netprobe::analysis::Pipeline - ordered analysis stages over a collector's snapshots.
// Each snapshot runs through every stage in order; a stage updates its own state
// (previous state + new snapshot) and publishes an immutable view. The resulting
// Views (the snapshot and every stage's view) are published together: an HTTP handler
// or a sink reads one consistent set with latest(), never a lock a stage holds.
//
//   analysis::Pipeline main(collector);
//   main.addStage(std::make_unique<analysis::FlowAccounting>(opts));
//   main.addStage(std::make_unique<analysis::Grouping>(attribution, gopts));
//   main.addStage(std::make_unique<analysis::TopTalkers>(topts));
//   collector.start();
//   auto v = main.latest();   // v->snapshot, v->flows, v->groups, v->talkers
//
// A new stage: derive from Stage, give Views a field for its view (forward-declared
// here, defined in the stage's header), add it where the pipeline is built. Stages are
// pure over their input: no BPF, no clock of their own (time comes from the snapshot).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/collector/collector.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/util/publisher.hpp>

namespace netprobe::analysis {

struct FlowView;
struct FlowExportView;
struct DiagnosisView;
struct GroupView;
struct TalkerView;
struct TopologyView;
struct PolicyView;
struct QosView;
struct CostView;
struct BottleneckView;
struct SeriesView;
namespace domains {
struct DomainIntelView;
}
namespace security {
struct SecurityView;
}
namespace respond {
struct ResponseView;
}
namespace forecast {
struct ForecastView;
}
namespace anomaly {
struct AnomalyView;
}
namespace l7 {
struct L7View;
}

// The snapshot and the views computed from it.
struct Views {
    // The snapshot the views were computed from, never null once published. Published
    // without its flow samples (Snapshot::withoutFlowSamples: the stages' input, which
    // the collector's own latest() keeps until its next snapshot).
    std::shared_ptr<const collector::Snapshot> snapshot;
    std::shared_ptr<const FlowView> flows;                // FlowAccounting
    std::shared_ptr<const GroupView> groups;              // Grouping
    std::shared_ptr<const TalkerView> talkers;            // TopTalkers
    std::shared_ptr<const FlowExportView> exports;        // FlowExport (records for the flow sinks)
    std::shared_ptr<const l7::L7View> l7;                 // l7::L7Stage (requests; with --l7)
    std::shared_ptr<const TopologyView> topology;         // Topology (conversations)
    std::shared_ptr<const QosView> qos;                   // Qos (handshake RTT, jitter; after Topology)
    std::shared_ptr<const BottleneckView> bottlenecks;    // Bottlenecks (ranked findings; after Qos)
    std::shared_ptr<const SeriesView> series;             // Series (closed intervals: history, models)
    std::shared_ptr<const forecast::ForecastView> forecast;  // forecast::ForecastStage (after Series)
    std::shared_ptr<const anomaly::AnomalyView> anomaly;     // anomaly::AnomalyStage (after Series)
    std::shared_ptr<const CostView> cost;                 // Cost (bytes by destination class, price table)
    std::shared_ptr<const PolicyView> policy;             // PolicyMonitor (NetworkPolicy verdicts; with Kubernetes)
    std::shared_ptr<const domains::DomainIntelView> domains;  // domains::DomainIntel (with --intel-config and --l7)
    std::shared_ptr<const respond::ResponseView> responses;  // respond::ResponseStage (--respond)
    std::shared_ptr<const DiagnosisView> diagnosis;       // Diagnosis (findings)
    std::shared_ptr<const security::SecurityView> security;  // security::SecurityStage
};

class Stage {
public:
    virtual ~Stage() = default;
    [[nodiscard]] virtual std::string_view name() const = 0;
    // Updates the stage's state with the snapshot and sets its view in `views` (which
    // already holds the views of the stages before it).
    virtual void run(const collector::Snapshot& snapshot, Views& views) = 0;
    // The pipeline is finishing (the agent stops): a stage holding state that sinks
    // must see (open flow records) sets its view from it. Default: nothing to hand over.
    virtual void finish(const collector::Snapshot& /*snapshot*/, Views& /*views*/) {}
};

struct StageStats {
    std::string name;
    double last_seconds = 0;
    double max_seconds = 0;
};

class Pipeline {
public:
    using ViewsPtr = std::shared_ptr<const Views>;
    using Subscription = util::Publisher<ViewsPtr>::Subscription;

    // Subscribes to the collector: every snapshot it publishes runs through the stages.
    explicit Pipeline(collector::Collector& source);
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    // Stages run in the order added; add them before the collector starts.
    void addStage(std::unique_ptr<Stage> stage);
    // Runs the stages on one snapshot (what the subscription does; also for tests).
    ViewsPtr run(const std::shared_ptr<const collector::Snapshot>& snapshot);
    // The last run: every stage's finish() over the latest snapshot, the views published
    // to the sinks like a run's. Call after the collector stopped (and its last collect()).
    ViewsPtr finish();
    // The views of the latest snapshot (never null: empty before the first).
    [[nodiscard]] ViewsPtr latest() const;
    // Sinks (the mitigator, the events log, ...): called after every run, in order.
    // (const: subscribing changes no view; the HTTP server's streams subscribe through a const pipeline)
    [[nodiscard]] Subscription subscribe(std::function<void(const ViewsPtr&)> fn) const;
    [[nodiscard]] collector::Collector& collector() const { return source_; }
    [[nodiscard]] std::vector<StageStats> stageStats() const;

private:
    // Stores views as the latest and hands them to the sinks after releasing run_mu_.
    ViewsPtr publish(std::unique_lock<std::mutex> lock, std::shared_ptr<Views> views);
    collector::Collector& source_;
    std::mutex run_mu_;
    std::vector<std::unique_ptr<Stage>> stages_;
    std::vector<StageStats> stats_;  // guarded by run_mu_ (copied out under stats_mu_)
    mutable std::mutex stats_mu_;
    std::vector<StageStats> published_stats_;
    std::atomic<ViewsPtr> latest_;
    mutable util::Publisher<ViewsPtr> sinks_;
    collector::Collector::Subscription subscription_;
};

}  // namespace netprobe::analysis
