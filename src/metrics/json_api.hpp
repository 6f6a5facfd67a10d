// The JSON API's documents (/api/v1/interfaces, flows, connections, containers, pods):
// pure functions of the snapshot, the analysis views and the attribution.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "netprobe/analysis/attribution.hpp"
#include "netprobe/analysis/flows.hpp"
#include "netprobe/analysis/grouping.hpp"
#include "netprobe/analysis/pipeline.hpp"
#include "netprobe/collector/snapshot.hpp"
#include "netprobe/http/message.hpp"
#include "netprobe/util/ip.hpp"

namespace netprobe::metrics {

using analysis::Attribution;
using analysis::ContainerLabels;
using analysis::FlowRecord;
using analysis::Views;

struct FlowQuery {
    std::optional<std::string> interface;
    std::optional<std::uint8_t> direction;
    std::optional<std::uint8_t> protocol;
    std::optional<util::Addr16> src_ip, dst_ip, ip;  // ip: either end
    std::optional<std::uint16_t> src_port, dst_port, port;
    std::optional<std::string> ns;  // namespace=: src_namespace or dst_namespace (needs an attribution)
    std::optional<std::string> pod;  // pod=NAME or NAMESPACE/NAME: src_pod or dst_pod (needs an attribution)
    std::optional<std::string> container;  // container=: id or id prefix of either end's container (TCP)
    std::optional<std::uint8_t> encap;  // encap=: enum np_encap ("none": packets as on the wire)
    enum class Sort { Bytes, Packets, Rate, LastSeen } sort = Sort::Bytes;
    std::size_t limit = 100;
};

// Parses query parameters; unknown parameters and bad values are errors that
// name the parameter (the server answers 400 with it).
[[nodiscard]] std::expected<FlowQuery, std::string> parseFlowQuery(const http::QueryParams& params,
                                                                   std::size_t default_limit, std::size_t max_limit);
// interface: the name of the flow's interface.
[[nodiscard]] bool flowMatches(const FlowRecord& f, std::string_view interface, const FlowQuery& q);
// The /api/v1/flows document, serialized. With an attribution, each flow gains the
// FlowLabels fields it knows (src_namespace, src_pod, ..., dst_service); without one,
// a namespace= filter matches nothing.
[[nodiscard]] std::string flowsJson(const Views& v, const FlowQuery& q, const Attribution* attribution = nullptr);
// Appends v as a JSON string literal (non-ASCII bytes escaped as \u00XX).
void appendJsonString(std::string& out, std::string_view v);
// With an attribution, interfaces whose peer is in another network namespace (veths)
// gain a "peer" object: netns id/inode/name, peer index/name/addresses, and the pod.
[[nodiscard]] nlohmann::json interfacesJson(const collector::Snapshot& s, const Attribution* attribution = nullptr);
[[nodiscard]] std::string rfc3339(collector::WallTime t);
// /api/v1/diagnosis: the findings of the latest evaluation (enabled=false before one).
[[nodiscard]] std::string diagnosisJson(const analysis::DiagnosisView* view);
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
    const http::QueryParams& params, std::size_t default_limit, std::size_t max_limit);
[[nodiscard]] bool connectionMatches(const ebpf::Connection& c, const ConnectionQuery& q);
// stack may be null (stack monitor off): the document says so ("enabled": false).
// With an attribution, records of a container's socket gain container_id, pod_uid,
// cgroup_path (and namespace/pod/workload with Kubernetes). Serialized (members in key
// order; bytes of comm that are not UTF-8 as U+FFFD).
[[nodiscard]] std::string connectionsJson(const collector::Snapshot& s, const ConnectionQuery& q,
                                          const Attribution* attribution = nullptr);

// /api/v1/containers: the containers behind the connection records (by cgroup id,
// grouped by container id), with their connections, network namespaces, host veths and
// the traffic of the TCP flows matched with their sockets (tx: the container's socket
// sent, rx: received; one observation per 5-tuple, of the flows currently tracked).
// enabled: false without an attribution or the stack monitor's connection records.
[[nodiscard]] nlohmann::json containersJson(const Views& v, const Attribution* attribution);
// The /api/v1/pods document, serialized (enabled: with Kubernetes attribution).
[[nodiscard]] std::string podsJson(const Views& v);

}  // namespace netprobe::metrics
