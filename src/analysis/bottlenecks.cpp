#include "netprobe/analysis/bottlenecks.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <tuple>

#include <netprobe/analysis/qos.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

// ---- CounterWindow ----

void CounterWindow::add(const std::string& key, collector::MonoTime at, std::uint64_t value) {
    auto it = series_.find(key);
    if (it == series_.end()) {
        Series s;
        s.base_at = s.last_at = at;
        s.last = value;
        series_.emplace(key, std::move(s));
        return;
    }
    Series& s = it->second;
    if (at <= s.last_at) return;
    s.points.push_back({at, value >= s.last ? value - s.last : value});
    s.last = value;
    s.last_at = at;
}

void CounterWindow::expire(collector::MonoTime now) {
    for (auto it = series_.begin(); it != series_.end();) {
        Series& s = it->second;
        while (!s.points.empty() && now - s.points.front().at >= window_) {
            s.base_at = s.points.front().at;
            s.points.pop_front();
        }
        if (now - s.last_at >= window_)
            it = series_.erase(it);
        else
            ++it;
    }
}

CounterWindow::Increase CounterWindow::increase(const std::string& key) const {
    Increase r;
    auto it = series_.find(key);
    if (it == series_.end() || it->second.points.empty()) return r;
    const Series& s = it->second;
    for (const auto& p : s.points) r.delta += p.delta;
    r.readings = s.points.size();
    r.seconds = std::chrono::duration<double>(s.points.back().at - s.base_at).count();
    return r;
}

// ---- kinds ----

namespace {

constexpr const char* kKindNames[kBottleneckKinds] = {
    "interface_utilisation", "qdisc_drops", "qdisc_backlog",  "listen_overflow", "conntrack_usage",
    "retransmit_hotspot",    "rtt_hotspot", "socket_buffer_pressure", "top_talker",
};

}  // namespace

const char* toString(BottleneckKind k) { return kKindNames[static_cast<std::size_t>(k)]; }

std::optional<BottleneckKind> parseBottleneckKind(std::string_view s) {
    for (std::size_t i = 0; i < kBottleneckKinds; ++i)
        if (s == kKindNames[i]) return static_cast<BottleneckKind>(i);
    return std::nullopt;
}

// ---- the stage ----

namespace {

std::string fmt(double v, const char* f = "%.3g") {
    char b[48];
    std::snprintf(b, sizeof b, v == std::floor(v) && std::fabs(v) < 1e15 ? "%.0f" : f, v);
    return b;
}

std::string pct(double ratio) { return fmt(ratio * 100, "%.1f") + "%"; }

// Severity base + how far past the threshold of that severity the figure is.
double scoreOf(const std::string& severity, double figure, double threshold) {
    const double base = severity == "critical" ? 200 : severity == "warning" ? 100 : 0;
    const double past = figure > 0 && threshold > 0 ? 99.0 * (1.0 - std::min(1.0, threshold / figure)) : 0;
    return base + std::clamp(past, 0.0, 99.0);
}

// The netstat counters the stage follows: listen queues and socket buffers.
constexpr const char* kListenOverflows = "TcpExt.ListenOverflows";
constexpr const char* kListenDrops = "TcpExt.ListenDrops";
struct SocketCounter {
    const char* key;
    const char* proto;  // the finding it counts in
    bool drop;          // a drop (counted against the threshold) or context
    const char* unit;
};
constexpr SocketCounter kSocketCounters[] = {
    {"TcpExt.TCPRcvQDrop", "tcp", true, "segments"},   {"TcpExt.TCPBacklogDrop", "tcp", true, "segments"},
    {"TcpExt.RcvPruned", "tcp", true, "packets"},      {"TcpExt.OfoPruned", "tcp", true, "packets"},
    {"TcpExt.TCPOFODrop", "tcp", true, "segments"},    {"TcpExt.PruneCalled", "tcp", false, "events"},
    {"TcpExt.TCPMemoryPressures", "tcp", false, "events"}, {"Udp.RcvbufErrors", "udp", true, "datagrams"},
    {"Udp.SndbufErrors", "udp", true, "datagrams"},
};

std::string netstatKey(const char* k) { return std::string("netstat/") + k; }

// The netstat name as nstat prints it ("TcpExt.ListenOverflows" -> "TcpExtListenOverflows").
std::string nstatName(std::string_view k) {
    std::string s(k);
    s.erase(std::remove(s.begin(), s.end(), '.'), s.end());
    return s;
}

std::string edgeSubject(const std::string& client, const std::string& server, std::uint16_t port, std::uint8_t proto) {
    const std::string srv = server.find(':') != std::string::npos ? "[" + server + "]" : server;
    return client + " -> " + srv + ":" + std::to_string(port) + (proto == 6 ? "" : proto == 17 ? "/udp" : "/" + std::to_string(proto));
}

std::string promEdge(const std::string& client, const std::string& server, std::uint16_t port) {
    return "{client=\"" + client + "\",server=\"" + server + "\",port=\"" + std::to_string(port) + "\"}";
}

bool isShaper(const std::string& kind) { return kind == "tbf" || kind == "htb" || kind == "hfsc" || kind == "cbq"; }

}  // namespace

Bottlenecks::Bottlenecks(BottleneckOptions options) : options_(std::move(options)), counters_(options_.window) {}

void Bottlenecks::run(const collector::Snapshot& s, Views& views) {
    const auto now = s.mono;
    if (!started_) {
        started_ = true;
        first_ = now;
    }
    const auto& o = options_;

    // Readings of the cumulative counters.
    if (s.netstat) {
        auto add = [&](const char* k) {
            if (auto it = s.netstat->find(k); it != s.netstat->end()) counters_.add(netstatKey(k), now, it->second);
        };
        add(kListenOverflows);
        add(kListenDrops);
        for (const auto& c : kSocketCounters) add(c.key);
    }
    for (const auto& i : s.interfaces) {
        counters_.add("if/" + i.name + "/ingress", now, i.ingress_bytes);
        counters_.add("if/" + i.name + "/egress", now, i.egress_bytes);
    }
    // Root qdiscs at the instant the links task read them (a new reading only).
    if (s.links && s.links->read_at != collector::MonoTime{} && s.links->read_at != links_at_) {
        links_at_ = s.links->read_at;
        for (const auto& l : s.links->links) {
            std::uint64_t drops = 0, sent = 0, overlimits = 0, requeues = 0, bb = 0, bp = 0;
            bool any = false;
            for (const auto& q : l.qdiscs) {
                if (!q.root() || !q.stats) continue;
                any = true;
                drops += q.drops;
                sent += q.packets;
                overlimits += q.overlimits;
                requeues += q.requeues;
                bb += q.backlog_bytes;
                bp += q.backlog_packets;
            }
            if (!any) continue;
            const std::string k = "qdisc/" + l.name + "/";
            counters_.add(k + "drops", links_at_, drops);
            counters_.add(k + "sent", links_at_, sent);
            counters_.add(k + "overlimits", links_at_, overlimits);
            counters_.add(k + "requeues", links_at_, requeues);
            backlog_[l.name].push_back({links_at_, bb, bp});
        }
    }
    if (s.conntrack && s.conntrack->available) {
        counters_.add("conntrack/drop", now, s.conntrack->drop);
        counters_.add("conntrack/early_drop", now, s.conntrack->early_drop);
        counters_.add("conntrack/insert_failed", now, s.conntrack->insert_failed);
    }
    counters_.expire(now);
    for (auto it = backlog_.begin(); it != backlog_.end();) {
        auto& d = it->second;
        while (!d.empty() && now - d.front().at >= o.window) d.pop_front();
        it = d.empty() ? backlog_.erase(it) : std::next(it);
    }

    const double window_seconds =
        std::min(std::chrono::duration<double>(now - first_).count(), std::chrono::duration<double>(o.window).count());
    const std::string win = std::to_string(static_cast<long>(o.window.count())) + "s";
    auto inc = [&](const std::string& k) { return counters_.increase(k); };

    std::vector<BottleneckFinding> out;
    auto v = std::make_shared<BottleneckView>();

    // Links by index (speeds, names) and the top talkers of an interface's direction.
    std::map<std::uint32_t, const collector::LinkState*> links;
    if (s.links) {
        v->links = s.links->refreshes > 0;
        if (v->links)
            v->links_read_at =
                s.taken_at - std::chrono::duration_cast<collector::WallTime::duration>(now - s.links->read_at);
        for (const auto& l : s.links->links) links[l.index] = &l;
    }
    auto talkersOn = [&](BottleneckFinding& f, const std::string& ifname, std::uint8_t dir) {
        if (!views.talkers || s.interval_seconds <= 0) return;
        std::size_t n = 0;
        for (const auto& r : views.talkers->top) {
            if (r.interface != ifname || r.traffic.key.direction != dir || r.traffic.bytes == 0) continue;
            const auto& k = r.traffic.key;
            std::string who = util::formatAddr(k.local) + (dir == NP_DIR_EGRESS ? " -> " : " <- ") + util::formatAddr(k.peer);
            if (k.server_port) who += " port " + std::to_string(k.server_port);
            f.evidence.push_back({"talker " + who, static_cast<double>(r.traffic.bytes) / s.interval_seconds, "bytes/s"});
            if (++n == 3) break;
        }
    };

    // interface_utilisation: mean bits/s over the window against the link's speed.
    for (const auto& i : s.interfaces) {
        auto l = links.find(i.index);
        if (l == links.end() || l->second->speed_mbps == 0 || l->second->name != i.name) continue;
        const double speed_bps = l->second->speed_mbps * 1e6;
        InterfaceLoad load;
        load.interface = i.name;
        load.speed_mbps = l->second->speed_mbps;
        load.speed_configured = l->second->speed_configured;
        const auto in = inc("if/" + i.name + "/ingress"), eg = inc("if/" + i.name + "/egress");
        if (in.seconds > 0) load.ingress_bps = static_cast<double>(in.delta) * 8 / in.seconds;
        if (eg.seconds > 0) load.egress_bps = static_cast<double>(eg.delta) * 8 / eg.seconds;
        load.ingress_ratio = load.ingress_bps / speed_bps;
        load.egress_ratio = load.egress_bps / speed_bps;
        v->interfaces.push_back(load);
        const bool egress = load.egress_ratio >= load.ingress_ratio;
        const double ratio = egress ? load.egress_ratio : load.ingress_ratio;
        if (ratio < o.utilisation_min) continue;
        BottleneckFinding f;
        f.kind = BottleneckKind::InterfaceUtilisation;
        f.subject = i.name;
        f.severity = ratio >= o.utilisation_critical ? "critical" : "warning";
        f.score = scoreOf(f.severity, ratio, f.severity == "critical" ? o.utilisation_critical : o.utilisation_min);
        const char* dir = egress ? "egress" : "ingress";
        f.title = "Interface " + i.name + " at " + pct(ratio) + " of its " + fmt(load.speed_mbps) + " Mb/s" +
                  (load.speed_configured ? " (configured)" : "") + " (" + dir + ")";
        f.evidence = {{"ingress_utilisation", load.ingress_ratio, "ratio"},
                      {"egress_utilisation", load.egress_ratio, "ratio"},
                      {"ingress_rate", load.ingress_bps, "bits/s"},
                      {"egress_rate", load.egress_bps, "bits/s"},
                      {"speed", static_cast<double>(load.speed_mbps) * 1e6, "bits/s"}};
        talkersOn(f, i.name, egress ? NP_DIR_EGRESS : NP_DIR_INGRESS);
        f.explanation = std::string(load.speed_configured
                                        ? "The link carries close to the capacity configured for it (--link-speed) "
                                        : "The link carries close to its negotiated speed ") +
                        "over the whole window: packets queue in the qdisc or the NIC (latency grows) and, once the "
                        "queues are full, are dropped.";
        f.fix = {"ethtool " + i.name + "   # the negotiated speed and duplex (a link that came up slower than it should)",
                 "netprobe top talkers   # who fills it",
                 "tc qdisc replace dev " + i.name + " root fq_codel   # keep queues short and flows isolated at saturation",
                 "add capacity: a faster link or a bond (ip link add bond0 type bond mode 802.3ad)"};
        f.query = "netprobe_interface_utilisation_ratio{interface=\"" + i.name + "\"}";
        out.push_back(std::move(f));
    }

    // qdisc_drops and qdisc_backlog: the root qdiscs of every link of the namespace.
    for (const auto& [index, lp] : links) {
        const auto& l = *lp;
        std::string kind;
        for (const auto& q : l.qdiscs)
            if (q.root()) kind = q.kind;
        const std::string k = "qdisc/" + l.name + "/";
        const auto drops = inc(k + "drops");
        if (drops.delta >= o.qdisc_drops_min) {
            const auto sent = inc(k + "sent");
            const double ratio = static_cast<double>(drops.delta) / static_cast<double>(drops.delta + sent.delta);
            BottleneckFinding f;
            f.kind = BottleneckKind::QdiscDrops;
            f.subject = l.name;
            f.severity = ratio >= o.qdisc_drop_ratio_critical ? "critical" : "warning";
            f.score = f.severity == "critical" ? scoreOf(f.severity, ratio, o.qdisc_drop_ratio_critical)
                                               : scoreOf(f.severity, static_cast<double>(drops.delta),
                                                         static_cast<double>(o.qdisc_drops_min));
            f.title = "Queueing discipline " + kind + " on " + l.name + " dropped " + fmt(static_cast<double>(drops.delta)) +
                      " packets (" + pct(ratio) + ")";
            f.evidence = {{"drops", static_cast<double>(drops.delta), "packets"},
                          {"sent", static_cast<double>(sent.delta), "packets"},
                          {"drop_ratio", ratio, "ratio"},
                          {"overlimits", static_cast<double>(inc(k + "overlimits").delta), "events"},
                          {"requeues", static_cast<double>(inc(k + "requeues").delta), "events"},
                          {"rate", drops.seconds > 0 ? static_cast<double>(drops.delta) / drops.seconds : 0, "packets/s"},
                          {"seconds", drops.seconds, "seconds"}};
            talkersOn(f, l.name, NP_DIR_EGRESS);
            const auto advice = dropAdvice("QDISC_DROP");
            f.explanation = advice.cause +
                            (isShaper(kind) ? " The root qdisc is a shaper (" + kind +
                                                  "): traffic above its configured rate waits in its queue, and what "
                                                  "does not fit is dropped."
                                            : std::string(" The root qdisc is ") + (kind.empty() ? "?" : kind) + ".");
            f.fix = {"tc -s qdisc show dev " + l.name + "   # drops, overlimits and backlog per qdisc"};
            if (isShaper(kind))
                f.fix.push_back("tc qdisc change dev " + l.name + " root " + kind +
                                " rate RATE ...   # raise the shaper's rate if it is lower than the traffic needs");
            else if (kind == "pfifo_fast" || kind == "pfifo" || kind == "bfifo")
                f.fix.push_back("ip link set dev " + l.name + " txqueuelen 10000   # a longer queue for bursts");
            f.fix.push_back("tc qdisc replace dev " + l.name + " root fq_codel   # drop early and fairly instead of tail-dropping bursts");
            f.fix.push_back("netprobe top talkers   # the senders behind it");
            f.query = "tc -s qdisc show dev " + l.name;
            out.push_back(std::move(f));
        }
        auto b = backlog_.find(l.name);
        if (b != backlog_.end() && b->second.size() >= 2) {
            double mean_b = 0, mean_p = 0;
            std::uint64_t max_b = 0;
            for (const auto& r : b->second) {
                mean_b += static_cast<double>(r.bytes);
                mean_p += static_cast<double>(r.packets);
                max_b = std::max(max_b, r.bytes);
            }
            mean_b /= static_cast<double>(b->second.size());
            mean_p /= static_cast<double>(b->second.size());
            if (mean_b >= static_cast<double>(o.qdisc_backlog_bytes_min) ||
                mean_p >= static_cast<double>(o.qdisc_backlog_packets_min)) {
                BottleneckFinding f;
                f.kind = BottleneckKind::QdiscBacklog;
                f.subject = l.name;
                f.severity = mean_b >= static_cast<double>(o.qdisc_backlog_bytes_critical) ? "critical" : "warning";
                f.score = f.severity == "critical"
                              ? scoreOf(f.severity, mean_b, static_cast<double>(o.qdisc_backlog_bytes_critical))
                              : scoreOf(f.severity,
                                        std::max(mean_b / static_cast<double>(o.qdisc_backlog_bytes_min),
                                                 mean_p / static_cast<double>(o.qdisc_backlog_packets_min)),
                                        1.0);
                f.title = "Standing queue in " + kind + " on " + l.name + ": " + fmt(mean_b / 1024, "%.0f") +
                          " KiB on average";
                const auto& last = b->second.back();
                f.evidence = {{"backlog_bytes", static_cast<double>(last.bytes), "bytes"},
                              {"backlog_packets", static_cast<double>(last.packets), "packets"},
                              {"mean_backlog_bytes", mean_b, "bytes"},
                              {"mean_backlog_packets", mean_p, "packets"},
                              {"max_backlog_bytes", static_cast<double>(max_b), "bytes"},
                              {"readings", static_cast<double>(b->second.size()), "readings"}};
                if (l.speed_mbps)
                    f.evidence.push_back({"queue_delay_at_link_speed", mean_b * 8 / (l.speed_mbps * 1e6), "seconds"});
                talkersOn(f, l.name, NP_DIR_EGRESS);
                f.explanation = "Packets wait in the egress queue of " + l.name +
                                " at every reading: more is sent than the link (or a shaper) passes, and each packet "
                                "waits behind the queue (bufferbloat: latency for every flow on the link).";
                f.fix = {"tc -s qdisc show dev " + l.name,
                         "tc qdisc replace dev " + l.name + " root fq_codel   # keeps the standing queue near 5 ms",
                         isShaper(kind) ? "tc qdisc change dev " + l.name + " root " + kind +
                                              " rate RATE ...   # the shaper's rate is below the offered load"
                                        : "netprobe top talkers   # the senders behind it"};
                f.query = "tc -s qdisc show dev " + l.name;
                out.push_back(std::move(f));
            }
        }
    }

    // listen_overflow: the kernel's counters of the agent's namespace.
    if (const auto ov = inc(netstatKey(kListenOverflows)); ov.delta >= o.listen_overflows_min) {
        const auto dr = inc(netstatKey(kListenDrops));
        const auto advice = dropAdvice("TCP_LISTEN_OVERFLOW");
        BottleneckFinding f;
        f.kind = BottleneckKind::ListenOverflow;
        f.subject = "tcp";
        f.severity = ov.delta >= o.listen_overflows_critical ? "critical" : "warning";
        f.score = scoreOf(f.severity, static_cast<double>(ov.delta),
                          static_cast<double>(f.severity == "critical" ? o.listen_overflows_critical : o.listen_overflows_min));
        f.title = "Accept queues overflowing: " + fmt(static_cast<double>(ov.delta)) + " connections in " +
                  fmt(ov.seconds, "%.0f") + " s";
        f.evidence = {{"overflows", static_cast<double>(ov.delta), "connections"},
                      {"listen_drops", static_cast<double>(dr.delta), "packets"},
                      {"rate", ov.seconds > 0 ? static_cast<double>(ov.delta) / ov.seconds : 0, "overflows/s"}};
        f.explanation = advice.cause + " The SYN or the handshake's last ACK is dropped and the client retries "
                                       "after a second or more.";
        f.fix = {"ss -ltn   # Recv-Q at Send-Q on a listening socket is a full accept queue",
                 "sysctl -w net.core.somaxconn=4096", "sysctl -w net.ipv4.tcp_max_syn_backlog=4096",
                 "raise the application's listen backlog (listen(fd, 4096); nginx: listen ... backlog=4096) or accept "
                 "faster (more workers)"};
        f.query = "nstat -az TcpExtListenOverflows TcpExtListenDrops; ss -ltn";
        out.push_back(std::move(f));
    }

    // conntrack_usage: entries against the table's limit; drops for a full table.
    if (s.conntrack && s.conntrack->available && s.conntrack->max > 0) {
        v->conntrack = true;
        const auto& c = *s.conntrack;
        v->conntrack_entries = c.count;
        v->conntrack_max = c.max;
        const double ratio = static_cast<double>(c.count) / static_cast<double>(c.max);
        const auto drop = inc("conntrack/drop"), early = inc("conntrack/early_drop");
        if (ratio >= o.conntrack_usage_min || drop.delta + early.delta > 0) {
            BottleneckFinding f;
            f.kind = BottleneckKind::ConntrackUsage;
            f.subject = "conntrack";
            const bool full = drop.delta + early.delta > 0;
            f.severity = full || ratio >= o.conntrack_usage_critical ? "critical" : "warning";
            f.score = full ? 299 : scoreOf(f.severity, ratio, f.severity == "critical" ? o.conntrack_usage_critical
                                                                                         : o.conntrack_usage_min);
            f.title = full ? "Conntrack table full: " + fmt(static_cast<double>(drop.delta + early.delta)) +
                                 " packets or entries dropped"
                           : "Conntrack table at " + pct(ratio) + " of its maximum";
            f.evidence = {{"entries", static_cast<double>(c.count), "entries"},
                          {"max", static_cast<double>(c.max), "entries"},
                          {"usage", ratio, "ratio"},
                          {"drops", static_cast<double>(drop.delta), "packets"},
                          {"early_drops", static_cast<double>(early.delta), "entries"},
                          {"insert_failed", static_cast<double>(inc("conntrack/insert_failed").delta), "entries"}};
            f.explanation = "Every connection the firewall or NAT tracks holds an entry until it times out; once "
                            "nf_conntrack_count reaches nf_conntrack_max, the kernel evicts unconfirmed entries and "
                            "then drops new connections' packets (\"nf_conntrack: table full, dropping packet\").";
            f.fix = {"sysctl -w net.netfilter.nf_conntrack_max=" + std::to_string(c.max * 2) +
                         "   # (the limit is the initial namespace's; memory: ~320 bytes per entry)",
                     "conntrack -S; conntrack -L -o extended | awk '{print $3}' | sort | uniq -c   # entries by protocol",
                     "sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30   # shorter timeouts free entries sooner",
                     "nft add rule inet raw prerouting udp dport 53 notrack   # no entries for stateless high-volume traffic"};
            f.query = "cat /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max; "
                      "node_nf_conntrack_entries / node_nf_conntrack_entries_limit";
            out.push_back(std::move(f));
        }
    }

    // socket_buffer_pressure: receive-queue and buffer drops, per protocol.
    for (const char* proto : {"tcp", "udp"}) {
        std::uint64_t drops = 0;
        std::vector<Evidence> ev;
        for (const auto& c : kSocketCounters) {
            if (std::string_view(c.proto) != proto) continue;
            const auto d = inc(netstatKey(c.key)).delta;
            if (c.drop) drops += d;
            if (d) ev.push_back({nstatName(c.key), static_cast<double>(d), c.unit});
        }
        if (drops < o.socket_drops_min) continue;
        BottleneckFinding f;
        f.kind = BottleneckKind::SocketBufferPressure;
        f.subject = proto;
        f.severity = drops >= o.socket_drops_critical ? "critical" : "warning";
        f.score = scoreOf(f.severity, static_cast<double>(drops),
                          static_cast<double>(f.severity == "critical" ? o.socket_drops_critical : o.socket_drops_min));
        const bool tcp = std::string_view(proto) == "tcp";
        f.title = std::string(tcp ? "TCP" : "UDP") + " sockets' buffers overflowing: " + fmt(static_cast<double>(drops)) +
                  (tcp ? " segments" : " datagrams") + " dropped";
        f.evidence = {{"drops", static_cast<double>(drops), tcp ? "segments" : "datagrams"}};
        f.evidence.insert(f.evidence.end(), ev.begin(), ev.end());
        f.explanation = tcp ? "Receivers do not read fast enough: segments arrive for a socket whose receive buffer is "
                              "full (TCPRcvQDrop, TCPBacklogDrop) or is pruned to make room (RcvPruned, OfoPruned). "
                              "The sender retransmits; throughput collapses."
                            : "Datagrams arrived for a socket whose receive buffer was full (RcvbufErrors) or could "
                              "not be queued for sending (SndbufErrors): they are lost, UDP has no retransmission.";
        f.fix = tcp ? std::vector<std::string>{"ss -tmn   # skmem: r (queued) against rb (the buffer) per socket",
                                               "sysctl -w net.core.rmem_max=16777216",
                                               "sysctl -w net.ipv4.tcp_rmem='4096 131072 16777216'",
                                               "read faster: more reader threads, or a larger SO_RCVBUF in the application"}
                    : std::vector<std::string>{"ss -umn   # skmem: r against rb per socket",
                                               "sysctl -w net.core.rmem_max=26214400",
                                               "sysctl -w net.core.rmem_default=26214400",
                                               "raise SO_RCVBUF in the application, or read faster (recvmmsg, more threads)"};
        f.query = tcp ? "nstat -az TcpExtTCPRcvQDrop TcpExtTCPBacklogDrop TcpExtRcvPruned TcpExtOfoPruned TcpExtTCPOFODrop"
                      : "nstat -az UdpRcvbufErrors UdpSndbufErrors";
        out.push_back(std::move(f));
    }

    // Edges from the topology (retransmits, bytes, the sockets' RTT) and the QoS view
    // (handshake RTTs), grouped as the QoS metrics name them.
    struct Edge {
        std::string client, server;
        std::uint16_t port = 0;
        std::uint8_t proto = 6;
        std::uint64_t bytes = 0, packets_out = 0, packets_in = 0, retrans_client = 0, retrans_server = 0;
        double srtt_sum = 0;
        std::size_t srtt_n = 0;
        std::vector<double> rtt_ms, server_ms, client_ms;
    };
    std::map<std::tuple<std::string, std::string, std::uint16_t, std::uint8_t>, Edge> edges;
    auto edgeOf = [&](const std::string& a, const std::string& b, std::uint16_t port, std::uint8_t proto) -> Edge& {
        auto& e = edges[{a, b, port, proto}];
        e.client = a;
        e.server = b;
        e.port = port;
        e.proto = proto;
        return e;
    };
    std::map<TcpConversationKey, const Conversation*> tcp_conv;
    if (views.topology) {
        const auto& t = *views.topology;
        tcp_conv = tcpConversations(t);
        const std::size_t window_slots = windowSlots(t, static_cast<std::size_t>(o.window.count()));
        for (const auto& cp : t.conversations) {
            const auto& c = *cp;
            const auto tot = totals(c, t, window_slots);
            if (tot.packets_out + tot.packets_in == 0) continue;
            auto& e = edgeOf(qosNodeOf(c.client), qosNodeOf(c.server), c.port, c.ip_proto);
            e.bytes += tot.bytes_out + tot.bytes_in;
            e.packets_out += tot.packets_out;
            e.packets_in += tot.packets_in;
            e.retrans_client += tot.retrans_client;
            e.retrans_server += tot.retrans_server;
            if (tot.rtt_ms > 0) {
                e.srtt_sum += tot.rtt_ms;
                ++e.srtt_n;
            }
        }
    }
    if (views.qos) {
        const auto& q = *views.qos;
        const auto window_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(o.window).count());
        const std::uint64_t oldest = q.now_ns > window_ns ? q.now_ns - window_ns : 0;
        for (const auto& cp : q.conversations) {
            const auto& c = *cp;
            Edge* e = nullptr;
            for (const auto& r : c.samples) {
                if (r.mono_ns < oldest) continue;
                if (!e) {
                    auto t = tcp_conv.find(std::tuple{c.client, c.server, c.port});
                    e = t != tcp_conv.end() ? &edgeOf(qosNodeOf(t->second->client), qosNodeOf(t->second->server), c.port, 6)
                                            : &edgeOf(util::formatAddr(c.client), util::formatAddr(c.server), c.port, 6);
                }
                e->rtt_ms.push_back(r.rttUs() / 1000.0);
                e->server_ms.push_back(r.server_us / 1000.0);
                e->client_ms.push_back(r.client_us / 1000.0);
            }
        }
    }
    for (auto& [_, e] : edges) {
        const std::string subject = edgeSubject(e.client, e.server, e.port, e.proto);
        // retransmit_hotspot
        const std::uint64_t retrans = e.retrans_client + e.retrans_server, packets = e.packets_out + e.packets_in;
        if (e.proto == 6 && retrans >= o.retransmits_min && packets > 0) {
            const double ratio = static_cast<double>(retrans) / static_cast<double>(packets);
            if (ratio >= o.retransmit_ratio_min) {
                BottleneckFinding f;
                f.kind = BottleneckKind::RetransmitHotspot;
                f.subject = subject;
                f.severity = ratio >= o.retransmit_ratio_critical ? "critical" : "warning";
                f.score = scoreOf(f.severity, ratio,
                                  f.severity == "critical" ? o.retransmit_ratio_critical : o.retransmit_ratio_min);
                f.title = "Retransmissions at " + pct(ratio) + " of the packets of " + subject;
                const double c2s = e.packets_out ? static_cast<double>(e.retrans_client) / static_cast<double>(e.packets_out) : 0;
                const double s2c = e.packets_in ? static_cast<double>(e.retrans_server) / static_cast<double>(e.packets_in) : 0;
                f.evidence = {{"retransmits_client", static_cast<double>(e.retrans_client), "segments"},
                              {"retransmits_server", static_cast<double>(e.retrans_server), "segments"},
                              {"packets", static_cast<double>(packets), "packets"},
                              {"loss_client_to_server", c2s, "ratio"},
                              {"loss_server_to_client", s2c, "ratio"}};
                f.explanation = std::string("Segments of this edge are lost or delayed past the retransmission timeout, "
                                            "mostly ") +
                                (c2s >= s2c ? "from the client to the server" : "from the server to the client") +
                                ": congestion on the path, a lossy link, or drops in a queue or a firewall.";
                f.fix = {"ss -ti dst " + e.server + "   # cwnd, rtt and retrans of the sockets (on the sending end)",
                         "netprobe top drops   # kernel drops on this node",
                         "tc -s qdisc show; ethtool -S IFACE | grep -iE 'drop|err'   # queues and NIC errors on the path"};
                f.query = "netprobe_edge_loss_ratio" + promEdge(e.client, e.server, e.port);
                out.push_back(std::move(f));
            }
        }
        // rtt_hotspot: handshake RTTs, else the sockets' smoothed RTT
        double rtt = 0;
        std::size_t n = 0;
        bool handshakes = false;
        if (e.rtt_ms.size() >= o.rtt_samples_min) {
            rtt = quantileOf(e.rtt_ms, 0.5);
            n = e.rtt_ms.size();
            handshakes = true;
        } else if (e.srtt_n > 0) {
            rtt = e.srtt_sum / static_cast<double>(e.srtt_n);
            n = e.srtt_n;
        }
        if (n > 0 && rtt >= o.rtt_ms_min) {
            BottleneckFinding f;
            f.kind = BottleneckKind::RttHotspot;
            f.subject = subject;
            f.severity = rtt >= o.rtt_ms_critical ? "critical" : "warning";
            f.score = scoreOf(f.severity, rtt, f.severity == "critical" ? o.rtt_ms_critical : o.rtt_ms_min);
            f.title = "Round trip of " + fmt(rtt, "%.1f") + " ms on " + subject;
            if (handshakes) {
                const double srv = quantileOf(e.server_ms, 0.5), cli = quantileOf(e.client_ms, 0.5);
                f.evidence = {{"rtt_p50", rtt / 1000, "seconds"},
                              {"rtt_p90", quantileOf(e.rtt_ms, 0.9) / 1000, "seconds"},
                              {"server_side_p50", srv / 1000, "seconds"},
                              {"client_side_p50", cli / 1000, "seconds"},
                              {"handshakes", static_cast<double>(n), "samples"}};
                f.explanation = std::string("TCP handshakes on this edge take long; most of it on the ") +
                                (srv >= cli ? "server's side of this node (the path to the server, or the server "
                                              "answering SYNs late: a full accept queue, CPU)"
                                            : "client's side of this node (the path to the client, or the client "
                                              "acknowledging late)") +
                                ".";
            } else {
                f.evidence = {{"conversations", static_cast<double>(n), "conversations"}};
                f.explanation = "The sockets of this edge estimate a long round trip (smoothed RTT): a long or "
                                "congested path, or queues along it (bufferbloat).";
            }
            if (e.srtt_n) f.evidence.push_back({"srtt_mean", e.srtt_sum / static_cast<double>(e.srtt_n) / 1000, "seconds"});
            f.fix = {"mtr -n -c 20 " + e.server + "   # where along the path the delay grows",
                     "tc -s qdisc show   # standing queues (backlog) on this node's interfaces",
                     "ss -ti dst " + e.server + "   # rtt/rttvar of the sockets"};
            f.query = handshakes ? "histogram_quantile(0.5, sum by (le) (rate(netprobe_edge_rtt_seconds_bucket" +
                                       promEdge(e.client, e.server, e.port) + "[5m])))"
                                 : "curl -s 'localhost:8081/api/v1/qos?window=" + win + "'";
            out.push_back(std::move(f));
        }
    }

    // top_talker (info): the heaviest edges.
    {
        std::vector<const Edge*> heavy;
        for (const auto& [_, e] : edges)
            if (e.bytes >= o.top_talker_bytes_min) heavy.push_back(&e);
        std::sort(heavy.begin(), heavy.end(), [](const Edge* a, const Edge* b) { return a->bytes > b->bytes; });
        std::uint64_t all = 0;
        for (const auto& [_, e] : edges) all += e.bytes;
        for (std::size_t i = 0; i < heavy.size() && i < o.top_talkers; ++i) {
            const Edge& e = *heavy[i];
            BottleneckFinding f;
            f.kind = BottleneckKind::TopTalker;
            f.subject = edgeSubject(e.client, e.server, e.port, e.proto);
            f.severity = "info";
            f.score = scoreOf(f.severity, static_cast<double>(e.bytes), static_cast<double>(o.top_talker_bytes_min));
            const double secs = std::max(window_seconds, 1.0);
            f.title = "Top talker #" + std::to_string(i + 1) + ": " + f.subject + " at " +
                      fmt(static_cast<double>(e.bytes) * 8 / secs / 1e6, "%.3g") + " Mb/s";
            f.evidence = {{"bytes", static_cast<double>(e.bytes), "bytes"},
                          {"rate", static_cast<double>(e.bytes) / secs, "bytes/s"},
                          {"packets", static_cast<double>(e.packets_out + e.packets_in), "packets"},
                          {"share", all ? static_cast<double>(e.bytes) / static_cast<double>(all) : 0, "ratio"}};
            f.explanation = "The edge that moved the most bytes over the window (both directions). Informational: "
                            "a bottleneck elsewhere in this list may be its doing.";
            f.fix = {"netprobe topology --window " + win + "   # every edge, by rate",
                     "tc qdisc replace dev IFACE root fq   # pace bulk senders (with maxrate to cap one flow)"};
            f.query = "curl -s 'localhost:8081/api/v1/topology?window=" + win + "'";
            out.push_back(std::move(f));
        }
    }

    // Rank: by score, at most max_per_kind of each kind; keep each finding's first time.
    std::sort(out.begin(), out.end(), [](const BottleneckFinding& a, const BottleneckFinding& b) {
        if (a.score != b.score) return a.score > b.score;
        return std::tuple(a.kind, a.subject) < std::tuple(b.kind, b.subject);
    });
    std::array<std::size_t, kBottleneckKinds> per_kind{};
    std::map<std::string, collector::WallTime> still;
    for (auto& f : out) {
        if (per_kind[static_cast<std::size_t>(f.kind)]++ >= o.max_per_kind) continue;
        const std::string key = std::string(toString(f.kind)) + "/" + f.subject;
        auto it = since_.find(key);
        f.since = it != since_.end() ? it->second : s.taken_at;
        still[key] = f.since;
        v->findings.push_back(std::move(f));
    }
    since_ = std::move(still);
    std::sort(v->interfaces.begin(), v->interfaces.end(),
              [](const InterfaceLoad& a, const InterfaceLoad& b) { return a.interface < b.interface; });
    v->window_seconds = window_seconds;
    v->evaluated_at = s.taken_at;
    views.bottlenecks = std::move(v);
}

}  // namespace netprobe::analysis
