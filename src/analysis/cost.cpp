#include <netprobe/analysis/cost.hpp>
#include <netprobe/analysis/attribution.hpp>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <map>

#include <netprobe/analysis/qos.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/intel/feeds.hpp>

namespace netprobe::analysis {
namespace {

bool inPrefix(const util::Addr16& a, const util::Addr16& prefix, unsigned len) {
    return util::maskAddr(a, len) == prefix;
}

bool isPrivate(const util::Addr16& a) {
    static const std::vector<intel::Prefix> kPrivate = [] {
        std::vector<intel::Prefix> v;
        for (const char* c : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                              "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"})
            v.push_back(*intel::parsePrefix(c));
        return v;
    }();
    for (const auto& p : kPrivate)
        if (inPrefix(a, p.addr, p.len)) return true;
    return false;
}

}  // namespace

std::expected<CostConfig, std::string> parseCostConfig(std::string_view yaml) {
    CostConfig c;
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        return std::unexpected(std::string("not YAML: ") + e.what());
    }
    if (!root || root.IsNull()) return c;
    if (!root.IsMap()) return std::unexpected("expected a mapping with zone, zones, prices, currency");
    try {
        for (const auto& kv : root) {
            const std::string key = kv.first.as<std::string>();
            const YAML::Node& v = kv.second;
            if (key == "zone") {
                c.zone = v.as<std::string>();
            } else if (key == "currency") {
                c.currency = v.as<std::string>();
                if (c.currency.empty() || c.currency.size() > 8) return std::unexpected("currency: expected a code (USD)");
            } else if (key == "zones") {
                if (!v.IsSequence()) return std::unexpected("zones: expected a list of {cidr, zone}");
                for (std::size_t i = 0; i < v.size(); ++i) {
                    const std::string at = "zones[" + std::to_string(i) + "]";
                    if (!v[i].IsMap() || !v[i]["cidr"] || !v[i]["zone"]) return std::unexpected(at + ": expected cidr and zone");
                    auto p = intel::parsePrefix(v[i]["cidr"].as<std::string>());
                    if (!p) return std::unexpected(at + ".cidr: not a CIDR (\"" + v[i]["cidr"].as<std::string>() + "\")");
                    const std::string zone = v[i]["zone"].as<std::string>();
                    if (zone.empty()) return std::unexpected(at + ".zone: empty");
                    c.zones.push_back({p->addr, p->len, zone});
                }
            } else if (key == "prices") {
                if (!v.IsMap()) return std::unexpected("prices: expected class: price per GB");
                for (const auto& pk : v) {
                    const std::string cls = pk.first.as<std::string>();
                    auto it = std::find(kCostClassNames.begin(), kCostClassNames.end(), cls);
                    if (it == kCostClassNames.end())
                        return std::unexpected("prices." + cls +
                                               ": unknown class (same_node, same_zone, cross_zone, private, internet)");
                    const double price = pk.second.as<double>();
                    if (!std::isfinite(price) || price < 0 || price > 1e6)
                        return std::unexpected("prices." + cls + ": expected a price per GB >= 0");
                    c.price_per_gb[static_cast<std::size_t>(it - kCostClassNames.begin())] = price;
                }
            } else {
                return std::unexpected("unknown key \"" + key + "\" (known: zone, zones, prices, currency)");
            }
        }
    } catch (const YAML::Exception& e) {
        return std::unexpected(std::string("bad value: ") + e.what());
    }
    // longest prefix first
    std::stable_sort(c.zones.begin(), c.zones.end(), [](const auto& a, const auto& b) { return a.len > b.len; });
    return c;
}

CostClass classify(const util::Addr16& peer, bool peer_local, const CostConfig& config) {
    if (peer_local) return CostClass::SameNode;
    for (const auto& r : config.zones)
        if (inPrefix(peer, r.prefix, r.len))
            return !config.zone.empty() && r.zone == config.zone ? CostClass::SameZone : CostClass::CrossZone;
    return isPrivate(peer) ? CostClass::Private : CostClass::Internet;
}

ClusterZones clusterZones(const std::vector<ClusterNode>& nodes, std::string_view node_name) {
    ClusterZones z;
    z.nodes = nodes.size();
    for (const auto& n : nodes) {
        if (n.zone.empty()) continue;
        ++z.zoned_nodes;
        if (!node_name.empty() && n.name == node_name) z.node_zone = n.zone;
        for (const auto& a : n.addrs) z.ranges.push_back({a, 128, n.zone});
        for (const auto& [p, len] : n.pod_cidrs) z.ranges.push_back({p, len, n.zone});
    }
    std::stable_sort(z.ranges.begin(), z.ranges.end(), [](const auto& a, const auto& b) { return a.len > b.len; });
    return z;
}

CostConfig withClusterZones(const CostConfig& config, const ClusterZones& cluster) {
    CostConfig c = config;
    if (c.zone.empty()) c.zone = cluster.node_zone;
    c.zones.insert(c.zones.end(), cluster.ranges.begin(), cluster.ranges.end());
    std::stable_sort(c.zones.begin(), c.zones.end(), [](const auto& a, const auto& b) { return a.len > b.len; });
    return c;
}

Cost::Cost(CostOptions options) : opts_(std::move(options)), merged_(opts_.config) {}

void Cost::run(const collector::Snapshot&, Views& views) {
    auto v = std::make_shared<CostView>();
    v->window = opts_.window;
    v->currency = opts_.config.currency;
    v->price_per_gb = opts_.config.price_per_gb;
    const auto* t = views.topology.get();
    if (!t) {
        views.cost = std::move(v);
        return;
    }
    const auto local = opts_.local_addresses ? opts_.local_addresses() : nullptr;
    // The cluster's zones merged into the config's when they changed (a new pointer).
    if (auto cz = opts_.cluster_zones ? opts_.cluster_zones() : nullptr; cz != zones_seen_) {
        merged_ = cz ? withClusterZones(opts_.config, *cz) : opts_.config;
        zones_seen_ = std::move(cz);
    }
    const CostConfig& config = merged_;
    v->zone = config.zone;
    v->zone_source = !opts_.config.zone.empty() ? "config" : !config.zone.empty() ? "kubernetes" : "";
    if (zones_seen_) {
        v->cluster_nodes = zones_seen_->nodes;
        v->cluster_zoned_nodes = zones_seen_->zoned_nodes;
    }
    auto isLocal = [&](const TopologyEnd& e) { return !e.process.empty() || (local && local->contains(e.ip)); };
    const std::size_t window_slots = windowSlots(*t, static_cast<std::size_t>(opts_.window.count()));
    v->window_seconds = windowSeconds(*t, window_slots);
    std::map<std::string, CostEntity> by;
    for (const auto& cp : t->conversations) {
        const Conversation& c = *cp;
        const bool cl = isLocal(c.client), sl = isLocal(c.server);
        if (!cl && !sl) continue;  // forwarded through the node: no workload of this node pays
        const auto tot = totals(c, *t, window_slots);
        if (tot.bytes_out + tot.bytes_in == 0) continue;
        auto add = [&](const TopologyEnd& me, const TopologyEnd& peer, bool peer_local, std::uint64_t sent,
                       std::uint64_t received) {
            const auto cls = static_cast<std::size_t>(classify(peer.ip, peer_local, config));
            auto& e = by[qosNodeOf(me)];
            e.sent[cls] += sent;
            e.received[cls] += received;
        };
        if (cl) add(c.client, c.server, sl, tot.bytes_out, tot.bytes_in);
        if (sl) add(c.server, c.client, cl, tot.bytes_in, tot.bytes_out);
    }
    for (auto& [name, e] : by) {
        e.entity = name;
        for (std::size_t i = 0; i < e.sent.size(); ++i)
            e.cost += static_cast<double>(e.sent[i]) / 1e9 * opts_.config.price_per_gb[i];
        v->entities.push_back(std::move(e));
    }
    std::sort(v->entities.begin(), v->entities.end(), [](const CostEntity& a, const CostEntity& b) {
        if (a.cost != b.cost) return a.cost > b.cost;
        std::uint64_t sa = 0, sb = 0;
        for (auto x : a.sent) sa += x;
        for (auto x : b.sent) sb += x;
        if (sa != sb) return sa > sb;
        return a.entity < b.entity;
    });
    views.cost = std::move(v);
}

}  // namespace netprobe::analysis
