// netprobe::analysis::Topology - who talks to whom: conversations (client -> server:port
// over a transport), oriented by the connection (who connected, who accepted), with
// their figures over a sliding window kept in time slots. Node grouping (host, workload,
// namespace, ...) is the export's choice: the view holds conversations at the finest
// grain (addresses) with what is known of each address, and the export aggregates.
//
// Orientation: a TCP conversation whose local socket the stack monitor saw connect()
// (active) or accept (passive) is oriented by that; otherwise the direction the kernel
// saw first is the client's, then an ephemeral port facing a non-ephemeral one, then the
// lower port is the server's. A guessed orientation is corrected (figures moved) when a
// connection record or an L7 request gives the definitive one.
//
// Bytes and packets come from the datapath's flow samples; a packet seen on several
// interfaces (a routed or bridged path through the node) counts once: each directed
// 5-tuple is counted at the interface and direction where it was first seen. Connections (opened, failed),
// retransmits and RTT come from the stack monitor's connection records; requests, errors
// and latency from the L7 capture's requests when --l7 is on.
//
// Bounded: at most max_conversations (later ones: counted, not kept); slots older than
// the window are dropped; conversations idle for the whole window are forgotten.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

class Attribution;

// A subnet of this node: an interface address's prefix or a route's destination (the
// agent's netns; a background task dumps them over netlink). Segments by subnet
// ("subnet:<cidr>") come from these.
struct LocalSubnet {
    util::Addr16 network{};  // IPv4 mapped, host bits cleared
    unsigned bits = 0;       // prefix length over the 128-bit form (an IPv4 /24: 96 + 24)
    std::string cidr;        // "198.18.1.0/24", "fd6e:7072:1::/64"
};
using LocalSubnets = std::vector<LocalSubnet>;  // longest prefix first
// Unspecified, loopback, link-local or multicast (IPv4 0/8 and 127/8 included): never a
// subnet of its own, never "external".
[[nodiscard]] bool specialAddress(const util::Addr16& addr);
// A subnet from an address and its prefix length in its family's bits; nullopt for what
// segments nothing: a default route (/0), a host prefix (/32, /128), loopback,
// link-local, multicast.
[[nodiscard]] std::optional<LocalSubnet> localSubnet(const util::Addr16& addr, unsigned family_len);
// Sorted longest first, duplicates removed.
[[nodiscard]] LocalSubnets normalizeSubnets(std::vector<LocalSubnet> subnets);
// The longest local subnet holding addr, or null.
[[nodiscard]] const LocalSubnet* subnetOf(const LocalSubnets& subnets, const util::Addr16& addr);

// A named group of remote addresses (--topology-group NAME=CIDR[,CIDR...]): in the graph,
// an end in one of its prefixes (without a workload, pod or DNS name) is the node
// "group:NAME" instead of its address.
struct CidrGroup {
    std::string name;
    std::vector<LocalSubnet> prefixes;  // longest first
};
using CidrGroups = std::vector<CidrGroup>;
// "NAME=CIDR[,CIDR...]" (name: letters, digits, '-', '_', '.', at most 63; CIDR: IPv4 or
// IPv6 prefix, /0 allowed): a group, or why not.
[[nodiscard]] std::expected<CidrGroup, std::string> parseCidrGroup(std::string_view text);
// The group holding addr by the longest prefix over all groups, or null.
[[nodiscard]] const CidrGroup* groupOf(const CidrGroups& groups, const util::Addr16& addr);

struct TopologyOptions {
    std::chrono::seconds slot{10};            // time resolution of the window figures
    std::size_t slots = 90;                   // window kept: slots x slot (15 min)
    std::size_t max_conversations = 20000;
    // This node's subnets (may be null or return null: no segments by subnet); read at
    // each run and carried in the view.
    std::function<std::shared_ptr<const LocalSubnets>()> subnets;
    std::shared_ptr<const CidrGroups> groups;  // --topology-group (null or empty: none)
};

// Request latency buckets of the topology's L7 figures (seconds; + Inf).
inline constexpr std::array<double, 12> kTopologyLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                   0.1,   0.25,   0.5,   1,    2.5,   10};

struct TopologyL7 {
    std::string protocol;  // the last seen
    std::uint64_t requests = 0, errors = 0;
    std::array<std::uint32_t, kTopologyLatencyBuckets.size() + 1> latency{};  // non-cumulative; last: +Inf
};

struct TopologySlot {
    std::int64_t id = 0;  // monotonic time / slot length
    std::uint64_t bytes_out = 0, packets_out = 0;  // client -> server
    std::uint64_t bytes_in = 0, packets_in = 0;    // server -> client
    std::uint32_t opened = 0, failed = 0;          // connections seen opening / failing
    std::uint32_t retransmits = 0;                 // both ends'
    std::uint32_t retrans_client = 0, retrans_server = 0;  // segments each end's socket retransmitted
    std::uint32_t drops_to_server = 0, drops_to_client = 0;  // packets the kernel dropped, by direction
    // the same by the kernel's drop reason (enum skb_drop_reason; both directions), only
    // in slots that had a drop
    std::shared_ptr<const std::map<std::uint32_t, std::uint64_t>> drop_reasons;
    std::uint64_t rtt_us_sum = 0;                  // connections' smoothed RTT, one sample each per collection
    std::uint32_t rtt_samples = 0;
    std::shared_ptr<const TopologyL7> l7_server, l7_client;  // requests seen at the server's / client's end
};

// What is known of one end's address.
struct TopologyEnd {
    util::Addr16 ip{};
    std::uint8_t family = 4;
    std::string ns, pod, workload;  // Kubernetes (attribution), when known
    std::string service;            // server end: the Kubernetes service, when known
    std::string process;            // a local process seen on this end's socket (comm), when known
    std::string container;          // the container of that socket's cgroup (12-digit short id), when known
    std::string mesh;               // the pod's service mesh sidecar ("istio", "linkerd"), when known
};

struct Conversation {
    TopologyEnd client, server;
    std::uint16_t port = 0;       // the server's
    std::uint8_t ip_proto = 6;    // IPPROTO_TCP / UDP / ...
    bool oriented_by_socket = false;  // by connect()/accept(), not by the port heuristic
    // A TLS ClientHello went client -> server (name capture at TC): the bytes are TLS (between
    // two mesh pods: mTLS between their sidecars). sni: its server name.
    bool tls = false;
    std::string sni;
    std::uint64_t first_seen_ns = 0, last_seen_ns = 0;  // monotonic
    std::vector<TopologySlot> slots;  // oldest first, only slots with activity
};

struct TopologyView {
    std::chrono::seconds slot{10};
    std::size_t slots = 90;
    std::int64_t now_slot = 0;                 // the slot of the snapshot
    std::uint64_t now_ns = 0;
    std::vector<std::shared_ptr<const Conversation>> conversations;  // immutable, shared across views
    std::uint64_t overflow = 0;                // conversations not kept (budget), since start
    std::uint64_t samples_unoriented = 0;      // flow samples without ports (ICMP, ...): not conversations
    std::shared_ptr<const LocalSubnets> subnets;  // this node's subnets (null: unknown)
    std::shared_ptr<const CidrGroups> groups;     // the configured address groups (null: none)
};

// The view's TCP conversations by (client, server, server port): the QoS samples' and the
// hotspots' way back to the conversations' ends.
using TcpConversationKey = std::tuple<util::Addr16, util::Addr16, std::uint16_t>;
[[nodiscard]] std::map<TcpConversationKey, const Conversation*> tcpConversations(const TopologyView& v);

// The slots covering the last `seconds` (rounded up to whole slots, 1 .. the view's).
[[nodiscard]] std::size_t windowSlots(const TopologyView& v, std::size_t seconds);
// What they cover, in seconds.
[[nodiscard]] inline double windowSeconds(const TopologyView& v, std::size_t slots) {
    return static_cast<double>(slots) * static_cast<double>(std::max<std::int64_t>(v.slot.count(), 1));
}

// The figures of a conversation over the last `window` slots (window <= the view's).
struct ConversationTotals {
    std::uint64_t bytes_out = 0, packets_out = 0, bytes_in = 0, packets_in = 0;
    std::uint64_t opened = 0, failed = 0, retransmits = 0;
    std::uint64_t retrans_client = 0, retrans_server = 0;
    std::uint64_t drops_to_server = 0, drops_to_client = 0;
    std::map<std::uint32_t, std::uint64_t> drop_reasons;  // enum skb_drop_reason -> packets
    double rtt_ms = 0;  // mean of the samples (0: none)
    bool l7 = false;
    std::string l7_protocol;
    std::uint64_t requests = 0, errors = 0;
    std::array<std::uint64_t, kTopologyLatencyBuckets.size() + 1> latency{};
};
[[nodiscard]] ConversationTotals totals(const Conversation& c, const TopologyView& v, std::size_t window_slots);
// Quantile q (0..1) of a latency histogram, interpolated within its bucket; 0 when empty.
[[nodiscard]] double latencyQuantile(const std::array<std::uint64_t, kTopologyLatencyBuckets.size() + 1>& h, double q);

// Automatic segmentation of a graph (pure): nodes that talk mostly among themselves form
// a segment. A node with a Kubernetes namespace is in that namespace's segment
// ("ns:<name>"); else a node with an address in one of this node's subnets is in that
// subnet's segment ("subnet:<cidr>"; precedence: namespace > subnet > community); the
// others are grouped by weighted label propagation over the edges
// (weights: bytes; deterministic: nodes in id order, ties to the smaller label, at most
// 20 rounds), each community named after its busiest member ("cluster:<id>"). Returns
// the segment of each node, in the order given.
struct SegmentInput {
    std::vector<std::string> nodes;      // ids
    std::vector<std::string> ns;         // the node's namespace, "" if none (same order)
    std::vector<std::string> subnet;     // the node's local subnet (cidr), "" if none (same order; may be empty)
    struct Edge {
        std::size_t a = 0, b = 0;
        double weight = 0;
    };
    std::vector<Edge> edges;
};
[[nodiscard]] std::vector<std::string> segmentGraph(const SegmentInput& in);
// A segment's display name: the namespace, the subnet, or "<busiest member> and peers".
[[nodiscard]] std::string segmentName(const std::string& segment);

class Topology final : public Stage {
public:
    explicit Topology(TopologyOptions options = {}, std::shared_ptr<const Attribution> attribution = nullptr);
    ~Topology() override;
    [[nodiscard]] std::string_view name() const override { return "topology"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace netprobe::analysis
