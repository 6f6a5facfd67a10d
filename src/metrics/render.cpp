// renderMetrics: the datapath's, the flow accounting's, the top talkers' and the stack monitor's series.
#include <netprobe/analysis/diagnosis.hpp>
#include <netprobe/analysis/flow_export.hpp>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/metrics/render.hpp>
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
    // The devices' own counters (rtnl_link_stats64, read every collection), of the watched
    // interfaces: errors and drops as `ip -s link` / /proc/net/dev show them.
    if (s.link_counters) {
        w.family("netprobe_interface_errors_total", MetricType::Counter,
                 "The device's own error counters (rx_errors, tx_errors: CRC, frame, FIFO, carrier, ...), by direction.");
        for (const auto& i : s.interfaces)
            if (const auto* c = s.link_counters->find(i.index)) {
                w.sample("netprobe_interface_errors_total", {{"interface", i.name}, {"direction", "rx"}}, c->rx_errors);
                w.sample("netprobe_interface_errors_total", {{"interface", i.name}, {"direction", "tx"}}, c->tx_errors);
            }
        w.family("netprobe_interface_drops_total", MetricType::Counter,
                 "The device's own drop counters by direction: rx_dropped + rx_missed_errors (receive), tx_dropped (send).");
        for (const auto& i : s.interfaces)
            if (const auto* c = s.link_counters->find(i.index)) {
                w.sample("netprobe_interface_drops_total", {{"interface", i.name}, {"direction", "rx"}},
                         c->rx_dropped + c->rx_missed_errors);
                w.sample("netprobe_interface_drops_total", {{"interface", i.name}, {"direction", "tx"}}, c->tx_dropped);
            }
    }
}

void renderDatapath(ExpositionWriter& w, const Snapshot& s, const analysis::FlowHealth& h) {
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
    if (s.stack) {  // stack monitor: connections not tracked / drops not located (tables full)
        w.sample("netprobe_map_update_errors_total", {{"map", "conn_table"}}, s.stack->conn_insert_failures);
        w.sample("netprobe_map_update_errors_total", {{"map", "drop_locations"}}, s.stack->drop_location_failures);
        w.sample("netprobe_map_update_errors_total", {{"map", "drop_flows"}}, s.stack->drop_flow_failures);
    }
    if (s.cgroup_traffic)  // per-cgroup traffic: packets not counted (table full)
        w.sample("netprobe_map_update_errors_total", {{"map", "cgroup_traffic"}}, s.cgroup_traffic->insert_failures);
    if (s.stack && s.stack->features.drops) {
        w.family("netprobe_packet_drops_unattributed_total", MetricType::Counter,
                 "Drops counted by reason and location but not attributed to their 5-tuple because "
                 "the CPU had created its budget of new per-5-tuple entries for the current 100 ms "
                 "(a flood of distinct 5-tuples; see netprobe_packet_drops_flow_budget); for the rest "
                 "of that 100 ms on that CPU, drops of 5-tuples already counted are not attributed either.");
        w.sample("netprobe_packet_drops_unattributed_total", {}, s.stack->drop_flow_over_budget);
        w.family("netprobe_packet_drops_flow_budget", MetricType::Gauge,
                 "New per-5-tuple drop entries each CPU may create per 100 ms (0: no limit): the "
                 "table's size shared by the CPUs over one collection interval.");
        w.sample("netprobe_packet_drops_flow_budget", {}, static_cast<std::uint64_t>(s.stack->drop_flow_budget));
    }
    w.family("netprobe_icmp_messages_total", MetricType::Counter,
             "ICMP and ICMPv6 messages seen by the TC programs, by family, type, code and direction "
             "(at most 1024 combinations are tracked; more count in netprobe_map_update_errors_total).");
    for (const auto& i : s.icmp)
        w.sample("netprobe_icmp_messages_total",
                 {{"family", i.key.family == 6 ? "ipv6" : "ipv4"},
                  {"type", std::to_string(i.key.type)},
                  {"code", std::to_string(i.key.code)},
                  {"direction", ebpf::directionName(i.key.direction)}},
                 i.counter.packets);
    // Overlay decapsulation (--decap): tunnel packets by encapsulation and direction.
    struct OverlayFamily {
        const char* name;
        const char* help;
        std::uint64_t ebpf::OverlayCounter::*field;
    };
    static constexpr OverlayFamily overlay_families[] = {
        {"netprobe_overlay_packets_total",
         "Tunnel packets whose inner packet was decapsulated and accounted as a flow of its own (encap), by "
         "encapsulation and direction.",
         &ebpf::OverlayCounter::packets},
        {"netprobe_overlay_bytes_total", "Outer (underlay) bytes of the decapsulated tunnel packets.",
         &ebpf::OverlayCounter::bytes},
        {"netprobe_overlay_inner_bytes_total",
         "Inner bytes of the decapsulated tunnel packets (inner Ethernet or IP header to the end of the payload).",
         &ebpf::OverlayCounter::inner_bytes},
        {"netprobe_overlay_undecoded_packets_total",
         "Tunnel packets whose inner packet was not accounted (truncated or malformed tunnel header or inner packet, "
         "unsupported GRE version or payload type); their outer flow is counted.",
         &ebpf::OverlayCounter::undecoded},
    };
    for (const auto& f : overlay_families) {
        w.family(f.name, MetricType::Counter, f.help);
        for (int d = 0; d < NP_DIR_MAX; ++d)
            for (int e = 1; e < NP_ENCAP_MAX; ++e)
                w.sample(f.name, {{"direction", ebpf::directionName(d)}, {"encap", ebpf::encapName(e)}},
                         s.overlay[static_cast<std::size_t>(d)][static_cast<std::size_t>(e)].*f.field);
    }
    const auto& k = s.kernel_flows;
    w.family("netprobe_map_entries", MetricType::Gauge, "Entries in a BPF map at the last collection.");
    w.sample("netprobe_map_entries", {{"map", "flow_stats"}}, k.entries);
    if (s.cgroup_traffic) w.sample("netprobe_map_entries", {{"map", "cgroup_traffic"}}, s.cgroup_traffic->entries);
    w.family("netprobe_map_capacity", MetricType::Gauge, "Maximum entries of a BPF map.");
    w.sample("netprobe_map_capacity", {{"map", "flow_stats"}}, std::uint64_t{k.capacity});
    if (s.cgroup_traffic)
        w.sample("netprobe_map_capacity", {{"map", "cgroup_traffic"}}, std::uint64_t{s.cgroup_traffic->capacity});
    w.family("netprobe_map_fill_ratio", MetricType::Gauge, "Entries divided by capacity at the last collection.");
    w.sample("netprobe_map_fill_ratio", {{"map", "flow_stats"}},
             k.capacity ? static_cast<double>(k.entries) / k.capacity : 0.0);
    if (s.cgroup_traffic) {
        const auto& c = *s.cgroup_traffic;
        w.sample("netprobe_map_fill_ratio", {{"map", "cgroup_traffic"}},
                 c.capacity ? static_cast<double>(c.entries) / c.capacity : 0.0);
    }
    w.family("netprobe_flows_tracked", MetricType::Gauge, "Flows held in the agent's flow table.");
    w.sample("netprobe_flows_tracked", {}, h.tracked);
    w.family("netprobe_flows_tracked_capacity", MetricType::Gauge, "Maximum flows the agent's flow table holds.");
    w.sample("netprobe_flows_tracked_capacity", {}, h.tracked_capacity);
    w.family("netprobe_flows_removed_total", MetricType::Counter,
             "Flows removed from the agent's flow table: idle past the timeout, or evicted when full.");
    w.sample("netprobe_flows_removed_total", {{"reason", "idle"}}, h.expired_total);
    w.sample("netprobe_flows_removed_total", {{"reason", "evicted"}}, h.evicted_total);
    w.family("netprobe_kernel_flows_removed_total", MetricType::Counter,
             "Idle entries removed from the kernel flow table (flow_stats), their final values kept.");
    w.sample("netprobe_kernel_flows_removed_total", {}, k.removed_idle_total);
    w.family("netprobe_kernel_flow_pressure", MetricType::Gauge,
             "1 while the kernel flow table is under pressure: TCP connection attempts (SYN) and refusals (RST) "
             "without an entry are counted in aggregate entries with the initiator's port 0.");
    w.sample("netprobe_kernel_flow_pressure", {}, std::uint64_t{k.pressure ? 1u : 0u});
    w.family("netprobe_kernel_flows_aggregated_packets_total", MetricType::Counter,
             "Packets counted in the kernel flow table's aggregate entries (TCP with the initiator's port 0).");
    w.sample("netprobe_kernel_flows_aggregated_packets_total", {}, k.aggregated_packets_total);
    // Map writes and deletes of user space that failed: each is retried, none is lost.
    w.family("netprobe_map_operation_failures_total", MetricType::Counter,
             "Failed map updates/deletes by the agent, by map and operation (each is retried).");
    w.sample("netprobe_map_operation_failures_total", {{"map", "flow_stats"}, {"operation", "remove_idle"}},
             k.remove_failures_total);
    w.sample("netprobe_map_operation_failures_total", {{"map", "flow_stats"}, {"operation", "read"}},
             k.read_failures_total);
    w.sample("netprobe_map_operation_failures_total", {{"map", "sec_flow_seen"}, {"operation", "remember"}},
             k.remember_failures_total);
    w.sample("netprobe_map_operation_failures_total", {{"map", "tc_device_stats"}, {"operation", "reset"}},
             s.device_reset_failures);
    if (s.stack)
        w.sample("netprobe_map_operation_failures_total", {{"map", "conn_table"}, {"operation", "delete_stale"}},
                 s.stack->reconcile_delete_failures);
    if (s.cgroup_traffic)
        w.sample("netprobe_map_operation_failures_total", {{"map", "cgroup_traffic"}, {"operation", "delete_gone"}},
                 s.cgroup_traffic->remove_failures);
}

// The sticky top-K talkers of the TopTalkers stage and the sum of the others: K + 1
// series per family, whose label sets change only when the top-K does.
void renderTopTalkers(ExpositionWriter& w, const Snapshot& s, const analysis::TalkerView& tv) {
    const double secs = s.interval_seconds > 0 ? s.interval_seconds : 0;
    const char* kBytes = "netprobe_top_talker_bytes_rate";
    const char* kPkts = "netprobe_top_talker_packets_rate";
    struct Row {
        std::string local, peer, port, proto;
        const analysis::TalkerRow* r;
    };
    std::vector<Row> rows;
    rows.reserve(tv.top.size());
    for (const auto& r : tv.top) {
        const auto& k = r.traffic.key;
        rows.push_back({util::formatAddr(k.local), util::formatAddr(k.peer),
                        k.server == analysis::ServerSide::None ? std::string() : u16str(k.server_port),
                        util::protocolName(k.proto), &r});
    }
    auto perSecond = [secs](std::uint64_t v) { return secs > 0 ? static_cast<double>(v) / secs : 0.0; };
    auto emit = [&](const char* name, bool bytes) {
        for (const auto& row : rows) {
            const auto& t = row.r->traffic;
            w.sample(name,
                     {{"interface", row.r->interface},
                      {"direction", ebpf::directionName(t.key.direction)},
                      {"protocol", row.proto},
                      {"local_ip", row.local},
                      {"peer_ip", row.peer},
                      {"server_port", row.port},
                      {"server_side", analysis::toString(t.key.server)}},
                     perSecond(bytes ? t.bytes : t.packets));
        }
        w.sample(name,
                 {{"interface", "other"},
                  {"direction", "other"},
                  {"protocol", "other"},
                  {"local_ip", "other"},
                  {"peer_ip", "other"},
                  {"server_port", "other"},
                  {"server_side", "other"}},
                 perSecond(bytes ? tv.other_bytes : tv.other_packets));
    };
    w.family(kBytes, MetricType::Gauge,
             "Bytes per second over the last collect interval of the top-K talkers (interface, direction, protocol, "
             "local and peer address, server port; ephemeral ports dropped), a talker keeping its series for at least "
             "the hold time; all other traffic in the series labelled \"other\".");
    emit(kBytes, true);
    w.family(kPkts, MetricType::Gauge, "Packets per second over the last collect interval of the top-K talkers.");
    emit(kPkts, false);
    w.family("netprobe_talkers_active", MetricType::Gauge,
             "Talkers (interface, direction, protocol, local/peer address, server port) with traffic in the last "
             "collect interval, in the top-K or not.");
    w.sample("netprobe_talkers_active", {}, static_cast<std::uint64_t>(tv.talkers));
    w.family("netprobe_top_talker_entries_total", MetricType::Counter,
             "Talkers that entered the top-K (each starts or resumes a netprobe_top_talker_* series).");
    w.sample("netprobe_top_talker_entries_total", {}, tv.entered_total);
}

// One log2 histogram (bucket b: values <= 2^b) as a Prometheus histogram; divisor
// converts the recorded unit into the exported one (1e6: microseconds -> seconds;
// dividing rounds correctly where multiplying by 1e-6 would not).
void renderLog2Histogram(ExpositionWriter& w, std::string_view name, const ebpf::Log2Histogram& h,
                         std::size_t last_bucket, double divisor) {
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cum = 0;
    for (std::size_t b = 0; b <= last_bucket && b < NP_HIST_BUCKETS; ++b) {
        cum += h.buckets[b];
        char le[32];
        auto [p, ec] = std::to_chars(le, le + sizeof le, static_cast<double>(ebpf::Log2Histogram::upperBound(b)) / divisor);
        w.sample(bucket, {{"le", std::string_view(le, static_cast<std::size_t>(p - le))}}, cum);
    }
    w.sample(bucket, {{"le", "+Inf"}}, h.count());
    w.sample(std::string(name) + "_sum", {}, static_cast<double>(h.sum) / divisor);
    w.sample(std::string(name) + "_count", {}, h.count());
}

void renderStack(ExpositionWriter& w, const ebpf::StackStats& st) {
    const auto& f = st.features;
    w.family("netprobe_stack_feature_enabled", MetricType::Gauge,
             "1 if a socket-layer / network-stack feature is active on this kernel, else 0.");
    const std::pair<const char*, bool> feats[] = {{"connections", f.connections}, {"retransmits", f.retransmits},
                                                  {"resets", f.resets},           {"tcp_probe", f.tcp_probe},
                                                  {"drops", f.drops},             {"netfilter", f.netfilter}};
    for (const auto& [n, on] : feats) w.sample("netprobe_stack_feature_enabled", {{"feature", n}}, std::uint64_t{on});

    w.family("netprobe_tcp_connections_opened_total", MetricType::Counter,
             "TCP connections established: active (connect) or passive (accepted).");
    w.sample("netprobe_tcp_connections_opened_total", {{"direction", "active"}}, st.opened_active);
    w.sample("netprobe_tcp_connections_opened_total", {{"direction", "passive"}}, st.opened_passive);
    w.family("netprobe_tcp_connections_closed_total", MetricType::Counter,
             "Established TCP connections that reached CLOSE.");
    w.sample("netprobe_tcp_connections_closed_total", {}, st.closed);
    w.family("netprobe_tcp_connections_failed_total", MetricType::Counter,
             "TCP connection attempts that failed (SYN_SENT -> CLOSE).");
    w.sample("netprobe_tcp_connections_failed_total", {}, st.failed);
    w.family("netprobe_tcp_connections_active", MetricType::Gauge,
             "Open TCP connections NetProbe saw opening (tracked in the kernel table), less stale records removed by "
             "reconciliation with the kernel's socket list.");
    w.sample("netprobe_tcp_connections_active", {}, st.tracked_open);
    w.family("netprobe_tcp_retransmits_total", MetricType::Counter, "TCP segments retransmitted.");
    w.sample("netprobe_tcp_retransmits_total", {}, st.retransmits);
    w.family("netprobe_tcp_resets_total", MetricType::Counter, "TCP resets sent and received.");
    w.sample("netprobe_tcp_resets_total", {{"direction", "sent"}}, st.resets_sent);
    w.sample("netprobe_tcp_resets_total", {{"direction", "received"}}, st.resets_received);
    w.family("netprobe_tcp_rtt_seconds", MetricType::Histogram,
             "Smoothed RTT of TCP connections, sampled on every received segment (tcp:tcp_probe).");
    renderLog2Histogram(w, "netprobe_tcp_rtt_seconds", st.srtt_us, 24, 1e6);
    w.family("netprobe_tcp_cwnd_segments", MetricType::Histogram,
             "Congestion window of TCP connections in segments, sampled on every received segment.");
    renderLog2Histogram(w, "netprobe_tcp_cwnd_segments", st.cwnd, 16, 1.0);

    w.family("netprobe_packet_drops_total", MetricType::Counter,
             "Packets freed by the kernel as dropped (skb:kfree_skb), by the running kernel's drop reason.");
    for (const auto& d : st.drops) w.sample("netprobe_packet_drops_total", {{"reason", d.name}}, d.count);
    w.family("netprobe_packet_drop_locations_total", MetricType::Counter,
             "Drops of the top kernel locations (function+offset that freed the packet) and reasons; at most 20 "
             "series.");
    for (const auto& d : st.drop_locations)
        w.sample("netprobe_packet_drop_locations_total", {{"reason", d.reason}, {"location", d.location}}, d.count);

    static constexpr const char* fams[NP_NF_FAMILY_MAX] = {"ipv4", "ipv6"};
    auto nf = [&](const char* name, const char* help, bool bytes) {
        w.family(name, MetricType::Counter, help);
        if (!f.netfilter) return;
        for (int h = 0; h < NP_NF_HOOK_MAX; ++h)
            if (f.netfilter_hooks & (1u << h))  // hooks not counted (--netfilter-hooks) have no series
            for (int fa = 0; fa < NP_NF_FAMILY_MAX; ++fa)
                for (int p = 0; p < NP_NF_PROTO_MAX; ++p) {
                    const auto& c = st.netfilter[static_cast<std::size_t>(h)][static_cast<std::size_t>(fa)]
                                                [static_cast<std::size_t>(p)];
                    w.sample(name,
                             {{"hook", ebpf::netfilterHookName(h)},
                              {"family", fams[fa]},
                              {"protocol", ebpf::netfilterProtoName(p)}},
                             bytes ? c.bytes : c.packets);
                }
    };
    nf("netprobe_netfilter_packets_total",
       "Packets reaching a netfilter hook of NetProbe's network namespace (counted before any table), by hook, "
       "family and protocol.",
       false);
    nf("netprobe_netfilter_bytes_total", "Bytes (IP length) reaching a netfilter hook.", true);

    w.family("netprobe_ringbuf_reserve_failures_total", MetricType::Counter,
             "Ring-buffer reserves that failed in the kernel (records lost), by ring.");
    w.sample("netprobe_ringbuf_reserve_failures_total", {{"ring", "conn_events"}}, st.ringbuf_reserve_failures);
    w.family("netprobe_bpf_missed_events_total", MetricType::Counter,
             "Events a stack program missed because it was already running on that CPU (kernel recursion "
             "protection, bpf_prog_info.recursion_misses), by program.");
    for (const auto& [prog, n] : st.missed_events)
        w.sample("netprobe_bpf_missed_events_total", {{"program", prog}}, n);
    w.family("netprobe_tcp_connection_records_reconciled_total", MetricType::Counter,
             "Open-connection records removed because their socket no longer existed (a missed CLOSE event; "
             "checked against the kernel's socket list, NETLINK_SOCK_DIAG).");
    w.sample("netprobe_tcp_connection_records_reconciled_total", {}, st.records_reconciled);
    w.family("netprobe_tcp_connection_reconcile_runs_total", MetricType::Counter,
             "Comparisons of the open-connection records with the kernel's socket list.");
    w.sample("netprobe_tcp_connection_reconcile_runs_total", {}, st.reconcile_runs);
    w.family("netprobe_tcp_connection_reconcile_skipped_total", MetricType::Counter,
             "Checks that needed no comparison: the state-change program missed no event since the last one, no "
             "record was under suspicion, and the periodic comparison (every 20 s) was not due.");
    w.sample("netprobe_tcp_connection_reconcile_skipped_total", {}, st.reconcile_skipped);
    w.family("netprobe_tcp_connection_reconcile_failures_total", MetricType::Counter,
             "Network namespaces whose sockets could not be listed in a comparison (their records are kept).");
    w.sample("netprobe_tcp_connection_reconcile_failures_total", {}, st.reconcile_failures);
    w.family("netprobe_tcp_closed_records_evicted_total", MetricType::Counter,
             "Closed-connection records dropped from the agent's bounded recent list.");
    w.sample("netprobe_tcp_closed_records_evicted_total", {}, st.closed_evicted);
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
    w.family("netprobe_source_errors_total", MetricType::Counter,
             "Failed reads of a source (its part of the snapshot was missing), by source.");
    for (const auto& src : s.sources) w.sample("netprobe_source_errors_total", {{"source", src.name}}, src.errors_total);
}

}  // namespace

std::string renderMetrics(const analysis::Views& views) {
    static const Snapshot kEmpty;
    static const analysis::FlowView kNoFlows;
    const Snapshot& snap = views.snapshot ? *views.snapshot : kEmpty;
    const analysis::FlowView& flows = views.flows ? *views.flows : kNoFlows;
    ExpositionWriter w;
    w.reserve(16384 + snap.interfaces.size() * 1024 + (views.talkers ? views.talkers->top.size() * 1024 : 0));
    renderInterfaces(w, snap);
    renderDatapath(w, snap, flows.health);
    if (snap.stack) renderStack(w, *snap.stack);
    if (views.talkers) renderTopTalkers(w, snap, *views.talkers);
    renderAgent(w, snap);
    return w.take();
}

std::string renderAgentHealth(const std::vector<PipelineHealth>& pipelines,
                              const std::vector<util::Scheduler::TaskStats>& tasks) {
    ExpositionWriter w;
    w.family("netprobe_analysis_stage_duration_seconds", MetricType::Gauge,
             "Duration of the last run of an analysis stage, by pipeline and stage.");
    for (const auto& p : pipelines)
        for (const auto& st : p.stages)
            w.sample("netprobe_analysis_stage_duration_seconds", {{"pipeline", p.pipeline}, {"stage", st.name}},
                     st.last_seconds);
    w.family("netprobe_analysis_stage_duration_max_seconds", MetricType::Gauge,
             "Longest run of an analysis stage since the agent started.");
    for (const auto& p : pipelines)
        for (const auto& st : p.stages)
            w.sample("netprobe_analysis_stage_duration_max_seconds", {{"pipeline", p.pipeline}, {"stage", st.name}},
                     st.max_seconds);
    w.family("netprobe_background_task_runs_total", MetricType::Counter,
             "Runs of a background task (reconciliation, cgroup walks, ...), by task.");
    for (const auto& t : tasks) w.sample("netprobe_background_task_runs_total", {{"task", t.name}}, t.runs);
    w.family("netprobe_background_task_duration_seconds", MetricType::Gauge, "Duration of a task's last run.");
    for (const auto& t : tasks)
        w.sample("netprobe_background_task_duration_seconds", {{"task", t.name}}, t.last_duration_seconds);
    return w.take();
}

std::string renderCniMetrics(const analysis::CniInfo& cni) {
    ExpositionWriter w;
    w.family("netprobe_cni_info", MetricType::Gauge,
             "The CNI plugin that wires this node's pods and its overlay, as the node's links tell them (1).");
    w.sample("netprobe_cni_info", {{"cni", cni.name}, {"overlay", cni.overlay}}, std::uint64_t{1});
    w.family("netprobe_cni_pod_interfaces", MetricType::Gauge,
             "Host ends of pod veths named the CNI's way (lxc*, cali*, vethwe*).");
    w.sample("netprobe_cni_pod_interfaces", {}, static_cast<std::uint64_t>(cni.pod_interfaces));
    return w.take();
}

std::string renderDiagnosisMetrics(const analysis::DiagnosisView& view) {
    ExpositionWriter w;
    w.family("netprobe_diagnosis_findings", MetricType::Gauge,
             "Findings of the diagnosis rules at the last evaluation, by rule and severity (/api/v1/diagnosis).");
    static const char* rules[] = {"listen_overflow", "path_mtu",     "packet_drops", "connection_failures",
                                  "tcp_retransmits", "dns_failures", "dns_nxdomain", "http_errors",
                                  "netprobe_data_loss", "security_event", "interface_errors", "one_way_flows"};
    static const char* severities[] = {"critical", "warning", "info"};
    for (const char* r : rules)
        for (const char* sv : severities) {
            std::uint64_t n = 0;
            for (const auto& f : view.findings) n += f.rule == r && f.severity == sv;
            w.sample("netprobe_diagnosis_findings", {{"rule", r}, {"severity", sv}}, n);
        }
    return w.take();
}

std::string renderFlowExportMetrics(const analysis::FlowExportView* view, const std::vector<sinks::SinkStatus>& sinks) {
    ExpositionWriter w;
    w.family("netprobe_flow_export_records_total", MetricType::Counter,
             "Flow records emitted to the sinks, by end reason (idle_timeout, active_timeout, end_of_flow, "
             "forced_end, lack_of_resources).");
    for (std::size_t i = 1; i < analysis::kFlowEndReasons; ++i)
        w.sample("netprobe_flow_export_records_total",
                 {{"reason", analysis::toString(static_cast<analysis::FlowEndReason>(i))}},
                 view ? view->health.records_total[i] : 0);
    w.family("netprobe_flow_export_open_flows", MetricType::Gauge, "Flows with a record open (biflows per interface).");
    w.sample("netprobe_flow_export_open_flows", {}, view ? view->health.cached : 0);
    w.family("netprobe_flow_export_open_flows_capacity", MetricType::Gauge,
             "Open flows beyond which the least recently seen are reported and forgotten (--max-flows).");
    w.sample("netprobe_flow_export_open_flows_capacity", {}, view ? view->health.capacity : 0);
    w.family("netprobe_flow_export_l7_requests_total", MetricType::Counter,
             "L7 requests (--l7=on) joined to a flow record (matched), or given up: no open flow of their "
             "connection within the wait, or the waiting list was full (unmatched).");
    w.sample("netprobe_flow_export_l7_requests_total", {{"result", "matched"}},
             view ? view->health.l7_requests_matched : 0);
    w.sample("netprobe_flow_export_l7_requests_total", {{"result", "unmatched"}},
             view ? view->health.l7_requests_unmatched : 0);
    w.family("netprobe_flow_export_l7_requests_pending", MetricType::Gauge,
             "L7 requests waiting for a flow of their connection to open.");
    w.sample("netprobe_flow_export_l7_requests_pending", {}, view ? view->health.l7_requests_pending : 0);
    auto each = [&](const char* name, MetricType t, const char* help, auto value) {
        w.family(name, t, help);
        for (const auto& s : sinks) w.sample(name, {{"sink", s.kind}, {"target", s.target}}, value(s));
    };
    each("netprobe_flow_sink_up", MetricType::Gauge,
         "1 when the sink delivers (IPFIX: connected / last send accepted; flow log: file writable).",
         [](const sinks::SinkStatus& s) { return s.up ? 1.0 : 0.0; });
    each("netprobe_flow_sink_records_total", MetricType::Counter,
         "Records delivered (IPFIX: written to the socket; TCP: less those resent after a failure).",
         [](const sinks::SinkStatus& s) { return s.records_sent; });
    w.family("netprobe_flow_sink_records_dropped_total", MetricType::Counter,
             "Records lost, by reason: queue_full (the oldest went), send_failed (refused by the transport or a "
             "failed write), spool_full (ClickHouse: the oldest spooled batches went).");
    for (const auto& s : sinks) {
        w.sample("netprobe_flow_sink_records_dropped_total",
                 {{"sink", s.kind}, {"target", s.target}, {"reason", "queue_full"}}, s.records_dropped_queue);
        w.sample("netprobe_flow_sink_records_dropped_total",
                 {{"sink", s.kind}, {"target", s.target}, {"reason", "send_failed"}}, s.records_dropped_send);
        if (s.kind == "clickhouse")
            w.sample("netprobe_flow_sink_records_dropped_total",
                     {{"sink", s.kind}, {"target", s.target}, {"reason", "spool_full"}}, s.records_dropped_spool);
    }
    each("netprobe_flow_sink_records_resent_total", MetricType::Counter,
         "IPFIX over TCP: records not acknowledged when a connection failed, sent again on the next.",
         [](const sinks::SinkStatus& s) { return s.records_resent; });
    each("netprobe_flow_sink_queue_records", MetricType::Gauge, "Records waiting in the sink's queue.",
         [](const sinks::SinkStatus& s) { return s.queued; });
    each("netprobe_flow_sink_queue_capacity", MetricType::Gauge, "Records the sink's queue holds at most.",
         [](const sinks::SinkStatus& s) { return s.queue_capacity; });
    each("netprobe_flow_sink_messages_total", MetricType::Counter, "IPFIX messages (or log lines) sent.",
         [](const sinks::SinkStatus& s) { return s.messages_sent; });
    each("netprobe_flow_sink_bytes_total", MetricType::Counter, "Bytes sent or written.",
         [](const sinks::SinkStatus& s) { return s.bytes_sent; });
    each("netprobe_flow_sink_errors_total", MetricType::Counter, "Connect, send and write errors.",
         [](const sinks::SinkStatus& s) { return s.errors_total; });
    std::vector<sinks::SinkStatus> spooled;
    for (const auto& s : sinks)
        if (s.kind == "clickhouse") spooled.push_back(s);
    if (!spooled.empty()) {
        w.family("netprobe_flow_sink_spool_bytes", MetricType::Gauge,
                 "ClickHouse: bytes of batches waiting in the on-disk spool (bounded by spool-max).");
        for (const auto& s : spooled)
            w.sample("netprobe_flow_sink_spool_bytes", {{"sink", s.kind}, {"target", s.target}}, s.spool_bytes);
        w.family("netprobe_flow_sink_spool_batches", MetricType::Gauge, "ClickHouse: batches waiting in the spool.");
        for (const auto& s : spooled)
            w.sample("netprobe_flow_sink_spool_batches", {{"sink", s.kind}, {"target", s.target}}, s.spool_batches);
        w.family("netprobe_flow_sink_partitions_dropped_total", MetricType::Counter,
                 "ClickHouse: partitions dropped for retention (servers without TTL).");
        for (const auto& s : spooled)
            w.sample("netprobe_flow_sink_partitions_dropped_total", {{"sink", s.kind}, {"target", s.target}},
                     s.partitions_dropped);
        w.family("netprobe_flow_sink_series_points_total", MetricType::Counter,
                 "ClickHouse: history series points inserted into the series table (series=on).");
        for (const auto& s : spooled)
            w.sample("netprobe_flow_sink_series_points_total", {{"sink", s.kind}, {"target", s.target}},
                     s.series_points_sent);
        w.family("netprobe_flow_sink_series_points_dropped_total", MetricType::Counter,
                 "ClickHouse: history series points lost (the memory queue or the spool was full).");
        for (const auto& s : spooled)
            w.sample("netprobe_flow_sink_series_points_dropped_total", {{"sink", s.kind}, {"target", s.target}},
                     s.series_points_dropped);
    }
    each("netprobe_flow_sink_connects_total", MetricType::Counter,
         "IPFIX: sessions opened (TCP connections, UDP sockets); flow log: rotations.",
         [](const sinks::SinkStatus& s) { return s.connects_total; });
    return w.take();
}

std::string renderHttpMetrics(const std::vector<http::ServerStats>& listeners, const WebConfigHealth& web) {
    ExpositionWriter w;
    w.family("netprobe_http_tls_enabled", MetricType::Gauge, "1 when the listener serves TLS (web config), else 0.");
    for (const auto& l : listeners) w.sample("netprobe_http_tls_enabled", {{"listener", l.listener}}, l.tls ? 1.0 : 0.0);
    w.family("netprobe_http_connections_open", MetricType::Gauge, "Open connections of a listener.");
    for (const auto& l : listeners) w.sample("netprobe_http_connections_open", {{"listener", l.listener}}, l.open);
    w.family("netprobe_http_connections_accepted_total", MetricType::Counter, "Connections accepted by a listener.");
    for (const auto& l : listeners)
        w.sample("netprobe_http_connections_accepted_total", {{"listener", l.listener}}, l.accepted);
    w.family("netprobe_http_connections_closed_total", MetricType::Counter,
             "Connections closed, by reason (client, done, request_error, idle_timeout, head_timeout, "
             "handshake_timeout, write_timeout, tls_error, evicted, rejected, config_changed, shutdown).");
    for (const auto& l : listeners)
        for (int i = 0; i < static_cast<int>(http::CloseReason::Count); ++i)
            w.sample("netprobe_http_connections_closed_total",
                     {{"listener", l.listener}, {"reason", http::toString(static_cast<http::CloseReason>(i))}}, l.closed[i]);
    w.family("netprobe_http_responses_total", MetricType::Counter, "Responses sent, by status code.");
    for (const auto& l : listeners)
        for (const auto& [code, n] : l.responses) {
            const std::string c = code ? std::to_string(code) : "other";
            w.sample("netprobe_http_responses_total", {{"listener", l.listener}, {"code", c}}, n);
        }
    w.family("netprobe_http_auth_failures_total", MetricType::Counter,
             "Requests refused with 401 (missing or wrong basic auth credentials).");
    for (const auto& l : listeners) w.sample("netprobe_http_auth_failures_total", {{"listener", l.listener}}, l.auth_failures);
    w.family("netprobe_http_accept_errors_total", MetricType::Counter, "accept(2) failures (out of descriptors, ...).");
    for (const auto& l : listeners) w.sample("netprobe_http_accept_errors_total", {{"listener", l.listener}}, l.accept_errors);
    if (web.from_file) {
        w.family("netprobe_web_config_reloads_total", MetricType::Counter,
                 "Reloads of the web configuration file (SIGHUP or a change on disk), by result.");
        w.sample("netprobe_web_config_reloads_total", {{"result", "success"}}, web.reloads_ok);
        w.sample("netprobe_web_config_reloads_total", {{"result", "failure"}}, web.reloads_failed);
        w.family("netprobe_web_config_last_reload_successful", MetricType::Gauge,
                 "1 when the last reload of the web configuration succeeded (else the previous one is in use).");
        w.sample("netprobe_web_config_last_reload_successful", {}, web.last_reload_ok ? 1.0 : 0.0);
        w.family("netprobe_web_config_last_reload_success_timestamp_seconds", MetricType::Gauge,
                 "Unix time of the last successful load of the web configuration.");
        w.sample("netprobe_web_config_last_reload_success_timestamp_seconds", {}, web.last_success_unix_seconds);
    }
    return w.take();
}

std::string renderKernelFeatures(const ebpf::KernelInfo& kernel) {
    ExpositionWriter w;
    w.family("netprobe_feature_enabled", MetricType::Gauge,
             "Kernel features probed at start (1: available), README's minimum-kernel table.");
    for (const auto& f : kernel.features)
        w.sample("netprobe_feature_enabled", {{"feature", f.name}}, f.available ? 1.0 : 0.0);
    w.family("netprobe_kernel_info", MetricType::Gauge, "The running kernel (uname).");
    w.sample("netprobe_kernel_info", {{"release", kernel.release}, {"machine", kernel.machine}}, 1.0);
    return w.take();
}

}  // namespace netprobe::metrics
