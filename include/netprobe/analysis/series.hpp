// netprobe::analysis::Series - fixed intervals (--series-step, a minute by default)
// aligned to wall-clock time, closed into keyed values: the input of the history store,
// the forecasts and the anomaly models. Pure over its input (the snapshots and the
// topology and QoS views of the same run); time from the snapshots.
//
// Each closed interval publishes:
//   iface/<name>/{rx,tx}_{bytes,packets}_rate     per second over the interval; every interface
//                                                  of the latest snapshot (0 when quiet) and those
//                                                  that carried traffic in the interval (a deleted
//                                                  interface's series end: nothing kept of it)
//   edge/<client>-><server>:<port>/bytes_rate      the busiest max_edges edges (TCP and UDP)
//   edge/.../rtt_ms                                median handshake RTT (when timed)
//   edge/.../loss_ratio                            retransmitted / sent segments (both ends)
//   edge/.../failed_rate                           failed connections per second
//   service/<server>:<port>/{requests_rate,error_ratio}   with L7, the busiest max_services
//   node/retransmit_ratio, node/listen_overflows_rate, node/flow_table_usage,
//   node/connections_failed_rate
// and one behaviour sample per end (node id: namespace/workload, else namespace/pod,
// else the address; at most max_entities, the busiest; loopback conversations are the
// host talking to itself and make none): ports served and used, peers,
// bytes in and out, connections and failures, transports, and the DNS names it resolved
// (with --l7).
//
// Conversations' figures are taken as deltas of the topology's slots between runs (a
// conversation remembers its newest slot's figures), so the step is independent of the
// topology's slot length. Rates divide by the time the interval's collections covered.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/anomaly/anomaly.hpp>
#include <netprobe/analysis/pipeline.hpp>

namespace netprobe::analysis {

struct SeriesOptions {
    std::chrono::seconds step{60};
    std::size_t max_edges = 50;
    std::size_t max_services = 50;
    std::size_t max_entities = 500;
};

struct SeriesPoint {
    std::string key;
    double value = 0;
};

struct BehaviourInput {
    std::string entity;
    anomaly::BehaviourSample sample;
};

struct SeriesView {
    std::chrono::seconds step{60};
    std::uint64_t intervals = 0;    // closed since start (the newest is the one below)
    std::int64_t start_unix = 0;    // wall-clock start of the newest closed interval
    double covered_seconds = 0;     // what its collections covered
    std::vector<SeriesPoint> points;  // sorted by key
    std::vector<BehaviourInput> behaviour;  // sorted by entity
};

class Series final : public Stage {
public:
    explicit Series(SeriesOptions options = {});
    ~Series() override;
    [[nodiscard]] std::string_view name() const override { return "series"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace netprobe::analysis
