// The topology at a past time: GET /api/v1/topology?at=<time>&window=5m from the history
// store (--history=on).
//
// Frames: every complete 10 s slot of every conversation's figures (bytes and packets each
// way, connections opened and failed, retransmits) goes to the store as per-minute series
// "topo/<transport>/<port>/<client>/<server>/<client ns>/<workload>/<pod>/<server ns>/
// <workload>/<pod>/<client process>/<server process>/<field>" (fields with a value only;
// '/' and '%' in names percent-escaped), each slot in the minute its start falls in,
// written once. So they have the series' retention and size bound (docs/history.md).
// A query sums the minutes overlapping [at - window, at) per conversation and answers
// like the live graph (grouping, filters, segments, limit), with "source": "history",
// "at", "from", "to"; RTT and L7 figures are not kept.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/collector/snapshot.hpp>
#include <netprobe/history/store.hpp>
#include <netprobe/metrics/topology.hpp>

namespace netprobe::analysis {
struct TopologyView;
}

namespace netprobe::metrics {

// The points of the slots completed after `after_slot` (exclusive), up to the view's
// current slot (exclusive); after_slot becomes the newest written. taken_at: the wall
// time of the view's now_ns (slots are placed in minutes by it).
[[nodiscard]] std::vector<history::Point> topologyFramePoints(const analysis::TopologyView& v,
                                                              collector::WallTime taken_at, std::int64_t& after_slot);

// A pipeline sink's state: the last slot written.
class TopologyFrames {
public:
    [[nodiscard]] std::vector<history::Point> take(const analysis::TopologyView& v, collector::WallTime taken_at) {
        std::lock_guard lk(mu_);
        return topologyFramePoints(v, taken_at, last_);
    }

private:
    std::mutex mu_;
    std::int64_t last_ = INT64_MIN;
};

struct TopologyAtError {
    int status = 400;
    std::string message;
};
// The answer of GET /api/v1/topology?at= (q.at_unix set). now_unix: the wall clock.
[[nodiscard]] std::expected<nlohmann::json, TopologyAtError> topologyAt(const history::Store& store,
                                                                        const TopologyQuery& q, std::int64_t now_unix);

// "2026-12-05T14:00:00Z" (or with an offset, a fraction) or unix seconds.
[[nodiscard]] std::optional<std::int64_t> parseTimeParam(const std::string& s);

}  // namespace netprobe::metrics
