// The pod and workload export: netprobe_pod_*, netprobe_workload_traffic_*, /api/v1/pods.
#include <netprobe/metrics/render.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include <netprobe/metrics/exposition.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {

using analysis::PodTraffic;
using analysis::WorkloadPair;
using analysis::WorkloadTraffic;

std::string renderPodMetrics(const std::vector<PodTraffic>& traffic, const PodMetricsOptions& options) {
    if (!options.enabled) return {};
    std::vector<const PodTraffic*> sel;
    for (const auto& t : traffic)
        if (t.pod && !t.pod->host_network) sel.push_back(&t);
    std::sort(sel.begin(), sel.end(), [](const PodTraffic* a, const PodTraffic* b) {
        auto ta = a->rx_bytes + a->tx_bytes, tb = b->rx_bytes + b->tx_bytes;
        if (ta != tb) return ta > tb;
        return std::tie(a->pod->ns, a->pod->name) < std::tie(b->pod->ns, b->pod->name);
    });
    PodTraffic other;
    const bool has_other = sel.size() > options.limit;
    for (std::size_t i = options.limit; i < sel.size(); ++i) {
        other.rx_packets += sel[i]->rx_packets;
        other.rx_bytes += sel[i]->rx_bytes;
        other.tx_packets += sel[i]->tx_packets;
        other.tx_bytes += sel[i]->tx_bytes;
    }
    const std::size_t n = std::min(sel.size(), options.limit);
    ExpositionWriter w;
    struct Fam {
        const char* name;
        const char* help;
        std::uint64_t PodTraffic::*field;
    };
    static constexpr Fam fams[] = {
        {"netprobe_pod_rx_packets_total", "Packets of flows to a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::rx_packets},
        {"netprobe_pod_rx_bytes_total", "Bytes of flows to a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::rx_bytes},
        {"netprobe_pod_tx_packets_total", "Packets of flows from a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::tx_packets},
        {"netprobe_pod_tx_bytes_total", "Bytes of flows from a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::tx_bytes},
    };
    for (const auto& f : fams) {
        w.family(f.name, MetricType::Counter, f.help);
        for (std::size_t i = 0; i < n; ++i)
            w.sample(f.name, {{"namespace", sel[i]->pod->ns}, {"pod", sel[i]->pod->name}}, sel[i]->*f.field);
        if (has_other) w.sample(f.name, {{"namespace", "other"}, {"pod", "other"}}, other.*f.field);
    }
    std::uint64_t istio = 0, linkerd = 0;
    for (const auto* t : sel) {
        istio += t->pod->mesh == "istio";
        linkerd += t->pod->mesh == "linkerd";
    }
    w.family("netprobe_mesh_pods", MetricType::Gauge,
             "Local pods with a service mesh sidecar in their spec (istio-proxy, linkerd-proxy), by mesh.");
    w.sample("netprobe_mesh_pods", {{"mesh", "istio"}}, istio);
    w.sample("netprobe_mesh_pods", {{"mesh", "linkerd"}}, linkerd);
    return w.take();
}

std::string renderWorkloadMetrics(const std::vector<WorkloadTraffic>& traffic, const WorkloadMetricsOptions& options) {
    if (!options.enabled) return {};
    const WorkloadPair overflow{{"other", "other"}, {"other", "other"}};
    std::vector<const WorkloadTraffic*> sel;
    WorkloadTraffic other;
    bool has_other = false;
    for (const auto& t : traffic) {
        if (t.pair == overflow) {  // WorkloadCounters' own overflow (max_pairs)
            other.packets += t.packets;
            other.bytes += t.bytes;
            has_other = true;
        } else {
            sel.push_back(&t);
        }
    }
    std::sort(sel.begin(), sel.end(), [](const WorkloadTraffic* a, const WorkloadTraffic* b) {
        if (a->bytes != b->bytes) return a->bytes > b->bytes;
        return a->pair < b->pair;
    });
    const std::size_t n = std::min(sel.size(), options.limit);
    for (std::size_t i = n; i < sel.size(); ++i) {
        other.packets += sel[i]->packets;
        other.bytes += sel[i]->bytes;
        has_other = true;
    }
    // the budgeted series keep a stable order (by pair) in the output
    std::sort(sel.begin(), sel.begin() + static_cast<std::ptrdiff_t>(n),
              [](const WorkloadTraffic* a, const WorkloadTraffic* b) { return a->pair < b->pair; });
    ExpositionWriter w;
    struct Fam {
        const char* name;
        const char* help;
        std::uint64_t WorkloadTraffic::*field;
    };
    static constexpr Fam fams[] = {
        {"netprobe_workload_traffic_packets_total",
         "Packets from one workload to another (an end without a pod: workload=\"external\"; beyond the series "
         "budget: \"other\").",
         &WorkloadTraffic::packets},
        {"netprobe_workload_traffic_bytes_total",
         "Bytes from one workload to another (an end without a pod: workload=\"external\"; beyond the series "
         "budget: \"other\").",
         &WorkloadTraffic::bytes},
    };
    for (const auto& f : fams) {
        w.family(f.name, MetricType::Counter, f.help);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& p = sel[i]->pair;
            w.sample(f.name,
                     {{"src_namespace", p.src.ns}, {"src_workload", p.src.name}, {"dst_namespace", p.dst.ns},
                      {"dst_workload", p.dst.name}},
                     sel[i]->*f.field);
        }
        if (has_other)
            w.sample(f.name,
                     {{"src_namespace", "other"}, {"src_workload", "other"}, {"dst_namespace", "other"},
                      {"dst_workload", "other"}},
                     other.*f.field);
    }
    return w.take();
}

std::string podsJson(const Views& v) {
    const auto& s = *v.snapshot;
    static const std::vector<PodTraffic> kNone;
    const bool enabled = v.groups && v.groups->kubernetes;
    const bool synced = enabled && v.groups->synced;
    const auto& traffic = enabled ? v.groups->pod_traffic : kNone;
    auto arr = nlohmann::json::array();
    for (const auto& t : traffic) {
        if (!t.pod) continue;
        const auto& p = *t.pod;
        auto ips = nlohmann::json::array();
        for (const auto& ip : p.ips) ips.push_back(util::formatAddr(ip));
        auto host_ifs = nlohmann::json::array();
        for (const auto& i : p.host_interfaces) host_ifs.push_back(i);
        arr.push_back({
            {"namespace", p.ns},
            {"name", p.name},
            {"uid", p.uid},
            {"node", p.node},
            {"ips", std::move(ips)},
            {"host_network", p.host_network},
            {"workload", p.workload},
            {"workload_kind", p.workload_kind},
            {"mesh", p.mesh.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.mesh)},
            {"host_interfaces", std::move(host_ifs)},
            {"rx_packets", t.rx_packets},
            {"rx_bytes", t.rx_bytes},
            {"tx_packets", t.tx_packets},
            {"tx_bytes", t.tx_bytes},
        });
    }
    std::sort(arr.begin(), arr.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
        return std::tie(a["namespace"].get_ref<const std::string&>(), a["name"].get_ref<const std::string&>()) <
               std::tie(b["namespace"].get_ref<const std::string&>(), b["name"].get_ref<const std::string&>());
    });
    nlohmann::json doc = {{"collected_at", rfc3339(s.taken_at)},
                          {"enabled", enabled},
                          {"synced", synced},
                          {"total", arr.size()},
                          {"pods", std::move(arr)}};
    return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
