// The L7 export (see l7.hpp).
#include <netprobe/metrics/l7.hpp>

#include <algorithm>
#include <array>
#include <string_view>

#include <nlohmann/json.hpp>

#include <netprobe/l7/amqp.hpp>
#include <netprobe/l7/dns.hpp>
#include <netprobe/l7/kafka.hpp>
#include <netprobe/l7/parser.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/util/duration.hpp>
#include <netprobe/util/ip.hpp>
#include <netprobe/util/parse.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {
namespace {

using analysis::l7::kDurationBuckets;

constexpr std::array<std::string_view, 9> kL7Protocols = {"http",     "http2", "grpc",  "dns", "redis",
                                                          "postgres", "mysql", "kafka", "amqp"};

// a DNS rcode or gRPC code name (what statusClass gives those protocols)
bool isStatusName(std::string_view v) {
    for (int c = 0; c <= 16; ++c)
        if (v == netprobe::l7::grpcStatusName(c)) return true;
    if (v == "UNKNOWN_OUTCOME") return true;
    for (int rc = 0; rc < 16; ++rc)
        if (v == netprobe::l7::dnsRcodeName(static_cast<std::uint8_t>(rc))) return true;
    for (int code = -1; const char* name = netprobe::l7::kafkaErrorName(code); ++code)
        if (v == name) return true;
    for (int code = 200; code < 600; ++code)
        if (const char* name = netprobe::l7::amqpReplyName(code); name && v == name) return true;
    return false;
}

// ok, error (a server-side failure), client_error, or unknown (the answer was not seen whole)
std::string_view outcome(const analysis::l7::Request& r) {
    if (analysis::l7::isError(r)) return "error";
    if (analysis::l7::isClientError(r)) return "client_error";
    const std::string sc = analysis::l7::statusClass(r);
    return sc == "unknown" || sc == "UNKNOWN_OUTCOME" ? "unknown" : "ok";
}

std::string bucketLabel(double le) {
    std::string s;
    appendValue(s, le);
    return s;
}

}  // namespace

std::string renderL7Metrics(const analysis::l7::L7View& v, const collector::L7Sample* capture) {
    ExpositionWriter w;
    w.family("netprobe_l7_requests_total", MetricType::Counter,
             "Application-layer requests answered, by protocol, side (server: this node's process read the request; "
             "client: it sent it), service (the server: Kubernetes service or workload, else address:port; "
             "a bounded set, then \"other\"), method and status class.");
    for (const auto& [k, t] : v.series)
        w.sample("netprobe_l7_requests_total",
                 {{"protocol", k.protocol}, {"side", k.side}, {"service", k.service}, {"method", k.method},
                  {"status_class", k.status_class}},
                 t.requests);
    w.family("netprobe_l7_request_duration_seconds", MetricType::Histogram,
             "Time from a request's first byte to its response's first byte, at the side that saw them.");
    for (const auto& [k, t] : v.series) {
        std::vector<Label> labels = {{"protocol", k.protocol}, {"side", k.side}, {"service", k.service},
                                     {"method", k.method}, {"status_class", k.status_class}};
        std::uint64_t cum = 0;
        for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
            cum += t.buckets[i];
            auto l = labels;
            l.push_back({"le", bucketLabel(kDurationBuckets[i])});
            w.sample("netprobe_l7_request_duration_seconds_bucket", l, cum);
        }
        auto l = labels;
        l.push_back({"le", "+Inf"});
        w.sample("netprobe_l7_request_duration_seconds_bucket", l, t.requests);
        w.sample("netprobe_l7_request_duration_seconds_sum", labels, t.duration_sum);
        w.sample("netprobe_l7_request_duration_seconds_count", labels, t.requests);
    }
    w.family("netprobe_l7_request_bytes_total", MetricType::Counter, "Bytes of the requests counted, headers and body.");
    for (const auto& [k, t] : v.series)
        w.sample("netprobe_l7_request_bytes_total",
                 {{"protocol", k.protocol}, {"side", k.side}, {"service", k.service}, {"method", k.method},
                  {"status_class", k.status_class}},
                 t.request_bytes);
    w.family("netprobe_l7_response_bytes_total", MetricType::Counter, "Bytes of their responses, headers and body.");
    for (const auto& [k, t] : v.series)
        w.sample("netprobe_l7_response_bytes_total",
                 {{"protocol", k.protocol}, {"side", k.side}, {"service", k.service}, {"method", k.method},
                  {"status_class", k.status_class}},
                 t.response_bytes);

    const auto& c = v.counters;
    const auto& p = c.parse;
    w.family("netprobe_l7_parse_events_total", MetricType::Counter,
             "What the L7 parsers met, by kind: unanswered (a request whose connection closed first), "
             "unmatched_response (a response without its request: capture began mid-connection), desync (framing lost "
             "and found again at a start line), connection_table_full (messages not parsed), requests_dropped "
             "(completed requests not held between two collections), other_protocol (messages of protocols without "
             "a parser), not_parsed (messages on a DNS socket that are not a standard query or response), expired (idle "
             "connections forgotten), service_overflow / endpoint_overflow / method_overflow / topic_overflow "
             "(requests labelled \"other\": service, route, gRPC method, Kafka topic or AMQP queue), "
             "dns_names_dropped, mesh_proxy_leg (a "
             "request seen on a mesh sidecar's leg, not counted: the application's own socket saw it).");
    const std::pair<const char*, std::uint64_t> kinds[] = {
        {"unanswered", p.unanswered},          {"unmatched_response", p.unmatched_responses},
        {"desync", p.desyncs},                 {"connection_table_full", p.connections_dropped},
        {"requests_dropped", p.requests_dropped}, {"other_protocol", p.other_protocol},
        {"not_parsed", p.not_parsed},
        {"expired", p.connections_expired},    {"service_overflow", c.services_overflow},
        {"endpoint_overflow", c.endpoints_overflow}, {"method_overflow", c.methods_overflow},
        {"topic_overflow", c.topics_overflow},
        {"dns_names_dropped", c.dns_names_dropped}, {"mesh_proxy_leg", c.mesh_proxy_legs}};
    for (const auto& [k, n] : kinds) w.sample("netprobe_l7_parse_events_total", {{"kind", k}}, n);
    w.family("netprobe_l7_dns_names", MetricType::Gauge,
             "Addresses named by unexpired DNS answers (/api/v1/l7/dns/names); answers not kept for lack of room: "
             "netprobe_l7_parse_events_total{kind=\"dns_names_dropped\"}.");
    w.sample("netprobe_l7_dns_names", {}, static_cast<std::uint64_t>(v.dns_names.size()));
    w.family("netprobe_l7_dns_unanswered_total", MetricType::Counter,
             "DNS queries that got no answer, per server (service) and side: the client closed its socket or sent "
             "the same id again before a response, or 30 s passed (the dns_timeouts diagnosis rule).");
    for (const auto& t : v.dns_timeouts)
        w.sample("netprobe_l7_dns_unanswered_total", {{"service", t.service}, {"side", t.side}}, t.total);
    w.family("netprobe_l7_connections", MetricType::Gauge, "Connections with L7 parser state.");
    w.sample("netprobe_l7_connections", {}, static_cast<std::uint64_t>(v.connections));
    w.family("netprobe_l7_messages_total", MetricType::Counter, "Captured messages processed by the L7 parsers.");
    w.sample("netprobe_l7_messages_total", {}, p.messages);

    if (capture) {
        const auto& k = capture->kernel;
        w.family("netprobe_l7_capture_syscalls_total", MetricType::Counter,
                 "Data syscalls on TCP and UDP sockets that moved bytes, seen by the L7 capture (captured or not).");
        w.sample("netprobe_l7_capture_syscalls_total", {}, k[NP_L7_CNT_SOCKET_SYSCALLS]);
        w.family("netprobe_l7_capture_skipped_total", MetricType::Counter,
                 "Syscalls on connections whose first messages showed no known protocol (not captured).");
        w.sample("netprobe_l7_capture_skipped_total", {}, k[NP_L7_CNT_SKIPPED_NONE]);
        w.family("netprobe_l7_capture_records_total", MetricType::Counter, "Records the kernel wrote to the L7 ring.");
        w.sample("netprobe_l7_capture_records_total", {}, k[NP_L7_CNT_EVENTS]);
        w.family("netprobe_l7_capture_lost_total", MetricType::Counter,
                 "Captured messages lost, by where: ring_full (the kernel found no room in the ring), args_full (the "
                 "table of TLS library calls in progress was full), conns_full (the connection table was full), "
                 "read_failed (user memory not readable), tls_no_socket (TLS "
                 "plaintext whose socket was not known: a connection whose TLS calls never reached a syscall since "
                 "the agent started).");
        w.sample("netprobe_l7_capture_lost_total", {{"where", "ring_full"}}, k[NP_L7_CNT_RING_FULL]);
        w.sample("netprobe_l7_capture_lost_total", {{"where", "args_full"}}, k[NP_L7_CNT_ARGS_FULL]);
        w.sample("netprobe_l7_capture_lost_total", {{"where", "conns_full"}}, k[NP_L7_CNT_CONNS_FULL]);
        w.sample("netprobe_l7_capture_lost_total", {{"where", "read_failed"}}, k[NP_L7_CNT_READ_FAILED]);
        w.sample("netprobe_l7_capture_lost_total", {{"where", "tls_no_socket"}}, k[NP_L7_CNT_TLS_NO_SOCKET]);
        w.family("netprobe_l7_tls_libraries", MetricType::Gauge,
                 "OpenSSL libraries (libssl.so files mapped by processes) whose SSL_read/SSL_write are probed.");
        w.sample("netprobe_l7_tls_libraries", {}, static_cast<std::uint64_t>(capture->tls_libraries));
    }
    return w.take();
}

std::expected<L7Query, std::string> parseL7Query(const QueryList& params, bool requests) {
    L7Query q;
    auto bad = [](const std::string& k, const std::string& v, const char* why) {
        return std::unexpected("bad value \"" + v + "\" for parameter \"" + k + "\": " + why);
    };
    for (const auto& [k, v] : params) {
        if (k == "protocol") {
            if (std::ranges::find(kL7Protocols, v) == kL7Protocols.end())
                return bad(k, v, "expected http, http2, grpc, dns, redis, postgres, mysql, kafka or amqp");
            q.protocol = v;
        } else if (k == "service") {
            if (v.empty()) return bad(k, v, "expected a service name or address:port");
            q.service = v;
        } else if (k == "side") {
            if (v != "client" && v != "server") return bad(k, v, "expected client or server");
            q.side = v;
        } else if (k == "method") {
            if (v.empty() || v.size() > 32) return bad(k, v, "expected a method, command or statement type");
            q.method = v;
        } else if (k == "status" && requests) {
            int n = 0;
            if (v.size() == 3 && v[0] >= '1' && v[0] <= '5' && (v.substr(1) == "xx" || v.substr(1) == "XX"))
                q.status_class = v[0] - '0';
            else if (util::parseNumber(v, n) && n >= 0 && n <= 599)
                q.status = n;
            else if (v == "ok" || v == "error" || v == "client_error" || v == "unknown")
                q.outcome = v;
            else if (isStatusName(v))
                q.status_name = v;
            else
                return bad(k, v,
                           "expected a status code (404), a class (4xx), a DNS response code (NXDOMAIN), a gRPC "
                           "code (NOT_FOUND), a Kafka error (UNKNOWN_TOPIC_OR_PARTITION), an AMQP reply code "
                           "(PRECONDITION_FAILED), or an outcome: ok, error, client_error, unknown");
        } else if (k == "min_duration" && requests) {
            double secs = 0;
            if (auto d = util::parseDuration(v)) {
                secs = std::chrono::duration<double>(*d).count();
            } else if (!util::parseNumber(v, secs) || secs < 0) {
                return bad(k, v, "expected a duration (50ms, 1.5s) or seconds");
            }
            q.min_duration = secs;
        } else if (k == "limit") {
            std::size_t n = 0;
            if (!util::parseNumber(v, n) || n == 0 || n > 10000) return bad(k, v, "expected 1..10000");
            q.limit = n;
        } else {
            return std::unexpected("unknown parameter \"" + k + "\" (known: protocol, service, side, method" +
                                   std::string(requests ? ", status, min_duration" : "") + ", limit)");
        }
    }
    return q;
}

std::string l7EndpointsJson(const analysis::l7::L7View* v, const L7Query& q) {
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    auto arr = nlohmann::json::array();
    std::size_t total = 0;
    if (v) {
        j["window_seconds"] = v->window.count();
        for (const auto& e : v->endpoints) {
            if ((q.protocol && e.protocol != *q.protocol) || (q.service && e.service != *q.service) ||
                (q.side && e.side != *q.side) || (q.method && e.method != *q.method))
                continue;
            ++total;
            if (arr.size() >= q.limit) continue;
            arr.push_back({{"protocol", e.protocol},
                           {"side", e.side},
                           {"service", e.service},
                           {"method", e.method},
                           {"route", e.route},
                           {"requests", e.requests},
                           {"errors", e.errors},
                           {"client_errors", e.client_errors},
                           {"rate", e.rate},
                           {"error_rate", e.error_rate},
                           {"p50_seconds", e.p50},
                           {"p90_seconds", e.p90},
                           {"p99_seconds", e.p99},
                           {"request_bytes", e.request_bytes},
                           {"response_bytes", e.response_bytes},
                           {"requests_total", e.requests_total},
                           {"errors_total", e.errors_total}});
        }
    }
    j["total"] = total;
    j["returned"] = arr.size();
    j["endpoints"] = std::move(arr);
    // DNS servers' unanswered queries (not requests: no response, so in no endpoint's figures).
    auto to = nlohmann::json::array();
    if (v && (!q.protocol || *q.protocol == "dns"))
        for (const auto& t : v->dns_timeouts) {
            if ((q.service && t.service != *q.service) || (q.side && t.side != *q.side)) continue;
            auto names = nlohmann::json::array();
            for (const auto& [n, c] : t.names) names.push_back({{"name", n}, {"queries", c}});
            to.push_back({{"service", t.service}, {"side", t.side}, {"timeouts", t.timeouts},
                          {"timeouts_total", t.total}, {"max_wait_seconds", t.max_wait_seconds}, {"names", names}});
        }
    j["dns_timeouts"] = std::move(to);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string l7RequestsJson(const analysis::l7::L7View* v, const L7Query& q) {
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    auto arr = nlohmann::json::array();
    std::size_t total = 0;
    if (v) {
        // newest first
        for (auto it = v->recent.rbegin(); it != v->recent.rend(); ++it) {
            const auto& r = *it;
            const char* side = analysis::l7::sideName(r.side);
            if ((q.protocol && r.protocol != *q.protocol) || (q.service && r.service != *q.service) ||
                (q.side && side != *q.side) || (q.method && r.method != *q.method) ||
                (q.status && r.status != *q.status) || (q.outcome && outcome(r) != *q.outcome) ||
                (q.status_name && analysis::l7::statusClass(r) != *q.status_name) ||
                (q.status_class && ((r.protocol != "http" && r.protocol != "http2") || r.status / 100 != *q.status_class)) ||
                (q.min_duration && r.duration_seconds < *q.min_duration))
                continue;
            ++total;
            if (arr.size() >= q.limit) continue;
            nlohmann::json answers = nlohmann::json::array();
            for (const auto& a : r.answers) {
                if (a.type == 5)
                    answers.push_back({{"name", a.name}, {"type", "CNAME"}, {"ttl", a.ttl}, {"target", a.target}});
                else
                    answers.push_back({{"name", a.name}, {"type", a.type == 1 ? "A" : "AAAA"}, {"ttl", a.ttl},
                                       {"address", util::formatAddr(a.addr)}});
            }
            arr.push_back({{"time", rfc3339(r.time)},
                           {"protocol", r.protocol},
                           {"side", side},
                           {"service", r.service},
                           {"method", r.method},
                           {"path", r.path},
                           {"route", r.route},
                           {"status", r.status},
                           {"status_class", analysis::l7::statusClass(r)},
                           {"outcome", outcome(r)},
                           {"duration_seconds", r.duration_seconds},
                           {"request_bytes", r.request_bytes},
                           {"response_bytes", r.response_bytes},
                           {"pid", r.pid},
                           {"cgroup_id", r.cgroup_id},
                           {"client", util::formatAddr(r.client)},
                           {"client_port", r.client_port},
                           {"server", util::formatAddr(r.server)},
                           {"server_port", r.server_port}});
            if (!r.error.empty()) arr.back()["error"] = r.error;
            if (r.protocol == "dns") {
                arr.back()["rcode"] = netprobe::l7::dnsRcodeName(static_cast<std::uint8_t>(r.status));
                arr.back()["answers"] = std::move(answers);
            }
        }
    }
    j["total"] = total;
    j["returned"] = arr.size();
    j["requests"] = std::move(arr);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string l7DnsNamesJson(const analysis::l7::L7View* v, const std::optional<util::Addr16>& ip) {
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    auto arr = nlohmann::json::array();
    if (v)
        for (const auto& n : v->dns_names)
            if (!ip || n.addr == *ip)
                arr.push_back({{"address", util::formatAddr(n.addr)}, {"name", n.name}, {"expires", rfc3339(n.expires)}});
    j["count"] = arr.size();
    j["names"] = std::move(arr);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
