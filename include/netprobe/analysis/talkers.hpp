// Top talkers: the stage behind the netprobe_top_talker_* series. Each interval's flow
// samples are added up per talker - (interface, direction, protocol, local address,
// peer address, server port) - so a client's ephemeral port is not a label, and a
// sticky top-K of the talkers is kept: a talker that entered the top-K keeps its
// series for at least the hold time, and is replaced afterwards only by a talker
// clearly heavier than its average. The label sets then change with the peers and
// services, not with every connection, and at most K talkers enter the top-K per
// hold time (over a window W: at most K x (W / hold + 2) distinct series). Everything else is summed in "other",
// so the series add up to the interval's traffic exactly. Per-flow 5-tuples stay in
// the flow view (/api/v1/flows).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

// Which end of the talker serves server_port. None: a protocol without ports.
enum class ServerSide : std::uint8_t { None = 0, Local = 1, Peer = 2 };
[[nodiscard]] const char* toString(ServerSide s);  // "", "local", "peer"

// local: the end on the agent's side of the interface - the destination of ingress
// packets, the source of egress packets (on the host side of a container's veth, the
// container is the peer). server_port: the port of the end that serves the connection;
// the other end's (ephemeral) port is dropped.
struct TalkerKey {
    util::Addr16 local{};
    util::Addr16 peer{};
    std::uint32_t ifindex = 0;
    std::uint16_t server_port = 0;
    std::uint8_t direction = 0;  // enum np_direction
    std::uint8_t proto = 0;      // IPPROTO_*
    ServerSide server = ServerSide::None;
    auto operator<=>(const TalkerKey&) const = default;
};
struct TalkerKeyHash {
    std::size_t operator()(const TalkerKey& k) const noexcept;
};

struct TalkerTraffic {
    TalkerKey key;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

// The server end of flows. TCP: the connection records of local sockets (the stack
// monitor's open and recently closed connections) say which end is the server -
// the remote end of a connect(), the local end of an accepted connection (a
// listening socket) - and the stage remembers those endpoints (address, port; at
// most max_learned, least recently confirmed forgotten first), so later connections
// to the same service resolve even once their records are gone. Otherwise (UDP,
// connections the monitor did not see, --socket-monitor=off): the lower port, which
// is the service's for the usual split of well-known/registered ports below the
// ephemeral range (32768-60999 on Linux, 49152-65535 elsewhere); equal ports: the
// lower address.
class ServerEndpoints {
public:
    explicit ServerEndpoints(std::size_t max_learned = 4096) : max_learned_(max_learned) {}
    // The servers of these connection records, confirmed at now_ns (monotonic).
    void learn(std::span<const ebpf::Connection> connections, std::uint64_t now_ns);
    // The talker of one flow observation.
    [[nodiscard]] TalkerKey talkerOf(const flow_key& k) const;
    [[nodiscard]] std::size_t size() const { return learned_.size(); }

private:
    struct Endpoint {
        util::Addr16 addr{};
        std::uint16_t port = 0;
        std::uint8_t proto = 0;
        bool operator==(const Endpoint&) const = default;
    };
    struct EndpointHash {
        std::size_t operator()(const Endpoint& e) const noexcept;
    };
    [[nodiscard]] bool isServer(const util::Addr16& addr, std::uint16_t port, std::uint8_t proto) const;
    std::unordered_map<Endpoint, std::uint64_t, EndpointHash> learned_;  // -> last confirmed (ns)
    std::size_t max_learned_;
};

// The interval's traffic per talker (samples with no packets are skipped).
[[nodiscard]] std::vector<TalkerTraffic> talkerTraffic(std::span<const collector::FlowSample> samples,
                                                       const ServerEndpoints& servers);

struct TalkerSelectorOptions {
    std::size_t k = 20;                                  // talkers with their own series
    std::chrono::nanoseconds hold = std::chrono::minutes(5);  // least time in the top-K
    // A challenger takes the place of a member (past its hold) only when its rate is
    // more than margin x the member's average rate (exponential, time constant: hold).
    double margin = 2.0;
};

struct TalkerSelection {
    std::vector<TalkerTraffic> top;  // the members, by bytes then key; idle ones with 0
    std::uint64_t other_packets = 0, other_bytes = 0;  // every other talker
    std::size_t talkers = 0;                             // talkers with traffic in the interval
    std::uint64_t entered = 0;  // talkers that entered the top-K this interval
};

// The sticky top-K over successive intervals; time is injected (monotonic).
//  - free slots are filled at once, heaviest talker first;
//  - a member stays at least `hold` after it entered, traffic or not;
//  - past its hold, a member is replaced by a challenger whose rate this interval is
//    more than margin x the member's average rate (the weakest members first, by the
//    heaviest challengers), and it is dropped once idle for `hold`.
// So a slot changes talker at most once per hold, and a talker that keeps its rate
// keeps its series.
class TalkerSelector {
public:
    explicit TalkerSelector(TalkerSelectorOptions options) : o_(options) {}
    // One interval of `seconds` ending at `now` (0: the first collection, no rates);
    // traffic holds each talker once.
    [[nodiscard]] TalkerSelection update(std::span<const TalkerTraffic> traffic, std::chrono::nanoseconds now,
                                         double seconds);
    [[nodiscard]] std::uint64_t enteredTotal() const { return entered_total_; }

private:
    struct Member {
        TalkerKey key;
        std::chrono::nanoseconds since{};        // entered the top-K
        std::chrono::nanoseconds last_active{};  // last interval with packets
        double avg_rate = 0;                     // bytes/s, exponential average since it entered
        bool rated = false;                      // avg_rate holds a rate (not before a timed interval)
        std::uint64_t packets = 0, bytes = 0;    // this interval
    };
    TalkerSelectorOptions o_;
    std::vector<Member> members_;
    std::uint64_t entered_total_ = 0;
};

struct TalkerRow {
    TalkerTraffic traffic;
    std::string interface;  // the name of traffic.key.ifindex
};

struct TalkerView {
    std::vector<TalkerRow> top;                          // by interval bytes, descending
    std::uint64_t other_packets = 0, other_bytes = 0;    // the interval's other talkers
    std::size_t talkers = 0;                             // talkers with traffic in the interval
    std::uint64_t entered_total = 0;                     // talkers that entered the top-K since start
    std::size_t k = 0;
    std::chrono::nanoseconds hold{};
};

struct TopTalkersOptions {
    TalkerSelectorOptions selector;
    std::size_t max_learned_servers = 4096;
};

class TopTalkers final : public Stage {
public:
    explicit TopTalkers(TopTalkersOptions options)
        : options_(options), servers_(options.max_learned_servers), selector_(options.selector) {}
    [[nodiscard]] std::string_view name() const override { return "talkers"; }
    // Reads the snapshot's flow samples and connection records; interface names from
    // the flow view when the flow accounting stage ran before it.
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    TopTalkersOptions options_;
    ServerEndpoints servers_;
    TalkerSelector selector_;
};

}  // namespace netprobe::analysis
