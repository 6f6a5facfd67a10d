#include <netprobe/assistant/tools.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <limits>
#include <set>

#include <netprobe/analysis/bottlenecks.hpp>
#include <netprobe/analysis/security/detect.hpp>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/metrics/l7.hpp>
#include <netprobe/util/duration.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::assistant {

namespace {

using nlohmann::json;

// ---- value checks (the same functions and rules as the agent's query parsers) ----

bool isAddress(std::string_view s) { return util::parseAddr(s).has_value(); }
bool isProtocol(std::string_view s) { return util::parseProtocol(s).has_value(); }
bool isContainerId(std::string_view s) {
    return !s.empty() && s.size() <= 64 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}
bool isDigits(std::string_view s) {
    return !s.empty() && s.size() <= 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
bool isRelative(std::string_view s) {
    if (!s.starts_with('-')) return false;
    auto d = util::parseDuration(s.substr(1));
    return d && d->count() > 0;
}
// 2026-11-28T18:00:00Z, 2026-11-28T18:00:00.5+01:00
bool isRfc3339(std::string_view s) {
    auto digits = [&](std::size_t at, std::size_t n) {
        if (at + n > s.size()) return false;
        for (std::size_t i = at; i < at + n; ++i)
            if (s[i] < '0' || s[i] > '9') return false;
        return true;
    };
    if (s.size() < 20 || s.size() > 40) return false;
    if (!digits(0, 4) || s[4] != '-' || !digits(5, 2) || s[7] != '-' || !digits(8, 2) ||
        s[10] != 'T' || !digits(11, 2) || s[13] != ':' || !digits(14, 2) || s[16] != ':' ||
        !digits(17, 2))
        return false;
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        std::size_t j = i + 1;
        while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
        if (j == i + 1) return false;
        i = j;
    }
    const auto zone = s.substr(i);
    if (zone == "Z" || zone == "z") return true;
    return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(i + 1, 2) && zone[3] == ':' &&
           digits(i + 4, 2);
}
bool isEventTime(std::string_view s) { return isRfc3339(s) || isDigits(s) || isRelative(s); }
bool isHistoryTime(std::string_view s) { return isDigits(s) || isRelative(s); }
bool isL7Status(std::string_view s) {
    return !s.empty() && s.size() <= 32 &&
           std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// ---- argument builders ----

ToolArg text(std::string name, std::string description, std::int64_t max_len,
             bool (*check)(std::string_view) = nullptr, std::string expect = {}) {
    ToolArg a;
    a.param = name;
    a.name = std::move(name);
    a.type = ArgType::String;
    a.description = std::move(description);
    a.min = 1;
    a.max = max_len;
    a.check = check;
    a.expect = std::move(expect);
    return a;
}
ToolArg integer(std::string name, std::string description, std::int64_t min, std::int64_t max) {
    ToolArg a;
    a.param = name;
    a.name = std::move(name);
    a.type = ArgType::Integer;
    a.description = std::move(description);
    a.min = min;
    a.max = max;
    return a;
}
ToolArg oneOf(std::string name, std::string description, std::vector<std::string> values) {
    ToolArg a;
    a.param = name;
    a.name = std::move(name);
    a.type = ArgType::Enum;
    a.description = std::move(description);
    a.values = std::move(values);
    return a;
}
ToolArg listOf(std::string name, std::string description, std::vector<std::string> values) {
    ToolArg a = oneOf(std::move(name), std::move(description), std::move(values));
    a.type = ArgType::EnumList;
    return a;
}
ToolArg boolean(std::string name, std::string description) {
    ToolArg a;
    a.param = name;
    a.name = std::move(name);
    a.type = ArgType::Boolean;
    a.description = std::move(description);
    return a;
}
ToolArg duration(std::string name, std::string description, std::int64_t max_seconds) {
    ToolArg a;
    a.param = name;
    a.name = std::move(name);
    a.type = ArgType::Duration;
    a.description = std::move(description);
    a.max = max_seconds;
    return a;
}
ToolArg required(ToolArg a) {
    a.required = true;
    return a;
}
ToolArg limit(std::int64_t max, std::int64_t dflt, const std::string& what) {
    return integer("limit", "At most this many " + what + " (1-" + std::to_string(max) + "; the agent's default " +
                                std::to_string(dflt) + ").",
                   1, max);
}
ToolArg address(const std::string& name, const std::string& description) {
    return text(name, description, 64, isAddress, "an IPv4 or IPv6 address (198.18.0.1, fd00::1)");
}
ToolArg port(const std::string& name, const std::string& description) { return integer(name, description, 0, 65535); }
ToolArg k8sNamespace(const std::string& description) { return text("namespace", description, 253); }

std::vector<std::string> encapNames() {
    std::vector<std::string> v;
    for (int e = 0; e < NP_ENCAP_MAX; ++e) v.emplace_back(ebpf::encapName(e));
    return v;
}
std::vector<std::string> eventTypes() {
    std::vector<std::string> v;
    for (int t = 0; t < analysis::security::kEventTypes; ++t)
        v.emplace_back(analysis::security::toString(static_cast<analysis::security::EventType>(t)));
    return v;
}
std::vector<std::string> bottleneckKinds() {
    std::vector<std::string> v;
    for (std::size_t k = 0; k < analysis::kBottleneckKinds; ++k)
        v.emplace_back(analysis::toString(static_cast<analysis::BottleneckKind>(k)));
    return v;
}
// The application protocols the agent's L7 API knows: the candidates its own query
// parser accepts (a unit test checks them against the names its error message lists).
std::vector<std::string> l7Protocols() {
    static const char* const kCandidates[] = {"http",  "http2",  "grpc",      "dns",       "redis",
                                              "postgres", "mysql", "kafka", "amqp", "mongodb",
                                              "memcached", "cassandra", "nats", "mqtt"};
    std::vector<std::string> v;
    for (const char* c : kCandidates)
        if (metrics::parseL7Query({{"protocol", c}}, false)) v.emplace_back(c);
    return v;
}
const std::vector<std::string> kGroupBy = {"host", "workload", "namespace", "pod", "container", "process", "service"};

std::vector<Tool> build() {
    std::vector<Tool> t;
    auto add = [&](std::string name, std::string title, std::string path, std::string description,
                   std::vector<ToolArg> args) -> Tool& {
        Tool x;
        x.name = std::move(name);
        x.title = std::move(title);
        x.path = std::move(path);
        x.description = std::move(description);
        x.args = std::move(args);
        return t.emplace_back(std::move(x));
    };

    add("list_interfaces", "Monitored interfaces", "/api/v1/interfaces",
        "The network interfaces the NetProbe agent monitors, with packet and byte counters per direction since it "
        "attached (ingress_* received, egress_* sent), their rates over the last collection interval (*_rate, per "
        "second), the attach modes (tc_mode, xdp_mode) and, for veths, the peer's network namespace and pod. "
        "Use it to see which interfaces are watched and how busy each is.",
        {});

    add("list_flows", "Flows", "/api/v1/flows",
        "Network flows (5-tuple per interface and direction) the agent tracks: addresses, ports, protocol, packets, "
        "bytes, bytes_rate (bytes per second over the last interval), TCP flags, first/last seen times and, with "
        "Kubernetes, the pods, workloads and Services of both ends. Filters narrow the list; `total` counts the "
        "matching flows, `returned` those in the answer. Use it for 'who talks to whom', busiest flows, traffic to "
        "a port.",
        {text("interface", "Only flows on this interface (name, e.g. eth0).", 64),
         oneOf("direction", "ingress (received) or egress (sent).", {"ingress", "egress"}),
         text("protocol", "tcp, udp, icmp, icmpv6 or an IP protocol number 0-255.", 16, isProtocol,
              "tcp, udp, icmp, icmpv6 or a protocol number 0-255"),
         address("ip", "Flows with this address at either end."),
         address("src_ip", "Flows from this source address."),
         address("dst_ip", "Flows to this destination address."),
         port("port", "Flows with this port at either end (0-65535)."),
         port("src_port", "Flows from this source port."),
         port("dst_port", "Flows to this destination port."),
         k8sNamespace("Flows with an end in this Kubernetes namespace (needs the agent's Kubernetes attribution)."),
         text("container", "Flows of this container (id or id prefix, lowercase hex) at either end (TCP).", 64,
              isContainerId, "a container id or id prefix (lowercase hex, up to 64 digits)"),
         oneOf("encap",
               "Tunnel encapsulation: none (packets as on the wire) or the inner flows of vxlan, geneve, ... "
               "tunnel packets.",
               encapNames()),
         oneOf("sort", "Order: bytes (the agent's default), packets, rate (bytes per second now) or last_seen.",
               {"bytes", "packets", "rate", "last_seen"}),
         limit(10000, 100, "flows")});

    add("list_connections", "TCP connections", "/api/v1/connections",
        "Open and recently closed TCP connections seen by the agent's socket monitor: addresses and ports, state, "
        "process id and command, bytes sent/received, retransmits, smoothed RTT (rtt_seconds), congestion window, "
        "start/established/end times, and container/pod when known. `enabled: false` when the socket monitor is off.",
        {oneOf("state", "open, closed (recently) or all (default).", {"open", "closed", "all"}),
         [] {
             ToolArg a = integer("ip_version", "4 or 6.", 4, 6);
             a.values = {"4", "6"};
             return a;
         }(),
         address("ip", "Connections with this address at either end."),
         address("src_ip", "Connections from this local/source address."),
         address("dst_ip", "Connections to this destination address."),
         port("port", "Connections with this port at either end."),
         port("src_port", "Connections from this source port."),
         port("dst_port", "Connections to this destination port."),
         integer("pid", "Connections of this process id.", 1, 4294967295LL),
         text("container", "Connections of this container (id or id prefix, lowercase hex).", 64, isContainerId,
              "a container id or id prefix (lowercase hex, up to 64 digits)"),
         limit(10000, 100, "connections")});

    add("list_containers", "Containers", "/api/v1/containers",
        "The containers behind the node's TCP sockets and per-cgroup counters: container id, pod UID (and pod with "
        "Kubernetes), network namespaces, host veths, TCP socket traffic and traffic of every protocol (rx/tx "
        "packets and bytes). `enabled: false` without container attribution.",
        {});

    add("list_pods", "Pods", "/api/v1/pods",
        "The local Kubernetes pods the agent knows (namespace, name, uid, node, IPs, workload, host-side veths) and "
        "their traffic since the agent started (rx_*/tx_* packets and bytes). `enabled: false` without Kubernetes.",
        {});

    Tool& events = add(
        "list_events", "Security events", "/api/v1/events",
        "Security events the agent detected, newest first: port scans, SYN/UDP/ICMP floods, traffic surges, "
        "connection failures, fan-out, new peers, threat-intel matches, policy enforcement gaps. Each has type, "
        "severity, source and target addresses, detection/first/last seen times, whether it is still active, the "
        "evidence (counts, rates, top sources) and whether the source was blocked.",
        {listOf("type", "Only these event types.", eventTypes()),
         text("since",
              "Events detected since this time: RFC 3339 (2026-11-28T18:00:00Z), Unix seconds, or relative to now "
              "as -DURATION (-15m, -2h).",
              40, isEventTime, "an RFC 3339 time, Unix seconds or -DURATION (-15m)"),
         limit(10000, 100, "events")});
    events.relative_time_arg = "since";

    add("get_intel", "Threat-intel feeds", "/api/v1/intel",
        "The threat-intelligence feeds the agent loaded: status, load errors with line numbers, indicators (IPs, "
        "domains), packets matched from/to indicators and dropped, DNS hits on domain indicators. `enabled: false` "
        "without --intel-config.",
        {});

    add("get_diagnosis", "Diagnosis findings", "/api/v1/diagnosis",
        "The findings of the agent's diagnosis rules over the last window: listen-queue overflows, packet drops by "
        "kernel reason, failing connections by destination, retransmissions, MTU problems, DNS failures, data "
        "NetProbe lost, security events in progress. Each finding has severity, subject, evidence (figures with "
        "units), likely cause, fix (exact commands) and the query that shows it. Start here for 'is anything "
        "wrong?'.",
        {});

    const std::string l7_note = " Needs the agent's --l7=on (else `enabled: false`).";
    const std::vector<std::string> l7 = l7Protocols();
    add("list_l7_endpoints", "Application endpoints", "/api/v1/l7/endpoints",
        "Application-layer (HTTP, HTTP/2, gRPC, DNS, Redis, PostgreSQL, MySQL, ...) request figures per service, side "
        "(server: this node answered; client: this node asked), method and route over the last minute: requests, "
        "rate per second, errors, error_rate, p50/p90/p99 latency in seconds, bytes." + l7_note,
        {oneOf("protocol", "Application protocol.", l7),
         text("service", "Server: address:port, or namespace/service with Kubernetes.", 256),
         oneOf("side", "server or client.", {"server", "client"}),
         text("method", "HTTP method, gRPC method, DNS query type, Redis command or SQL statement type.", 32),
         limit(10000, 100, "endpoints")});

    add("list_l7_requests", "Recent application requests", "/api/v1/l7/requests",
        "The latest application-layer requests, newest first: time, protocol, side, service, method, path/route, "
        "status (HTTP code, gRPC code, DNS rcode, ...), outcome, duration, bytes, client and process." + l7_note,
        {oneOf("protocol", "Application protocol.", l7),
         text("service", "Server: address:port, or namespace/service with Kubernetes.", 256),
         oneOf("side", "server or client.", {"server", "client"}),
         text("method", "HTTP method, gRPC method, DNS query type, Redis command or SQL statement type.", 32),
         text("status",
              "A status code (404), a class (5xx), a response code name (DNS NXDOMAIN, gRPC NOT_FOUND, Kafka or "
              "AMQP error names), or an outcome: ok, error, client_error, unknown.",
              32, isL7Status, "a status code, class (5xx), response code name or outcome"),
         duration("min_duration", "Only requests that took at least this long (Go duration: 50ms, 1.5s).", 3600),
         limit(10000, 100, "requests")});

    add("list_dns_names", "DNS names of addresses", "/api/v1/l7/dns/names",
        "Addresses and the DNS names their answers gave (from DNS traffic the agent parsed), with TTLs." + l7_note,
        {address("ip", "Only the names of this address.")});

    add("get_topology", "Service map", "/api/v1/topology",
        "The service map over a window: nodes (hosts, workloads, namespaces, pods or processes) and edges client -> "
        "server:port with bytes each way, bytes_per_second, connections opened/failed, retransmits, RTT and, with "
        "--l7=on, requests, error rate and p99 latency. Use it for 'who calls whom' and the busiest or failing "
        "dependencies.",
        {duration("window", "Time covered (Go duration, e.g. 5m; the agent keeps up to 15m; default 5m).", 86400),
         oneOf("group_by",
               "What a node is: host (default), workload (without Kubernetes: the container), service (servers "
               "behind a Kubernetes Service as the service, callers as workloads), namespace, pod, container, "
               "process, or segment.",
               {"host", "workload", "service", "namespace", "pod", "container", "process", "segment"}),
         k8sNamespace("Edges with an end in this Kubernetes namespace."),
         text("protocol", "tcp, udp, or an application protocol (http, grpc, dns, ...).", 16),
         oneOf("source",
               "local (default: this node's conversations) or clickhouse (every node's, from the cluster's "
               "ClickHouse; the agent needs --history-source=clickhouse).",
               {"local", "clickhouse"}),
         limit(100000, 2000, "edges")});

    add("get_qos", "Quality of service", "/api/v1/qos",
        "Quality of service per edge and per service over a window: TCP handshake RTT quantiles, jitter, the "
        "sockets' smoothed RTT, loss per direction (retransmits), UDP jitter and L7 latency. `enabled: false` "
        "without the agent's --qos=on.",
        {duration("window", "Time covered (Go duration, default 5m).", 86400),
         oneOf("group_by", "What an end is: host, workload (default), namespace, pod, container, process or service.",
               kGroupBy),
         k8sNamespace("Edges with an end in this Kubernetes namespace."),
         limit(100000, 500, "edges")});

    add("get_bottlenecks", "Bottlenecks", "/api/v1/bottlenecks",
        "Ranked bottleneck and hotspot findings over the last 60 s: link utilisation against link speed, qdisc "
        "drops and standing queues, listen-queue overflows, conntrack table usage, retransmit and RTT hotspots by "
        "edge, socket buffer drops, top talkers. Each has rank, kind, subject, severity, score, evidence, "
        "explanation, fix commands and a query.",
        {listOf("kind", "Only these kinds of finding.", bottleneckKinds()),
         oneOf("severity", "Minimum severity: critical, warning or info.", {"critical", "warning", "info"}),
         limit(1000, 100, "findings")});

    add("get_forecast", "Forecasts", "/api/v1/forecast",
        "Bandwidth forecasts per interface and busiest edge (Holt-Winters; mean and 80%/95% intervals at horizons "
        "from 5m to 1d) and findings with lead times: link capacity reached, flow/conntrack tables filling, "
        "retransmit trends. `enabled: false` without the agent's --forecast.",
        {text("series", "Only series whose key starts with this prefix (e.g. iface/eth0).", 512),
         limit(10000, 200, "series")});

    add("get_anomalies", "Anomalies", "/api/v1/anomalies",
        "Anomaly events (a metric outside its learned range, or behaviour that deviated: which features, observed "
        "vs expected) and per-scope anomaly rates. `enabled: false` without the agent's --anomaly.",
        {oneOf("scope", "Only events of this scope.", {"interface", "edge", "service", "node", "entity"}),
         boolean("open", "true: only open (ongoing) events; false: only ended ones."),
         limit(10000, 100, "events")});

    const std::string history_source = " source: auto (the cluster's ClickHouse when the agent has "
                                       "--history-source=clickhouse, else its local store), local or clickhouse.";
    Tool& series = add(
        "list_history_series", "History series", "/api/v1/history",
        "The keys of the series in the agent's history store (per-minute and per-hour aggregates: interface rates, "
        "edge bytes, retransmits, ...), to pick one for get_history. `enabled: false` without a history store.",
        {text("prefix", "Only keys that start with this (e.g. iface/). Empty or absent: all.", 512),
         text("node", "Only this node's series (with the cluster store).", 253),
         oneOf("source", "Where to read." + history_source, {"auto", "local", "clickhouse"}),
         limit(100000, 1000, "keys")});
    series.args[0].min = 0;
    series.fixed = {{"prefix", ""}};

    add("get_history", "History of a series", "/api/v1/history",
        "Points of one series from the history store (time, step, mean, min, max, count) between from and to; use "
        "list_history_series for the keys. `enabled: false` without a history store.",
        {required(text("series", "The series key (from list_history_series).", 512)),
         text("from", "Start: Unix seconds, or -DURATION relative to now (-6h). Default: one hour ago.", 24,
              isHistoryTime, "Unix seconds or -DURATION (-1h)"),
         text("to", "End: Unix seconds, or -DURATION relative to now. Default: now.", 24, isHistoryTime,
              "Unix seconds or -DURATION (-1h)"),
         oneOf("resolution", "minute, hour or auto (default: by the span).", {"minute", "hour", "auto"}),
         text("node", "This node's points (with the cluster store).", 253),
         oneOf("source", "Where to read." + history_source, {"auto", "local", "clickhouse"}),
         limit(100000, 1000, "points")});

    add("get_cost", "Traffic cost", "/api/v1/cost",
        "Bytes each local workload sent and received over the cost window by destination class (same node, same "
        "zone, cross zone, private, internet) and their cost at the agent's price table, per window and per hour. "
        "`enabled: false` without the agent's cost configuration.",
        {limit(10000, 100, "workloads")});

    add("get_policies", "NetworkPolicies", "/api/v1/policies",
        "Kubernetes NetworkPolicies with the pods they select and their hits (allowed/denied conversations), the "
        "recently denied conversations with their enforcement (gap: answered anyway, enforced, unanswered, "
        "pending) and the recent enforcement gaps. `enabled: false` without Kubernetes policies.",
        {k8sNamespace("Only policies and conversations of this namespace.")});

    add("get_responses", "Automatic responses", "/api/v1/responses",
        "The automatic response NetworkPolicies the agent plans for security events (state, attackers, selected "
        "pods, manifest, verification), the recently ended and refused ones and the applier's counters. Read "
        "only. `enabled: false` without the agent's --respond.",
        {});
    return t;
}

std::string shortJson(const json& v) {
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
}

Error argError(const ToolArg& a, const std::string& expected, const json& got) {
    return makeError("argument \"" + a.name + "\": expected " + expected + ", got " + shortJson(got));
}

std::string joinValues(const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? (i + 1 == v.size() ? " or " : ", ") : "") + v[i];
    return s;
}

// One argument's value -> its query parameter text.
Result<std::string> convert(const ToolArg& a, const json& v) {
    switch (a.type) {
        case ArgType::String: {
            const std::string what = a.expect.empty() ? "a string" : a.expect;
            if (!v.is_string()) return std::unexpected(argError(a, what, v));
            const auto& s = v.get_ref<const std::string&>();
            if (static_cast<std::int64_t>(s.size()) < a.min)
                return std::unexpected(argError(a, a.expect.empty() ? "a non-empty string" : a.expect, v));
            if (a.max > 0 && static_cast<std::int64_t>(s.size()) > a.max)
                return std::unexpected(argError(a, what + " of at most " + std::to_string(a.max) + " bytes", v));
            if (s.find('\0') != std::string::npos) return std::unexpected(argError(a, what + " without NUL", v));
            if (a.check && !a.check(s)) return std::unexpected(argError(a, what, v));
            return s;
        }
        case ArgType::Integer: {
            const std::string range = a.values.empty()
                                          ? "an integer from " + std::to_string(a.min) + " to " + std::to_string(a.max)
                                          : "one of the integers " + joinValues(a.values);
            if (!v.is_number_integer()) return std::unexpected(argError(a, range, v));
            if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                return std::unexpected(argError(a, range, v));
            const auto n = v.get<std::int64_t>();
            if (n < a.min || n > a.max) return std::unexpected(argError(a, range, v));
            const std::string s = std::to_string(n);
            if (!a.values.empty() && std::find(a.values.begin(), a.values.end(), s) == a.values.end())
                return std::unexpected(argError(a, range, v));
            return s;
        }
        case ArgType::Boolean:
            if (!v.is_boolean()) return std::unexpected(argError(a, "true or false", v));
            return std::string(v.get<bool>() ? "true" : "false");
        case ArgType::Enum: {
            const std::string what = "one of " + joinValues(a.values);
            if (!v.is_string()) return std::unexpected(argError(a, what, v));
            const auto& s = v.get_ref<const std::string&>();
            if (std::find(a.values.begin(), a.values.end(), s) == a.values.end())
                return std::unexpected(argError(a, what, v));
            return s;
        }
        case ArgType::EnumList: {
            const std::string what = "a non-empty array of distinct values among " + joinValues(a.values);
            if (!v.is_array() || v.empty() || v.size() > a.values.size()) return std::unexpected(argError(a, what, v));
            std::set<std::string> seen;
            std::string out;
            for (const auto& x : v) {
                if (!x.is_string()) return std::unexpected(argError(a, what, v));
                const auto& s = x.get_ref<const std::string&>();
                if (std::find(a.values.begin(), a.values.end(), s) == a.values.end())
                    return std::unexpected(argError(a, what + " (\"" + s.substr(0, 40) + "\" is not one)", v));
                if (!seen.insert(s).second) return std::unexpected(argError(a, what + " (\"" + s + "\" twice)", v));
                out += (out.empty() ? "" : ",") + s;
            }
            return out;
        }
        case ArgType::Duration: {
            std::string what = "a Go duration (30s, 5m, 1h30m)";
            if (a.max > 0) what += " up to " + util::formatDuration(std::chrono::seconds(a.max));
            if (!v.is_string() || v.get_ref<const std::string&>().size() > 32) return std::unexpected(argError(a, what, v));
            auto d = util::parseDuration(v.get_ref<const std::string&>());
            if (!d || d->count() <= 0 || (a.max > 0 && *d > std::chrono::seconds(a.max)))
                return std::unexpected(argError(a, what, v));
            return v.get<std::string>();
        }
    }
    return std::unexpected(makeError("argument \"" + a.name + "\": unknown type"));
}

}  // namespace

std::string ApiRequest::target() const {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out = path;
    char sep = '?';
    for (const auto& [k, v] : query) {
        out += sep;
        sep = '&';
        for (const auto* s : {&k, &v}) {
            for (unsigned char c : *s) {
                if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
                    out += static_cast<char>(c);
                } else {
                    out += '%';
                    out += kHex[c >> 4];
                    out += kHex[c & 15];
                }
            }
            if (s == &k) out += '=';
        }
    }
    return out;
}

json Tool::inputSchema() const {
    json props = json::object();
    json req = json::array();
    for (const auto& a : args) {
        json p;
        switch (a.type) {
            case ArgType::String:
                p = {{"type", "string"}};
                if (a.min > 0) p["minLength"] = a.min;
                if (a.max > 0) p["maxLength"] = a.max;
                break;
            case ArgType::Integer:
                p = {{"type", "integer"}};
                if (a.values.empty()) {
                    p["minimum"] = a.min;
                    p["maximum"] = a.max;
                } else {
                    json e = json::array();
                    for (const auto& v : a.values) e.push_back(std::stoll(v));
                    p["enum"] = std::move(e);
                }
                break;
            case ArgType::Boolean: p = {{"type", "boolean"}}; break;
            case ArgType::Enum: p = {{"type", "string"}, {"enum", a.values}}; break;
            case ArgType::EnumList:
                p = {{"type", "array"},
                     {"items", {{"type", "string"}, {"enum", a.values}}},
                     {"minItems", 1},
                     {"uniqueItems", true}};
                break;
            case ArgType::Duration:
                p = {{"type", "string"}, {"pattern", "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h|d))+$"}};
                break;
        }
        p["description"] = a.description;
        props[a.name] = std::move(p);
        if (a.required) req.push_back(a.name);
    }
    json s = {{"type", "object"}, {"properties", std::move(props)}, {"additionalProperties", false}};
    if (!req.empty()) s["required"] = std::move(req);
    return s;
}

Result<ApiRequest> Tool::request(const json& arguments, std::int64_t now_unix) const {
    ApiRequest r{path, fixed};
    if (arguments.is_null()) {
        for (const auto& a : args)
            if (a.required) return std::unexpected(makeError("argument \"" + a.name + "\" is required"));
        return r;
    }
    if (!arguments.is_object())
        return std::unexpected(makeError("arguments: expected an object, got " + shortJson(arguments)));
    for (const auto& [k, v] : arguments.items()) {
        const auto it = std::find_if(args.begin(), args.end(), [&](const ToolArg& a) { return a.name == k; });
        if (it == args.end()) {
            std::string known;
            for (const auto& a : args) known += (known.empty() ? "" : ", ") + a.name;
            return std::unexpected(makeError("unknown argument \"" + k.substr(0, 64) + "\" (" +
                                             (known.empty() ? "this tool takes no arguments" : "known: " + known) + ")"));
        }
        auto value = convert(*it, v);
        if (!value) return std::unexpected(value.error());
        if (it->name == relative_time_arg && value->starts_with('-')) {
            auto d = util::parseDuration(std::string_view(*value).substr(1));
            const auto secs = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
            *value = std::to_string(std::max<std::int64_t>(0, now_unix - secs));
        }
        r.query[it->param] = std::move(*value);
    }
    for (const auto& a : args)
        if (a.required && !arguments.contains(a.name))
            return std::unexpected(makeError("argument \"" + a.name + "\" is required"));
    return r;
}

const std::vector<Tool>& toolCatalogue() {
    static const std::vector<Tool> kTools = build();
    return kTools;
}

const Tool* findTool(std::string_view name) {
    for (const auto& t : toolCatalogue())
        if (t.name == name) return &t;
    return nullptr;
}

namespace {

std::string dumpText(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The JSON pointer of the array with the largest serialisation (among arrays with items).
void largestArray(const json& j, const json::json_pointer& at, json::json_pointer& best, std::size_t& best_size) {
    if (j.is_array()) {
        if (!j.empty()) {
            const std::size_t n = dumpText(j).size();
            if (n > best_size) {
                best_size = n;
                best = at;
            }
        }
        for (std::size_t i = 0; i < j.size(); ++i) largestArray(j[i], at / i, best, best_size);
    } else if (j.is_object()) {
        for (const auto& [k, v] : j.items()) largestArray(v, at / k, best, best_size);
    }
}

// Cut at most max bytes without splitting a UTF-8 sequence.
std::string cutUtf8(const std::string& s, std::size_t max) {
    if (s.size() <= max) return s;
    std::size_t n = max;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

}  // namespace

BoundedJson boundJson(const json& doc, std::size_t max_bytes) {
    BoundedJson out;
    out.text = dumpText(doc);
    if (out.text.size() <= max_bytes) return out;
    out.truncated = true;
    json work = doc;
    std::string cut;
    // Each round shortens the largest array to as many leading items as fit (binary search).
    for (int round = 0; round < 32; ++round) {
        json::json_pointer ptr;
        std::size_t size = 0;
        largestArray(work, json::json_pointer(), ptr, size);
        if (size == 0) break;
        json& arr = work[ptr];
        const json full = arr;
        std::size_t lo = 0, hi = full.size() - 1;  // keep lo fits (or is 0); full.size() does not
        while (lo < hi) {
            const std::size_t mid = lo + (hi - lo + 1) / 2;
            arr = json(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(mid));
            if (dumpText(work).size() <= max_bytes) lo = mid;
            else hi = mid - 1;
        }
        arr = json(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(lo));
        const std::string where = ptr.to_string().empty() ? "the top-level array" : ptr.to_string();
        cut += (cut.empty() ? "" : ", ") + where + " kept " + std::to_string(lo) + " of " +
               std::to_string(full.size()) + " items";
        out.text = dumpText(work);
        if (out.text.size() <= max_bytes) {
            out.note = "The result was larger than " + std::to_string(max_bytes) + " bytes and was truncated: " + cut +
                       ". Narrow the query (filters, a smaller limit) to see the rest.";
            return out;
        }
    }
    out.text = cutUtf8(out.text, max_bytes);
    out.note = "The result was larger than " + std::to_string(max_bytes) + " bytes" +
               (cut.empty() ? "" : " even after " + cut) + "; the text was cut at " + std::to_string(out.text.size()) +
               " bytes and is not complete JSON. Narrow the query to see all of it.";
    return out;
}

}  // namespace netprobe::assistant
