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
[[nodiscard]] nlohmann::json interfacesJson(const collector::Snapshot& s);
[[nodiscard]] std::string rfc3339(collector::WallTime t);
[[nodiscard]] nlohmann::json tcpFlagNames(std::uint8_t flags);

// /api/v1/connections: open and recently closed TCP connections (stack monitor).
struct ConnectionQuery {
    enum class State { All, Open, Closed } state = State::All;
    std::optional<std::uint8_t> family;
    std::optional<util::Addr16> src_ip, dst_ip, ip;
    std::optional<std::uint16_t> src_port, dst_port, port;
    std::optional<std::uint32_t> pid;
    std::size_t limit = 100;
};
[[nodiscard]] std::expected<ConnectionQuery, std::string> parseConnectionQuery(
    const std::multimap<std::string, std::string>& params, std::size_t default_limit, std::size_t max_limit);
[[nodiscard]] bool connectionMatches(const ebpf::Connection& c, const ConnectionQuery& q);
// stack may be null (stack monitor off): the document says so ("enabled": false).
[[nodiscard]] nlohmann::json connectionsJson(const collector::Snapshot& s, const ConnectionQuery& q);

}  // namespace netprobe::metrics
