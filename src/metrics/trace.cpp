#include <netprobe/metrics/trace.hpp>

#include <nlohmann/json.hpp>

#include <netprobe/metrics/exposition.hpp>
#include <netprobe/util/ip.hpp>
#include <netprobe/util/parse.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {

std::expected<std::variant<TraceStart, TraceRead>, std::string> parseTraceQuery(const http::QueryParams& q) {
    TraceStart start;
    auto& spec = start.request.spec;
    spec.family = 0;
    bool starting = false;
    std::optional<std::uint64_t> id;
    std::optional<std::uint8_t> src_family, dst_family;
    for (const auto& [k, v] : q) {
        if (k == "id") {
            std::uint64_t n = 0;
            if (!util::parseNumber(v, n) || n == 0) return std::unexpected("id: expected a trace id (a positive number), got \"" + v + "\"");
            id = n;
        } else if (k == "src" || k == "dst") {
            auto a = util::parseAddr(v);
            if (!a) return std::unexpected(k + ": expected an IPv4 or IPv6 address, got \"" + v + "\"");
            (k == "src" ? spec.src : spec.dst) = *a;
            (k == "src" ? src_family : dst_family) = util::isV4Mapped(*a) ? 4 : 6;
            starting = true;
        } else if (k == "sport" || k == "dport") {
            std::uint16_t p = 0;
            if (!util::parseNumber(v, p) || p == 0) return std::unexpected(k + ": expected a port 1-65535, got \"" + v + "\"");
            (k == "sport" ? spec.sport : spec.dport) = p;
        } else if (k == "proto" || k == "protocol") {
            auto p = util::parseProtocol(v);
            if (!p) return std::unexpected(k + ": expected tcp, udp, icmp, icmpv6 or a protocol number, got \"" + v + "\"");
            spec.proto = *p;
        } else if (k == "seconds") {
            std::uint32_t s = 0;
            if (!util::parseNumber(v, s) || s == 0 || s > kMaxTraceSeconds)
                return std::unexpected("seconds: expected 1-" + std::to_string(kMaxTraceSeconds) + ", got \"" + v + "\"");
            start.request.duration = std::chrono::seconds(s);
        } else {
            return std::unexpected("unknown parameter \"" + k + "\" (known: src, dst, sport, dport, proto, seconds, id)");
        }
    }
    const bool start_params = starting || spec.sport || spec.dport || spec.proto ||
                              std::ranges::any_of(q, [](const auto& kv) { return kv.first == "seconds"; });
    if (id && start_params) return std::unexpected("id: reads a trace; src, dst, sport, dport, proto and seconds start one, not both");
    if (id) return TraceRead{*id};
    if (!start_params) return TraceRead{0};
    if (!starting) return std::unexpected("src: a trace needs src= or dst= (or both)");
    if (src_family && dst_family && *src_family != *dst_family)
        return std::unexpected("dst: src and dst are of different address families");
    spec.family = src_family ? *src_family : *dst_family;
    if (!start.request.duration.count()) start.request.duration = std::chrono::seconds(kDefaultTraceSeconds);
    return start;
}

namespace {

nlohmann::json specJson(const ebpf::TraceSpec& s) {
    const util::Addr16 zero{};
    nlohmann::json j;
    j["src"] = s.src == zero ? nlohmann::json(nullptr) : nlohmann::json(util::formatAddr(s.src));
    j["dst"] = s.dst == zero ? nlohmann::json(nullptr) : nlohmann::json(util::formatAddr(s.dst));
    j["sport"] = s.sport ? nlohmann::json(s.sport) : nlohmann::json(nullptr);
    j["dport"] = s.dport ? nlohmann::json(s.dport) : nlohmann::json(nullptr);
    j["proto"] = s.proto ? nlohmann::json(util::protocolName(s.proto)) : nlohmann::json(nullptr);
    j["family"] = s.family == 6 ? "ipv6" : "ipv4";
    return j;
}

const char* dirName(std::uint8_t d) { return d == 0 ? "forward" : "reply"; }

nlohmann::json resultJson(const collector::TraceResult& r) {
    nlohmann::json j;
    j["id"] = r.id;
    j["state"] = collector::traceStateName(r.state);
    j["match"] = specJson(r.spec);
    j["seconds"] = r.seconds;
    j["started"] = rfc3339(r.started);
    j["ends"] = rfc3339(r.ends);
    if (!r.error.empty()) j["error"] = r.error;
    // per direction: the stages the packets were seen at, in path order, with counts
    nlohmann::json path = nlohmann::json::object();
    for (std::uint8_t d = 0; d < NP_TRACE_DIRS; ++d) {
        auto stages = nlohmann::json::array();
        for (int s = 0; s < NP_TRACE_STAGE_MAX; ++s) {
            const auto& c = r.stages[d][static_cast<std::size_t>(s)];
            if (!c.packets) continue;
            nlohmann::json st{{"stage", ebpf::traceStageName(s)}, {"packets", c.packets}, {"bytes", c.bytes}};
            auto devs = nlohmann::json::array();
            for (const auto& dev : r.devices)
                if (dev.dir == d && dev.stage == ebpf::traceStageName(s))
                    devs.push_back({{"ifindex", dev.ifindex}, {"name", dev.name}, {"packets", dev.packets}});
            if (!devs.empty()) st[s <= NP_TRACE_INPUT ? "in" : "out"] = devs;
            auto drops = nlohmann::json::array();
            for (const auto& x : r.drops)
                if (x.dir == d && x.stage == ebpf::traceStageName(s))
                    drops.push_back({{"reason", x.reason}, {"packets", x.packets}});
            if (!drops.empty()) st["drops"] = drops;
            stages.push_back(std::move(st));
        }
        path[dirName(d)] = std::move(stages);
    }
    j["path"] = std::move(path);
    auto drops = nlohmann::json::array();
    for (const auto& x : r.drops)
        drops.push_back({{"direction", dirName(x.dir)}, {"stage", x.stage}, {"reason", x.reason}, {"reason_code", x.reason_code},
                         {"packets", x.packets}});
    j["drops"] = std::move(drops);
    // forwarded out of: the output device at forward/postrouting
    auto egress = nlohmann::json::array();
    for (const auto& dev : r.devices)
        if (dev.stage == "forward" || dev.stage == "postrouting" || dev.stage == "tc_egress")
            egress.push_back({{"direction", dirName(dev.dir)}, {"stage", dev.stage}, {"ifindex", dev.ifindex},
                              {"name", dev.name}, {"packets", dev.packets}});
    j["egress"] = std::move(egress);
    auto procs = nlohmann::json::array();
    for (const auto& p : r.processes)
        procs.push_back({{"direction", dirName(p.dir)}, {"pid", p.pid}, {"comm", p.comm}, {"calls", p.calls}, {"bytes", p.bytes}});
    j["processes"] = std::move(procs);
    return j;
}

}  // namespace

std::optional<std::string> traceJson(const collector::TraceSample* sample, const collector::TraceQueue& queue,
                                     std::uint64_t id) {
    if (id) {
        if (sample)
            for (const auto& r : sample->traces)
                if (r.id == id) return resultJson(r).dump();
        // queued, or taken by the source in a collection not yet published (newer than
        // every trace the snapshot has; an older id absent from it was forgotten)
        const bool newer = sample && std::ranges::none_of(sample->traces, [&](const auto& r) { return r.id >= id; });
        if (queue.pending(id) || (id <= queue.lastId() && newer))
            return nlohmann::json{{"id", id}, {"state", "pending"}}.dump();
        return std::nullopt;
    }
    nlohmann::json j;
    j["enabled"] = sample != nullptr;
    auto traces = nlohmann::json::array();
    if (sample)
        for (const auto& r : sample->traces) traces.push_back(resultJson(r));
    j["traces"] = std::move(traces);
    j["active"] = sample ? sample->active : 0;
    j["max_active"] = NP_TRACE_MAX;
    j["max_seconds"] = kMaxTraceSeconds;
    return j.dump();
}

std::string renderTraceMetrics(const collector::TraceSample& s) {
    ExpositionWriter w;
    w.family("netprobe_trace_started_total", MetricType::Counter, "Packet path traces armed in the kernel.");
    w.sample("netprobe_trace_started_total", {}, s.started_total);
    w.family("netprobe_trace_failed_total", MetricType::Counter, "Packet path traces that could not be armed.");
    w.sample("netprobe_trace_failed_total", {}, s.failed_total);
    w.family("netprobe_trace_active", MetricType::Gauge, "Packet path traces running now.");
    w.sample("netprobe_trace_active", {}, static_cast<std::uint64_t>(s.active));
    w.family("netprobe_trace_hook_links", MetricType::Gauge,
             "Links of the trace-only programs attached now (netfilter hooks, socket tracepoints; 0 with no trace).");
    w.sample("netprobe_trace_hook_links", {}, static_cast<std::uint64_t>(s.hook_links));
    w.family("netprobe_trace_records_lost_total", MetricType::Counter,
             "Trace records the kernel could not store (a table full), by kind.");
    w.sample("netprobe_trace_records_lost_total", {{"kind", "drops"}}, s.lost[NP_TRACE_ERR_DROPS]);
    w.sample("netprobe_trace_records_lost_total", {{"kind", "devices"}}, s.lost[NP_TRACE_ERR_IFACES]);
    w.sample("netprobe_trace_records_lost_total", {{"kind", "processes"}}, s.lost[NP_TRACE_ERR_PROCS]);
    return w.take();
}

}  // namespace netprobe::metrics
