#include <netprobe/metrics/exposition.hpp>
#include <netprobe/metrics/server.hpp>
#include <netprobe/util/ip.hpp>

#include <bit>
#include <charconv>
#include <chrono>
#include <string>

#ifndef NETPROBE_VERSION
#define NETPROBE_VERSION "unknown"
#endif

namespace netprobe::metrics {

namespace {

using collector::InterfaceStats;
using collector::Snapshot;

struct IfaceMetric {
    const char* name;
    MetricType type;
    const char* help;
    bool is_rate;
    std::uint64_t InterfaceStats::*counter;
    double InterfaceStats::*gauge;
};

constexpr IfaceMetric kIfaceMetrics[] = {
    {"netprobe_interface_rx_packets_total", MetricType::Counter,
     "Packets received by the interface (TC ingress) since NetProbe attached to it.", false,
     &InterfaceStats::ingress_packets, nullptr},
    {"netprobe_interface_tx_packets_total", MetricType::Counter,
     "Packets sent by the interface (TC egress) since NetProbe attached to it.", false,
     &InterfaceStats::egress_packets, nullptr},
    {"netprobe_interface_rx_bytes_total", MetricType::Counter,
     "Bytes received by the interface (TC ingress, L2 frame length).", false, &InterfaceStats::ingress_bytes,
     nullptr},
    {"netprobe_interface_tx_bytes_total", MetricType::Counter,
     "Bytes sent by the interface (TC egress, L2 frame length).", false, &InterfaceStats::egress_bytes, nullptr},
    {"netprobe_interface_rx_packets_rate", MetricType::Gauge,
     "Packets per second received over the last collect interval.", true, nullptr,
     &InterfaceStats::ingress_packets_rate},
    {"netprobe_interface_tx_packets_rate", MetricType::Gauge,
     "Packets per second sent over the last collect interval.", true, nullptr,
     &InterfaceStats::egress_packets_rate},
    {"netprobe_interface_rx_bytes_rate", MetricType::Gauge,
     "Bytes per second received over the last collect interval.", true, nullptr,
     &InterfaceStats::ingress_bytes_rate},
    {"netprobe_interface_tx_bytes_rate", MetricType::Gauge, "Bytes per second sent over the last collect interval.",
     true, nullptr, &InterfaceStats::egress_bytes_rate},
};

std::string u16str(std::uint16_t v) { return std::to_string(v); }

void renderInterfaces(ExpositionWriter& w, const Snapshot& s) {
    for (const auto& m : kIfaceMetrics) {
        w.family(m.name, m.type, m.help);
        for (const auto& i : s.interfaces) {
            if (m.is_rate) w.sample(m.name, {{"interface", i.name}}, i.*(m.gauge));
            else w.sample(m.name, {{"interface", i.name}}, i.*(m.counter));
        }
    }
    w.family("netprobe_xdp_rx_packets_total", MetricType::Counter,
             "Packets seen by the XDP program (driver-level receive), where XDP is attached.");
    for (const auto& i : s.interfaces)
        if (i.xdp_mode == "native" || i.xdp_mode == "generic")
            w.sample("netprobe_xdp_rx_packets_total", {{"interface", i.name}}, i.xdp_packets);
    w.family("netprobe_xdp_rx_bytes_total", MetricType::Counter, "Bytes seen by the XDP program.");
    for (const auto& i : s.interfaces)
        if (i.xdp_mode == "native" || i.xdp_mode == "generic")
            w.sample("netprobe_xdp_rx_bytes_total", {{"interface", i.name}}, i.xdp_bytes);
    w.family("netprobe_interface_attached", MetricType::Gauge,
             "1 for every interface NetProbe is attached to, with the attachment modes.");
    for (const auto& i : s.interfaces) {
        std::string_view xdp = i.xdp_mode.rfind("failed", 0) == 0 ? "failed" : std::string_view(i.xdp_mode);
        w.sample("netprobe_interface_attached", {{"interface", i.name}, {"tc_mode", i.tc_mode}, {"xdp_mode", xdp}},
                 std::uint64_t{1});
    }
}

void renderDatapath(ExpositionWriter& w, const Snapshot& s) {
    w.family("netprobe_protocol_packets_total", MetricType::Counter,
             "Packets by protocol class and direction (a packet counts in each class it carries).");
    for (int d = 0; d < NP_DIR_MAX; ++d)
        for (int c = 0; c < NP_PROTO_MAX; ++c)
            w.sample("netprobe_protocol_packets_total",
                     {{"direction", ebpf::directionName(d)}, {"protocol", ebpf::protoClassName(c)}},
                     s.protocols[static_cast<std::size_t>(d)][static_cast<std::size_t>(c)].packets);
    w.family("netprobe_protocol_bytes_total", MetricType::Counter, "Bytes by protocol class and direction.");
    for (int d = 0; d < NP_DIR_MAX; ++d)
        for (int c = 0; c < NP_PROTO_MAX; ++c)
            w.sample("netprobe_protocol_bytes_total",
                     {{"direction", ebpf::directionName(d)}, {"protocol", ebpf::protoClassName(c)}},
                     s.protocols[static_cast<std::size_t>(d)][static_cast<std::size_t>(c)].bytes);
    w.family("netprobe_malformed_packets_total", MetricType::Counter,
             "Packets that failed parsing, by reason; counted in interface totals, never in a flow.");
    for (int d = 0; d < NP_DIR_MAX; ++d)
        for (int r = 1; r < NP_MAL_REASON_MAX; ++r)
            w.sample("netprobe_malformed_packets_total",
                     {{"direction", ebpf::directionName(d)}, {"reason", ebpf::malformedReasonName(r)}},
                     s.malformed[static_cast<std::size_t>(d)][static_cast<std::size_t>(r)]);
    w.family("netprobe_map_update_errors_total", MetricType::Counter,
             "Failed BPF map inserts, by map (for flow_stats: packets not attributed to a flow).");
    for (int m = 0; m < NP_MAP_ID_MAX; ++m)
        w.sample("netprobe_map_update_errors_total", {{"map", ebpf::mapName(m)}},
                 s.map_errors[static_cast<std::size_t>(m)]);
    const auto& h = s.flow_health;
    w.family("netprobe_map_entries", MetricType::Gauge,
             "Entries in a BPF map at the last collection (flow_stats is drained every interval).");
    w.sample("netprobe_map_entries", {{"map", "flow_stats"}}, h.kernel_entries);
    w.family("netprobe_map_capacity", MetricType::Gauge, "Maximum entries of a BPF map.");
    w.sample("netprobe_map_capacity", {{"map", "flow_stats"}}, std::uint64_t{h.kernel_capacity});
    w.family("netprobe_map_fill_ratio", MetricType::Gauge, "Entries divided by capacity at the last collection.");
    w.sample("netprobe_map_fill_ratio", {{"map", "flow_stats"}},
             h.kernel_capacity ? static_cast<double>(h.kernel_entries) / h.kernel_capacity : 0.0);
    w.family("netprobe_flows_tracked", MetricType::Gauge, "Flows held in the agent's flow table.");
    w.sample("netprobe_flows_tracked", {}, h.tracked);
    w.family("netprobe_flows_tracked_capacity", MetricType::Gauge, "Maximum flows the agent's flow table holds.");
    w.sample("netprobe_flows_tracked_capacity", {}, h.tracked_capacity);
    w.family("netprobe_flows_removed_total", MetricType::Counter,
             "Flows removed from the agent's flow table: idle past the timeout, or evicted when full.");
    w.sample("netprobe_flows_removed_total", {{"reason", "idle"}}, h.expired_total);
    w.sample("netprobe_flows_removed_total", {{"reason", "evicted"}}, h.evicted_total);
}

void renderTopFlows(ExpositionWriter& w, const Snapshot& s, const RenderOptions& o) {
    const double secs = s.interval_seconds > 0 ? s.interval_seconds : 0;
    const char* kBytes = "netprobe_top_flow_bytes_rate";
    const char* kPkts = "netprobe_top_flow_packets_rate";
    // Flows are sorted by interval bytes: the first top_flows active ones are the top-K.
    std::size_t k = 0;
    std::uint64_t other_b = 0, other_p = 0;
    struct Row {
        std::string ip_s, ip_d, p_s, p_d, proto;
        const collector::FlowRecord* f;
    };
    std::vector<Row> rows;
    for (const auto& f : s.flows) {
        if (f.interval_packets == 0) break;
        if (k < o.top_flows) {
            rows.push_back({util::formatAddr(std::bit_cast<util::Addr16>(f.key.src_ip)),
                            util::formatAddr(std::bit_cast<util::Addr16>(f.key.dst_ip)), u16str(f.key.src_port),
                            u16str(f.key.dst_port), util::protocolName(f.key.proto), &f});
            ++k;
        } else {
            other_b += f.interval_bytes;
            other_p += f.interval_packets;
        }
    }
    auto emit = [&](const char* name, bool bytes) {
        for (const auto& r : rows) {
            const auto& f = *r.f;
            double v = secs > 0 ? static_cast<double>(bytes ? f.interval_bytes : f.interval_packets) / secs : 0.0;
            w.sample(name,
                     {{"interface", f.interface},
                      {"direction", ebpf::directionName(f.key.direction)},
                      {"protocol", r.proto},
                      {"src_ip", r.ip_s},
                      {"src_port", r.p_s},
                      {"dst_ip", r.ip_d},
                      {"dst_port", r.p_d}},
                     v);
        }
        double ov = secs > 0 ? static_cast<double>(bytes ? other_b : other_p) / secs : 0.0;
        w.sample(name,
                 {{"interface", "other"},
                  {"direction", "other"},
                  {"protocol", "other"},
                  {"src_ip", "other"},
                  {"src_port", "other"},
                  {"dst_ip", "other"},
                  {"dst_port", "other"}},
                 ov);
    };
    w.family(kBytes, MetricType::Gauge,
             "Bytes per second of the top-K flows over the last collect interval; all other flows summed in the "
             "series labelled \"other\".");
    emit(kBytes, true);
    w.family(kPkts, MetricType::Gauge, "Packets per second of the top-K flows over the last collect interval.");
    emit(kPkts, false);
}

void renderAgent(ExpositionWriter& w, const Snapshot& s) {
    w.family("netprobe_build_info", MetricType::Gauge, "Build information; always 1.");
    w.sample("netprobe_build_info", {{"version", NETPROBE_VERSION}, {"abi_version", std::to_string(NP_ABI_VERSION)}},
             std::uint64_t{1});
    w.family("netprobe_collections_total", MetricType::Counter, "Collections of the BPF maps performed.");
    w.sample("netprobe_collections_total", {}, s.sequence);
    w.family("netprobe_collect_errors_total", MetricType::Counter, "Collections that failed.");
    w.sample("netprobe_collect_errors_total", {}, s.collect_errors_total);
    w.family("netprobe_collect_duration_seconds", MetricType::Gauge, "Duration of the last collection.");
    w.sample("netprobe_collect_duration_seconds", {}, s.collect_duration_seconds);
    w.family("netprobe_last_collect_timestamp_seconds", MetricType::Gauge,
             "Unix time of the last collection.");
    w.sample("netprobe_last_collect_timestamp_seconds", {},
             s.sequence ? std::chrono::duration<double>(s.taken_at.time_since_epoch()).count() : 0.0);
}

}  // namespace

std::string renderMetrics(const collector::Snapshot& snap, const RenderOptions& options) {
    ExpositionWriter w;
    w.reserve(16384 + snap.interfaces.size() * 1024 + options.top_flows * 512);
    renderInterfaces(w, snap);
    renderDatapath(w, snap);
    renderTopFlows(w, snap, options);
    renderAgent(w, snap);
    return w.take();
}

ServerConfig DefaultServerConfig() { return ServerConfig{}; }

}  // namespace netprobe::metrics
