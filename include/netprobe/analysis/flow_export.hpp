// Flow export records: the stage that turns the per-interval flow samples into
// NetFlow/IPFIX-style records, one per flow and export interval, for the sinks
// (IPFIX, the JSON-lines flow log). A flow here is a biflow: both directions of a
// 5-tuple on one interface (the direction seen first is the forward one, RFC 5103).
// A record is emitted when the flow
//   - ends: TCP with FIN or RST seen and a collection without packets after it,
//   - goes idle (no packet for idle_timeout),
//   - has been open for active_timeout since its last record (long-lived flows report
//     periodically; the record's counts are the deltas since the last one),
//   - is evicted because the cache holds max_flows (the least recently seen), or
//   - the agent stops (finish(): every flow with counts, "forced end").
// Every packet of every sample is in exactly one record: the sums of a flow's records
// are the kernel's counts.
//
// Pure over its input: the samples, the grouping view (container of a TCP socket),
// the attribution port (namespace, pod, workload, service) and the snapshot's time.
//
// L7 (with --l7=on): the snapshot's completed requests join the open flow of their
// connection (5-tuple, either orientation; one flow when several interfaces carry it:
// the lowest ifindex), so that a record carries the requests, errors and latency of
// what happened since the flow's previous record. A request whose flow has no open
// record yet waits (bounded in number and time) and is counted when it is given up.
// Policy: when the PolicyMonitor stage ran before this one, a record carries the
// verdict of its conversation (PolicyView::verdicts), looked up when it is emitted.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

// IPFIX flowEndReason (IE 136) values.
enum class FlowEndReason : std::uint8_t {
    IdleTimeout = 1,
    ActiveTimeout = 2,
    EndOfFlow = 3,
    ForcedEnd = 4,
    LackOfResources = 5,
};
[[nodiscard]] std::string_view toString(FlowEndReason r);
inline constexpr std::size_t kFlowEndReasons = 6;  // index = value

// Whose observations a record's L7 figures are: a request is seen at each end of its
// connection that runs on this node. Server when the flow's server-side socket is on
// this node (a request has been seen there), else client.
enum class L7Side : std::uint8_t { None = 0, Server = 1, Client = 2 };
[[nodiscard]] std::string_view toString(L7Side s);  // "", "server", "client"

// The application-layer requests of a record's connection, completed since the flow's
// previous record (deltas, like the packet counts).
struct FlowL7Summary {
    std::string protocol;             // of the latest request: "http", "grpc", "dns", ... ("" none yet)
    L7Side side = L7Side::None;       // None: the flow has had no request
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;         // failed: server and client errors (HTTP 4xx and 5xx, ...)
    std::uint64_t client_errors = 0;  // of which client errors (HTTP 4xx, DNS NXDOMAIN, gRPC's client codes)
    std::uint64_t latency_sum_us = 0; // request first byte -> response first byte, at that side
    std::uint64_t latency_max_us = 0;
    [[nodiscard]] bool present() const { return side != L7Side::None; }
    bool operator==(const FlowL7Summary&) const = default;
};

// The NetworkPolicy verdict of a flow's conversation (PolicyMonitor): none when the stage
// did not run or has not evaluated it, or neither end is a known pod.
enum class FlowPolicyVerdict : std::uint8_t { None = 0, Allowed = 1, Denied = 2 };
[[nodiscard]] std::string_view toString(FlowPolicyVerdict v);  // "", "allowed", "denied"

struct FlowExportRecord {
    // The forward direction (src -> dst as first seen), its interface and the
    // direction (ingress/egress) it was seen in there.
    flow_key key{};
    std::uint64_t flow_id = 0;      // the same for every record of one flow
    std::int64_t start_ms = 0;      // Unix epoch milliseconds: first packet of this record
    std::int64_t end_ms = 0;        // last packet of this record
    std::uint64_t packets = 0;      // forward, since the flow's previous record
    std::uint64_t bytes = 0;        // link-layer bytes as counted (see link_header_bytes)
    std::uint64_t rev_packets = 0;  // reverse (dst -> src)
    std::uint64_t rev_bytes = 0;
    std::uint8_t tcp_flags = 0;      // OR of the forward direction's TCP flags so far
    std::uint8_t rev_tcp_flags = 0;
    bool reverse_seen = false;       // a biflow: the reverse direction has had packets
    bool initiator_known = false;    // the forward direction was seen strictly first
    FlowEndReason reason = FlowEndReason::IdleTimeout;
    bool final = true;               // the flow's last record (false: active timeout)
    // Per packet, the link-layer header the byte counts include (14 on Ethernet, 0 on
    // layer-3 devices and for inner flows of tunnel packets, key.encap, which count their
    // IP datagrams): IP octets = bytes - packets * link_header_bytes (802.1Q tags
    // the stack offloaded are counted on receive: 4 more per tagged frame).
    std::uint8_t link_header_bytes = 14;
    std::string interface;
    FlowLabels labels;               // empty strings: unknown
    std::string src_container, dst_container;  // container ids (TCP, by socket), empty: unknown
    FlowL7Summary l7;                // requests since the previous record (with --l7=on)
    FlowPolicyVerdict policy = FlowPolicyVerdict::None;

    [[nodiscard]] std::uint64_t ipBytes() const { return bytes - packets * link_header_bytes; }
    [[nodiscard]] std::uint64_t revIpBytes() const { return rev_bytes - rev_packets * link_header_bytes; }
};

struct FlowExportHealth {
    std::uint64_t cached = 0;     // flows with a record open
    std::uint64_t capacity = 0;
    std::array<std::uint64_t, kFlowEndReasons> records_total{};  // by FlowEndReason (index = value)
    // L7 requests (since start): joined to a flow, given up (no open flow of their
    // connection within l7_pending_timeout, or the waiting list was full), waiting now.
    std::uint64_t l7_requests_matched = 0;
    std::uint64_t l7_requests_unmatched = 0;
    std::uint64_t l7_requests_pending = 0;
};

// The records emitted at one collection (each record is in exactly one view: a sink
// that sees every view, in order, sees every record once).
struct FlowExportView {
    std::vector<FlowExportRecord> records;
    FlowExportHealth health;
};

struct FlowExportOptions {
    std::chrono::nanoseconds active_timeout = std::chrono::seconds(60);
    std::chrono::nanoseconds idle_timeout = std::chrono::seconds(15);
    std::size_t max_flows = 100000;
    std::string node;  // the node's name (records carry it)
    // An L7 request whose connection has no open flow waits this long (its packets may be
    // read at the next collection) and at most this many wait (the oldest given up).
    std::chrono::nanoseconds l7_pending_timeout = std::chrono::seconds(10);
    std::size_t max_l7_pending = 10000;
};

class FlowExport final : public Stage {
public:
    // attribution may be null (no pod/container labels).
    FlowExport(std::shared_ptr<const Attribution> attribution, FlowExportOptions options);
    [[nodiscard]] std::string_view name() const override { return "flow-export"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;
    // Emits every open flow's counts (ForcedEnd) and forgets them.
    void finish(const collector::Snapshot& snapshot, Views& views) override;

    [[nodiscard]] const FlowExportOptions& options() const { return options_; }

private:
    struct Key {
        util::Addr16 a{}, b{};           // (a, pa) < (b, pb)
        std::uint16_t pa = 0, pb = 0;
        std::uint8_t proto = 0, family = 0;
        std::uint8_t encap = 0;          // an inner flow is not the plain flow of the same tuple
        std::uint32_t ifindex = 0;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept;
    };
    // A connection: a Key without interface and encapsulation (the L7 index's key).
    struct Tuple {
        util::Addr16 a{}, b{};
        std::uint16_t pa = 0, pb = 0;
        std::uint8_t proto = 0, family = 0;
        bool operator==(const Tuple&) const = default;
    };
    struct TupleHash {
        std::size_t operator()(const Tuple& t) const noexcept;
    };
    struct Where {  // the rest of a Key
        std::uint32_t ifindex = 0;
        std::uint8_t encap = 0;
    };
    // One L7 request, as much as a record needs of it.
    struct L7Request {
        Tuple tuple;                 // proto 6; DNS may be UDP or TCP (tried in that order)
        bool dns = false;
        bool server = true;          // seen at the server's end
        bool error = false, client_error = false;
        std::uint64_t latency_us = 0;
        std::uint64_t since_ns = 0;  // when it began waiting (snapshot time)
        std::string protocol;
    };
    struct L7Figures {
        std::uint64_t requests = 0, errors = 0, client_errors = 0, latency_sum_us = 0, latency_max_us = 0;
    };
    struct L7State {
        std::string protocol;        // the latest request's
        L7Figures side[2];           // since the previous record: 0 server, 1 client
        bool server_seen = false;    // a server-side request: the server is on this node
    };
    struct Entry {
        flow_key fwd{};
        std::uint64_t flow_id = 0;
        std::uint64_t first_ns = 0;       // first packet of the open record (monotonic)
        std::uint64_t last_ns = 0;        // latest packet
        std::uint64_t opened_ns = 0;      // when the open record began (active timeout)
        std::uint64_t prev_end_ns = 0;    // the previous record's end (0: none)
        std::uint64_t packets[2] = {0, 0}, bytes[2] = {0, 0};  // 0 forward, 1 reverse
        std::uint8_t flags[2] = {0, 0};
        bool reverse_seen = false;
        bool initiator_known = false;
        bool touched = false;             // packets in this collection
        std::unique_ptr<L7State> l7;      // once an L7 request joined the flow
    };
    [[nodiscard]] static Key keyOf(const flow_key& k);
    [[nodiscard]] static Tuple tupleOf(const Key& k);
    void emit(const collector::Snapshot& s, const Views& views, Entry& e, FlowEndReason reason, bool final,
              std::vector<FlowExportRecord>& out);
    void publish(const collector::Snapshot& s, Views& views, std::vector<FlowExportRecord> records);
    // The L7 index: open flows by connection (kept only once a snapshot carried L7).
    void indexAdd(const Key& k);
    void indexRemove(const Key& k);
    void forget(std::unordered_map<Key, Entry, KeyHash>::iterator it);
    // The snapshot's requests (and those waiting) into their flows.
    void joinL7(const collector::Snapshot& s);
    [[nodiscard]] bool attach(const L7Request& r);  // false: no open flow of its connection

    std::shared_ptr<const Attribution> attribution_;
    FlowExportOptions options_;
    std::unordered_map<Key, Entry, KeyHash> cache_;
    std::unordered_map<std::uint32_t, std::uint8_t> link_header_;  // ifindex -> bytes (from the snapshot)
    bool l7_index_on_ = false;
    std::unordered_multimap<Tuple, Where, TupleHash> l7_index_;
    std::deque<L7Request> l7_pending_;  // oldest first
    std::uint64_t next_id_ = 1;
    FlowExportHealth health_;
};

}  // namespace netprobe::analysis
