// JSON views of a snapshot (/api/v1/interfaces, /api/v1/flows). Pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "netprobe/collector/snapshot.hpp"
#include "netprobe/metrics/attribution.hpp"
#include "netprobe/util/ip.hpp"

namespace netprobe::metrics {

struct FlowQuery {
    std::optional<std::string> interface;
    std::optional<std::uint8_t> direction;
    std::optional<std::uint8_t> protocol;
    std::optional<util::Addr16> src_ip, dst_ip, ip;  // ip: either end
    std::optional<std::uint16_t> src_port, dst_port, port;
    std::optional<std::string> ns;  // namespace=: src_namespace or dst_namespace (needs an attribution)
    std::optional<std::string> container;  // container=: id or id prefix of either end's container (TCP)
    enum class Sort { Bytes, Packets, Rate, LastSeen } sort = Sort::Bytes;
    std::size_t limit = 100;
};

// Parses query parameters; unknown parameters and bad values are errors that
// name the parameter (the server answers 400 with it).
[[nodiscard]] std::expected<FlowQuery, std::string> parseFlowQuery(const std::multimap<std::string, std::string>& params,
                                                                   std::size_t default_limit, std::size_t max_limit);
[[nodiscard]] bool flowMatches(const collector::FlowRecord& f, const FlowQuery& q);
// The /api/v1/flows document, serialized. With an attribution, each flow gains the
// FlowLabels fields it knows (src_namespace, src_pod, ..., dst_service); without one,
// a namespace= filter matches nothing.
[[nodiscard]] std::string flowsJson(const collector::Snapshot& s, const FlowQuery& q,
                                    const Attribution* attribution = nullptr);
// Appends v as a JSON string literal (non-ASCII bytes escaped as \u00XX).
void appendJsonString(std::string& out, std::string_view v);
// With an attribution, interfaces whose peer is in another network namespace (veths)
// gain a "peer" object: netns id/inode/name, peer index/name/addresses, and the pod.
[[nodiscard]] nlohmann::json interfacesJson(const collector::Snapshot& s, const Attribution* attribution = nullptr);
[[nodiscard]] std::string rfc3339(collector::WallTime t);
[[nodiscard]] nlohmann::json tcpFlagNames(std::uint8_t flags);

// /api/v1/connections: open and recently closed TCP connections (stack monitor).
struct ConnectionQuery {
    enum class State { All, Open, Closed } state = State::All;
    std::optional<std::uint8_t> family;
    std::optional<util::Addr16> src_ip, dst_ip, ip;
    std::optional<std::uint16_t> src_port, dst_port, port;
    std::optional<std::uint32_t> pid;
    std::optional<std::string> container;  // container=: container id or id prefix (needs an attribution)
    std::size_t limit = 100;
};
[[nodiscard]] std::expected<ConnectionQuery, std::string> parseConnectionQuery(
    const std::multimap<std::string, std::string>& params, std::size_t default_limit, std::size_t max_limit);
[[nodiscard]] bool connectionMatches(const ebpf::Connection& c, const ConnectionQuery& q);
// stack may be null (stack monitor off): the document says so ("enabled": false).
// With an attribution, records of a container's socket gain container_id, pod_uid,
// cgroup_path (and namespace/pod/workload with Kubernetes).
[[nodiscard]] nlohmann::json connectionsJson(const collector::Snapshot& s, const ConnectionQuery& q,
                                             const Attribution* attribution = nullptr);

// /api/v1/containers: the containers behind the connection records (by cgroup id,
// grouped by container id), with their connections, network namespaces, host veths and
// the traffic of the TCP flows matched with their sockets (tx: the container's socket
// sent, rx: received; one observation per 5-tuple, of the flows currently tracked).
// enabled: false without an attribution or the stack monitor's connection records.
[[nodiscard]] nlohmann::json containersJson(const collector::Snapshot& s, const Attribution* attribution);

// TCP flows -> the connection records of their local sockets, for the flows' container
// fields. A flow a->b matches the record whose local end is a (the sender's socket) and
// the record whose local end is b (the receiver's), whichever the node has.
class ConnectionIndex {
public:
    explicit ConnectionIndex(const collector::Snapshot& s);
    // The cgroup id of the socket bound to (ip, port) talking to (peer_ip, peer_port); 0 if none.
    [[nodiscard]] std::uint64_t cgroupOf(const util::Addr16& ip, std::uint16_t port, const util::Addr16& peer_ip,
                                         std::uint16_t peer_port) const;
    [[nodiscard]] bool empty() const { return by_tuple_.empty(); }

private:
    struct Key {
        util::Addr16 ip, peer_ip;
        std::uint16_t port, peer_port;
        auto operator<=>(const Key&) const = default;
    };
    std::map<Key, std::uint64_t> by_tuple_;
};

}  // namespace netprobe::metrics
