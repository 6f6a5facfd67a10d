// GET /api/v1/topology/stream: the topology's changes as server-sent events.
//
// On connect one `snapshot` event (the answer of GET /api/v1/topology with the same
// parameters, plus "seq"); then, at each new view (each collection) in which the graph
// changed, one `diff` event with only what changed (diffTopology below). Event ids are
// "<epoch>.<seq>" (epoch: this process, seq: the collection's sequence number); a client
// reconnecting with Last-Event-ID gets the diffs it missed when they are still kept
// (the last `history` per query, for resume_grace after its last stream closed), else a
// new snapshot.
//
// Cost: streams with the same parameters share one computation per view (the document,
// its diff and the event's text are made once and pushed to each); no view, no cost;
// nothing here makes a BPF call (views only). Writing is the HTTP server's I/O thread's
// (http/stream.hpp): a stream holds no worker; a slow reader is dropped when its buffer
// exceeds the limit. At most max_streams at once (503 beyond).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/http/message.hpp>
#include <netprobe/http/stream.hpp>
#include <netprobe/metrics/topology.hpp>

namespace netprobe::metrics {

// A topology document (topologyDocument) keyed for diffing: nodes and edges by id.
struct TopologyGraph {
    nlohmann::json meta = nlohmann::json::object();  // every field but nodes and edges
    std::vector<std::pair<std::string, nlohmann::json>> nodes, edges;  // sorted by id
};
[[nodiscard]] TopologyGraph topologyGraph(const nlohmann::json& document);
// The document again (edges busiest first, as GET /api/v1/topology orders them).
[[nodiscard]] nlohmann::json topologyDocumentOf(const TopologyGraph& g);

// What changed from a to b (pure), null when nothing did:
//   {"nodes": {"added": [node...], "removed": [id...], "updated": [{"id": .., <changed fields>}]},
//    "edges": {same}, "meta": {<changed top-level fields>}}
// An updated entry carries its id and only the fields whose value changed (a field that
// went away: null). Empty sections are left out.
[[nodiscard]] nlohmann::json diffTopology(const TopologyGraph& a, const TopologyGraph& b);
// b from a and diffTopology(a, b) (what a client does with a diff).
[[nodiscard]] TopologyGraph applyTopologyDiff(TopologyGraph a, const nlohmann::json& diff);

// One server-sent event ("event: <type>\nid: <id>\ndata: <data>\n\n"; data on one line).
[[nodiscard]] std::string sseEvent(std::string_view type, std::string_view id, std::string_view data);

struct TopologyStreamOptions {
    std::size_t max_streams = 64;  // open at once; 503 beyond
    std::size_t history = 64;      // diff events kept per query for Last-Event-ID
    // A query whose last stream closed is kept (computed, its diffs kept) this long so a
    // client reconnecting with Last-Event-ID resumes; at most max_idle_queries of them.
    std::chrono::seconds resume_grace{60};
    std::size_t max_idle_queries = 16;
    http::StreamOptions stream;    // per stream: buffer limit (slow readers), heartbeat
};

struct TopologyStreamStats {
    std::uint64_t open = 0;
    std::uint64_t queries = 0;         // distinct parameter sets streamed now
    std::uint64_t snapshots = 0, diffs = 0;  // events pushed to streams
    std::uint64_t bytes = 0;           // bytes pushed to streams
    std::uint64_t updates = 0;         // diffs computed (once per query per changed view)
    double update_seconds = 0;         // time spent computing them (documents + diffs + text)
    std::map<std::string, std::uint64_t> ended;  // streams ended, by reason (http::StreamEnd, "limit")
};

class TopologyStreams {
public:
    // Subscribes to the pipeline's views (unsubscribes when destroyed).
    TopologyStreams(std::shared_ptr<const analysis::Pipeline> pipeline, TopologyStreamOptions options = {});
    ~TopologyStreams();
    TopologyStreams(const TopologyStreams&) = delete;
    TopologyStreams& operator=(const TopologyStreams&) = delete;

    // GET /api/v1/topology/stream (auth is the server's): a streaming response, or a 400
    // (bad parameters) / 503 (max_streams open).
    [[nodiscard]] http::Response open(const http::Request& req);
    // A new view (the subscription calls it).
    void publish(const analysis::Pipeline::ViewsPtr& views);
    // Ends every stream (the server stops).
    void closeAll();
    [[nodiscard]] TopologyStreamStats stats() const;

private:
    struct Group;
    void sweepLocked();
    std::shared_ptr<const analysis::Pipeline> pipeline_;
    TopologyStreamOptions opts_;
    std::string epoch_;
    mutable std::mutex mu_;
    std::map<std::string, std::unique_ptr<Group>> groups_;  // by canonical query
    mutable TopologyStreamStats stats_;
    analysis::Pipeline::Subscription sub_;
};

// netprobe_topology_streams_open, netprobe_topology_stream_events_total{type},
// netprobe_topology_stream_bytes_total, netprobe_topology_stream_updates_total,
// netprobe_topology_stream_update_seconds_total, netprobe_topology_streams_dropped_total{reason}.
[[nodiscard]] std::string renderTopologyStreamMetrics(const TopologyStreamStats& s);

}  // namespace netprobe::metrics
