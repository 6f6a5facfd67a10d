// The L7 export: netprobe_l7_* metrics, /api/v1/l7/endpoints and /api/v1/l7/requests.
// Pure functions of the L7 view and the capture counters of the snapshot.
#pragma once

#include <expected>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/collector/snapshot.hpp>

namespace netprobe::metrics {

using QueryList = std::vector<std::pair<std::string, std::string>>;

// netprobe_l7_requests_total, netprobe_l7_request_duration_seconds, request/response
// bytes, and the capture's and parsers' health counters.
[[nodiscard]] std::string renderL7Metrics(const analysis::l7::L7View& view, const collector::L7Sample* capture);

struct L7Query {
    std::optional<std::string> protocol, service, side, method;
    std::optional<int> status;            // exact status code (HTTP status, DNS rcode, gRPC code number)
    std::optional<int> status_class;      // 1..5 (status=4xx; HTTP/1 and HTTP/2)
    std::optional<std::string> outcome;   // ok / error / client_error / unknown, any protocol
    std::optional<std::string> status_name;  // NXDOMAIN, NOT_FOUND, ...: analysis::l7::statusClass
    std::optional<double> min_duration;   // seconds
    std::size_t limit = 100;
};
// protocol, service, side, method, status (200, 4xx, a DNS rcode or gRPC code name, or an outcome: ok,
// error, client_error, unknown), min_duration (Go duration or seconds), limit; unknown parameters and bad values: an error naming them.
[[nodiscard]] std::expected<L7Query, std::string> parseL7Query(const QueryList& params, bool requests);
// view null: {"enabled": false}.
[[nodiscard]] std::string l7EndpointsJson(const analysis::l7::L7View* view, const L7Query& q);
[[nodiscard]] std::string l7RequestsJson(const analysis::l7::L7View* view, const L7Query& q);
// /api/v1/l7/dns/names: addresses named by DNS answers (optionally one address).
[[nodiscard]] std::string l7DnsNamesJson(const analysis::l7::L7View* view, const std::optional<util::Addr16>& ip);

}  // namespace netprobe::metrics
