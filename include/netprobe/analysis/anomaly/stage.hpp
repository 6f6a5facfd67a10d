// netprobe::analysis::anomaly::AnomalyStage - anomaly detection over the Series stage's
// closed intervals: a SeriesDetector per keyed series (interfaces, edges, services, node
// ratios; at most max_series, later ones counted) and a BehaviourProfile per entity
// (hosts, pods, workloads; at most max_profiles, idle ones forgotten after profile_ttl
// intervals). A series anomalous for `confirm` consecutive intervals opens an event
// (metric, expected range, observed value, score) that stays open while the series stays
// anomalous: a single-interval blip of a sparse count (one failed connection) is not an
// event, a level shift is one within confirm intervals. A behavioural deviation is an
// event at once, explaining which features deviated and by how much. The table-usage
// gauges (node/*_usage) are the forecasts' (fill times), not modelled here.
//
// State: every state_every intervals the view carries the serialized models (key ->
// text), which a sink writes to the history store; the constructor takes what a previous
// run stored (a model that does not parse is started afresh and counted).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/anomaly/anomaly.hpp>
#include <netprobe/analysis/pipeline.hpp>

namespace netprobe::analysis::anomaly {

struct StageOptions {
    SeriesOptions series;          // learning_points etc. count intervals
    BehaviourOptions behaviour;
    std::size_t max_series = 1000;
    std::size_t max_profiles = 500;
    std::size_t profile_ttl = 1440;  // intervals without a sample before a profile is forgotten
    std::size_t max_events = 500;    // kept in the view, newest first
    std::size_t state_every = 10;    // intervals between state snapshots
    std::size_t confirm = 2;         // consecutive anomalous intervals before a metric event opens
};

struct AnomalyFeature {  // a behavioural deviation, or the one metric of a metric event
    std::string name;
    double observed = 0, expected_lo = 0, expected_hi = 0, score = 0;
    std::string baseline;
    std::vector<std::string> examples;
};

struct AnomalyEvent {
    std::uint64_t id = 0;
    std::string kind;      // metric, behaviour
    std::string scope;     // interface, edge, service, node, entity
    std::string subject;   // the series key, or the entity
    std::string summary;   // one line
    std::vector<AnomalyFeature> features;
    double score = 0;
    std::int64_t first_unix = 0, last_unix = 0;  // interval starts
    std::uint32_t intervals = 1;
    bool open = true;
};

struct ScopeStats {
    std::size_t series = 0, learning = 0, anomalous = 0;
    double anomaly_rate = 0;         // mean over the scope's series of their recent anomaly rate
    std::uint64_t events_total = 0;  // since start
};

struct AnomalyView {
    std::int64_t updated_unix = 0;
    std::vector<AnomalyEvent> events;          // newest first (bounded)
    std::map<std::string, ScopeStats> scopes;  // interface, edge, service, node, entity
    std::uint64_t series_not_modelled = 0, profiles_not_modelled = 0, state_restored = 0, state_rejected = 0;
    std::size_t memory_bytes = 0;              // every model
    // Serialized models (key -> text) at a state interval; null otherwise.
    std::shared_ptr<const std::map<std::string, std::string>> state;
};

class AnomalyStage final : public Stage {
public:
    explicit AnomalyStage(StageOptions options = {}, std::map<std::string, std::string> state = {});
    ~AnomalyStage() override;
    [[nodiscard]] std::string_view name() const override { return "anomaly"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;
    // The agent stops: the view carries the models' state as they are now.
    void finish(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

// The scope of a Series key: interface, edge, service, node.
[[nodiscard]] std::string scopeOf(std::string_view key);

}  // namespace netprobe::analysis::anomaly
