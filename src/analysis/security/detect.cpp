// Port scans, failed connections, fan-out, new peers and floods, as pure state
// machines over observations (include/netprobe/analysis/security/detect.hpp).
#include "netprobe/analysis/security/detect.hpp"

#include "netprobe/collector/snapshot.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <set>

namespace netprobe::analysis::security {

namespace {

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20;
constexpr std::uint8_t kTcp = 6, kUdp = 17;

std::size_t mix(std::size_t h, std::size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)); }

std::size_t hashAddr(const Addr16& a) {
    std::uint64_t lo, hi;
    std::memcpy(&lo, a.data(), 8);
    std::memcpy(&hi, a.data() + 8, 8);
    return mix(std::hash<std::uint64_t>{}(lo), std::hash<std::uint64_t>{}(hi));
}

std::string addrKey(const Addr16& a) { return std::string(reinterpret_cast<const char*>(a.data()), a.size()); }

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::size_t AddrHash::operator()(const Addr16& a) const noexcept { return hashAddr(a); }

std::size_t ConnectionAnalyzer::ProbeKeyHash::operator()(const ProbeKey& k) const noexcept {
    return mix(hashAddr(k.dst), (std::size_t{k.port} << 8) | k.proto);
}

const char* toString(EventType t) {
    switch (t) {
    case EventType::PortScan: return "port_scan";
    case EventType::SynFlood: return "syn_flood";
    case EventType::UdpFlood: return "udp_flood";
    case EventType::IcmpFlood: return "icmp_flood";
    case EventType::TrafficSurge: return "traffic_surge";
    case EventType::ConnectionFailures: return "connection_failures";
    case EventType::FanOut: return "fan_out";
    case EventType::NewPeer: return "new_peer";
    case EventType::ThreatIntelMatch: return "threat_intel_match";
    case EventType::PolicyEnforcementGap: return "policy_enforcement_gap";
    }
    return "unknown";
}

std::string eventTypeNames() {
    std::string s;
    for (int i = 0; i < kEventTypes; ++i) {
        if (i) s += ", ";
        s += toString(static_cast<EventType>(i));
    }
    return s;
}

IntelAnalyzer::Track* IntelAnalyzer::track(const IntelIndicatorInfo& info, const Addr16& local, const Addr16& remote,
                                           bool inbound, TimePoint at) {
    std::string key = "threat_intel_match|" + info.feed + "|" + info.indicator + "|" + util::formatAddr(local) +
                      (inbound ? "|in" : "|out");
    auto it = hits_.find(key);
    if (it == hits_.end()) {
        if (hits_.size() >= max_tracked_) {
            ++dropped_;
            return nullptr;
        }
        Track t;
        t.info = info;
        t.inbound = inbound;
        t.local = local;
        t.remote = remote;
        t.first = at;
        it = hits_.emplace(std::move(key), std::move(t)).first;
    }
    Track& t = it->second;
    t.last = std::max(t.last, at);
    t.first = std::min(t.first, at);
    return &t;
}

void IntelAnalyzer::observe(const IntelDnsQuery& q, const IntelIndicatorInfo& info) {
    // the remote end: the first address answered, else the DNS server asked
    Track* t = track(info, q.client, q.addresses.empty() ? q.server : q.addresses.front(), false, q.at);
    if (!t) return;
    ++t->queries_total;
    if (t->queries.size() < 20)
        t->queries.push_back(q.qname + " " + q.qtype + (q.rcode.empty() ? "" : " " + q.rcode) +
                             (q.qtype == "SNI" ? " to " : " via ") + util::formatEndpoint(q.server, q.server_port));
    for (const auto& a : q.addresses)
        if (t->resolved.size() < 16) t->resolved.insert(a);
}

void IntelAnalyzer::observe(const IntelHit& h, const IntelIndicatorInfo& info) {
    const bool inbound = (h.match & NP_INTEL_MATCH_SRC) != 0;
    const Addr16& remote = inbound ? h.src : h.dst;
    const Addr16& local = inbound ? h.dst : h.src;
    Track* tp = track(info, local, remote, inbound, h.at);
    if (!tp) return;
    Track& t = *tp;
    t.remote = remote;  // the latest address inside the indicator's prefix
    // Distinct 5-tuples: the kernel sends a record per flow entry, CPU and generation,
    // so one flow arrives more than once. Counted exactly up to kMaxFlowKeys per incident.
    const std::uint64_t fk = mix(mix(hashAddr(h.src), hashAddr(h.dst)),
                                 std::size_t{h.sport} << 24 | std::size_t{h.dport} << 8 | h.proto);
    if (t.flow_keys.contains(fk)) return;
    if (t.flow_keys.size() < kMaxFlowKeys) t.flow_keys.insert(fk);
    ++t.flows_total;
    if (t.flows.size() < 20)
        t.flows.push_back(util::protocolName(h.proto) + " " + util::formatEndpoint(h.src, h.sport) + " -> " +
                          util::formatEndpoint(h.dst, h.dport));
    if (t.ports.size() < 16 && (h.proto == 6 || h.proto == 17)) t.ports.insert(inbound ? h.sport : h.dport);
}

std::vector<Finding> IntelAnalyzer::evaluate(TimePoint now) {
    std::vector<Finding> out;
    for (auto it = hits_.begin(); it != hits_.end();) {
        const Track& t = it->second;
        if (now - t.last > hold_) {
            it = hits_.erase(it);
            continue;
        }
        Finding f;
        f.type = EventType::ThreatIntelMatch;
        f.severity = t.info.block || t.info.confidence >= 80 ? Severity::High
                     : t.info.confidence >= 50            ? Severity::Medium
                                                          : Severity::Low;
        f.key = it->first;
        f.src = t.inbound ? t.remote : t.local;
        f.dst = t.inbound ? t.local : t.remote;
        f.first_seen = t.first;
        f.last_seen = t.last;
        f.evidence["indicator"] = t.info.indicator;
        f.evidence["feed"] = t.info.feed;
        f.evidence["confidence"] = std::int64_t{t.info.confidence};
        f.evidence["action"] = std::string(t.info.block ? "block" : "alert");
        f.evidence["direction"] = std::string(t.inbound ? "inbound" : "outbound");
        if (!t.info.note.empty()) f.evidence["note"] = t.info.note;
        f.evidence["flows"] = static_cast<std::int64_t>(t.flows_total);
        f.evidence["flow_samples"] = t.flows;
        std::vector<std::string> ports;
        for (auto p : t.ports) ports.push_back(std::to_string(p));
        if (!ports.empty()) f.evidence["remote_ports"] = std::move(ports);
        if (t.queries_total) {
            f.evidence["dns_queries"] = static_cast<std::int64_t>(t.queries_total);
            f.evidence["dns_query_samples"] = t.queries;
            std::vector<std::string> resolved;
            for (const auto& a : t.resolved) resolved.push_back(util::formatAddr(a));
            f.evidence["resolved_addresses"] = std::move(resolved);
        }
        out.push_back(std::move(f));
        ++it;
    }
    return out;
}

void PolicyGapAnalyzer::observe(const PolicyGapObservation& g) {
    std::string pols;
    for (const auto& p : g.policies) pols += (pols.empty() ? "" : ",") + p;
    const std::string& pod = g.side == "egress" ? g.client_pod : g.server_pod;
    const std::string who = pod.empty() ? util::formatAddr(g.side == "egress" ? g.client : g.server) : pod;
    std::string key = "policy_enforcement_gap|" + g.side + "|" + who + "|" + pols;
    auto it = gaps_.find(key);
    if (it == gaps_.end()) {
        if (gaps_.size() >= max_tracked_) {
            ++dropped_;
            return;
        }
        it = gaps_.emplace(std::move(key), Track{g, g.at, 0, {}, {}}).first;
    }
    Track& t = it->second;
    t.last = std::max(t.last, g.at);
    ++t.conversations;
    if (t.samples.size() < 20)
        t.samples.push_back(util::protocolName(g.proto) + " " + util::formatAddr(g.client) +
                            (g.client_pod.empty() ? "" : " (" + g.client_pod + ")") + " -> " +
                            util::formatEndpoint(g.server, g.port) +
                            (g.server_pod.empty() ? "" : " (" + g.server_pod + ")") + ", " +
                            std::to_string(g.packets_out) + " packets out, " + std::to_string(g.packets_in) + " in");
    if (t.clients.size() < 16) t.clients.insert(util::formatAddr(g.client));
}

std::vector<Finding> PolicyGapAnalyzer::evaluate(TimePoint now) {
    std::vector<Finding> out;
    for (auto it = gaps_.begin(); it != gaps_.end();) {
        const Track& t = it->second;
        if (now - t.last > hold_) {
            it = gaps_.erase(it);
            continue;
        }
        Finding f;
        f.type = EventType::PolicyEnforcementGap;
        f.severity = Severity::High;  // the isolation operators count on is not there
        f.key = it->first;
        f.src = t.first.client;
        f.dst = t.first.server;
        f.first_seen = t.first.at;
        f.last_seen = t.last;
        f.evidence["side"] = t.first.side;
        f.evidence["policies"] = t.first.policies;
        f.evidence["pod"] = t.first.side == "egress" ? t.first.client_pod : t.first.server_pod;
        f.evidence["conversations"] = static_cast<std::int64_t>(t.conversations);
        f.evidence["conversation_samples"] = t.samples;
        f.evidence["clients"] = std::vector<std::string>(t.clients.begin(), t.clients.end());
        out.push_back(std::move(f));
        ++it;
    }
    return out;
}

std::optional<EventType> parseEventType(std::string_view s) {
    for (int i = 0; i < kEventTypes; ++i)
        if (s == toString(static_cast<EventType>(i))) return static_cast<EventType>(i);
    return std::nullopt;
}

const char* toString(ScanType t) {
    switch (t) {
    case ScanType::Syn: return "syn";
    case ScanType::Connect: return "connect";
    case ScanType::Fin: return "fin";
    case ScanType::Null: return "null";
    case ScanType::Xmas: return "xmas";
    case ScanType::Ack: return "ack";
    case ScanType::Udp: return "udp";
    }
    return "unknown";
}

const char* toString(Severity s) {
    switch (s) {
    case Severity::Low: return "low";
    case Severity::Medium: return "medium";
    case Severity::High: return "high";
    case Severity::Critical: return "critical";
    }
    return "unknown";
}

FirstPacket classify(const FlowStart& f) {
    if (f.proto == kUdp) return FirstPacket::Udp;
    const std::uint8_t fl = f.tcp_flags & 0x3f;  // ECE/CWR say nothing about the probe
    if (fl & kRst) return FirstPacket::Rst;
    if ((fl & (kSyn | kAck)) == (kSyn | kAck)) return FirstPacket::SynAck;
    if (fl & kSyn) {
        // A crafted half-open probe carries at most the MSS option (nmap: 24-byte
        // header); an operating system's connect() sends MSS, SACK, timestamps and
        // window scale (Linux 40 bytes, Windows 32).
        return f.tcp_doff <= 6 ? FirstPacket::SynRaw : FirstPacket::SynStack;
    }
    if (fl == 0) return FirstPacket::Null;
    if (fl == kFin) return FirstPacket::Fin;
    if (fl == (kFin | kPsh | kUrg)) return FirstPacket::Xmas;
    // A bare ACK opens nothing: an ACK scan's probe. One that carries data belongs to a
    // connection already under way (a flow announced again after a long silence).
    if (fl == kAck) return f.payload_len == 0 ? FirstPacket::AckOnly : FirstPacket::Other;
    return FirstPacket::Other;
}

// ---------------------------------------------------------------------------
// ConnectionAnalyzer

ConnectionAnalyzer::ConnectionAnalyzer(const SecurityConfig& cfg, TimePoint started) : cfg_(cfg), started_(started) {}

ConnectionAnalyzer::Source* ConnectionAnalyzer::find(const Addr16& a) {
    auto it = sources_.find(a);
    return it == sources_.end() ? nullptr : &it->second;
}

ConnectionAnalyzer::Source& ConnectionAnalyzer::source(const Addr16& a) {
    auto it = sources_.find(a);
    if (it != sources_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return it->second;
    }
    while (sources_.size() >= std::max<std::uint32_t>(cfg_.max_sources, 1)) {
        probes_total_ -= sources_.at(lru_.back()).probes.size();
        sources_.erase(lru_.back());
        lru_.pop_back();
        ++evicted_;
    }
    lru_.push_front(a);
    Source& s = sources_[a];
    s.addr = a;
    s.lru = lru_.begin();
    return s;
}

void ConnectionAnalyzer::answer(const Addr16& prober, const Addr16& target, std::uint16_t port, std::uint8_t proto,
                                Outcome o, TimePoint) {
    Source* s = find(prober);
    if (!s) return;
    auto it = s->probes.find(ProbeKey{target, port, proto});
    if (it == s->probes.end()) return;
    Probe& p = it->second;
    // A refusal after an answer (e.g. the RST ending a connect scan's open port) does
    // not turn an open port into a closed one.
    if (p.outcome == Outcome::Pending || o == Outcome::Answered) p.outcome = o;
}

void ConnectionAnalyzer::learnPeer(const Addr16& client, const Addr16& server, std::uint16_t port, TimePoint at) {
    if (!cfg_.new_peer || cfg_.allowed(client) || cfg_.allowed(server)) return;
    std::string service = addrKey(server) + '|' + std::to_string(port);
    std::string pair = addrKey(client) + '|' + service;
    if (peers_.contains(pair)) return;
    const bool learning = at < started_ + cfg_.learning_period;
    if (peers_.size() >= cfg_.learned_max) {  // full: stop learning (and reporting) new pairs; counted
        ++not_learned_;
        return;
    }
    const bool new_service = !services_.contains(service);
    peers_.insert(std::move(pair));
    if (services_.size() < cfg_.learned_max) services_.insert(std::move(service));
    if (learning) return;
    Finding f;
    f.type = EventType::NewPeer;
    f.severity = Severity::Low;
    f.key = "new_peer|" + util::formatAddr(client) + "|" + util::formatAddr(server) + "|" + std::to_string(port);
    f.src = client;
    f.dst = server;
    f.first_seen = f.last_seen = at;
    f.instant = true;
    f.evidence["dst_port"] = std::int64_t{port};
    f.evidence["protocol"] = std::string("tcp");
    f.evidence["new_service"] = std::int64_t{new_service ? 1 : 0};
    new_peers_.push_back(std::move(f));
}

void ConnectionAnalyzer::observe(const FlowStart& f) {
    const FirstPacket kind = classify(f);
    switch (kind) {
    case FirstPacket::SynAck:
        answer(f.dst, f.src, f.sport, kTcp, Outcome::Answered, f.at);
        learnPeer(f.dst, f.src, f.sport, f.at);
        return;
    case FirstPacket::Rst: {
        if (cfg_.allowed(f.dst)) return;
        Source* s = find(f.dst);
        if (!s) return;
        auto it = s->probes.find(ProbeKey{f.src, f.sport, kTcp});
        if (it == s->probes.end()) return;
        answer(f.dst, f.src, f.sport, kTcp, Outcome::Refused, f.at);
        if (it->second.technique == ScanType::Syn || it->second.technique == ScanType::Connect)
            if (s->failures.size() < cfg_.max_probes_per_source) s->failures[{f.src, f.sport, f.dport}] = f.at;
        return;
    }
    case FirstPacket::Other:
        answer(f.dst, f.src, f.sport, kTcp, Outcome::Answered, f.at);
        return;
    case FirstPacket::Udp:
        // A datagram back from a port a source probed is an answer, not a probe.
        if (Source* s = find(f.dst); s && s->probes.contains(ProbeKey{f.src, f.sport, kUdp})) {
            answer(f.dst, f.src, f.sport, kUdp, Outcome::Answered, f.at);
            return;
        }
        break;
    default:
        break;
    }
    if (cfg_.allowed(f.src)) return;
    ScanType t{};
    switch (kind) {
    case FirstPacket::SynRaw: t = ScanType::Syn; break;
    case FirstPacket::SynStack: t = ScanType::Connect; break;
    case FirstPacket::Fin: t = ScanType::Fin; break;
    case FirstPacket::Null: t = ScanType::Null; break;
    case FirstPacket::Xmas: t = ScanType::Xmas; break;
    case FirstPacket::AckOnly: t = ScanType::Ack; break;
    case FirstPacket::Udp: t = ScanType::Udp; break;
    default: return;
    }
    Source& s = source(f.src);
    ProbeKey k{f.dst, f.dport, f.proto};
    if (!s.probes.contains(k)) {
        // Full (this source, or all sources together): the probe is not recorded; the
        // window frees room as it moves on. Thresholds are far below either bound.
        if (s.probes.size() >= cfg_.max_probes_per_source || probes_total_ >= cfg_.max_probes_total) {
            ++probes_dropped_;
        } else {
            s.probes.emplace(k, Probe{f.at, t, Outcome::Pending});
            ++probes_total_;
        }
    }
    s.last_probe = std::max(s.last_probe, f.at);
    if (kind == FirstPacket::SynRaw || kind == FirstPacket::SynStack || kind == FirstPacket::Udp) {
        if (s.peers.size() < cfg_.max_probes_per_source || s.peers.contains(f.dst)) s.peers[f.dst] = f.at;
    }
}

void ConnectionAnalyzer::observe(const Unreachable& u) {
    if (u.inner_proto != kTcp && u.inner_proto != kUdp) return;
    if (cfg_.allowed(u.inner_src)) return;
    Source* s = find(u.inner_src);
    if (!s) return;
    auto it = s->probes.find(ProbeKey{u.inner_dst, u.inner_dport, u.inner_proto});
    if (it == s->probes.end()) return;
    if (u.time_exceeded) {
        // The probe died on the way (a traceroute hop): answered, not refused.
        answer(u.inner_src, u.inner_dst, u.inner_dport, u.inner_proto, Outcome::Answered, u.at);
        return;
    }
    answer(u.inner_src, u.inner_dst, u.inner_dport, u.inner_proto, Outcome::Unreachable, u.at);
    const ScanType t = it->second.technique;
    if (t == ScanType::Syn || t == ScanType::Connect || t == ScanType::Udp)
        if (s->failures.size() < cfg_.max_probes_per_source)
            s->failures[{u.inner_dst, u.inner_dport, u.inner_sport}] = u.at;
}

std::vector<Finding> ConnectionAnalyzer::takeNewPeers() { return std::exchange(new_peers_, {}); }

std::vector<Finding> ConnectionAnalyzer::evaluate(TimePoint now) {
    std::vector<Finding> out;
    for (auto it = sources_.begin(); it != sources_.end();) {
        Source& s = it->second;
        probes_total_ -= std::erase_if(s.probes, [&](const auto& p) { return now - p.second.at > cfg_.scan_window; });
        std::erase_if(s.failures, [&](const auto& p) { return now - p.second > cfg_.conn_window; });
        std::erase_if(s.peers, [&](const auto& p) { return now - p.second > cfg_.fanout_window; });
        if (s.probes.empty() && s.failures.empty() && s.peers.empty()) {
            lru_.erase(s.lru);
            it = sources_.erase(it);
            continue;
        }
        const std::string src = util::formatAddr(s.addr);

        // Port scan: what the probes revealed.
        std::unordered_map<Addr16, std::set<std::pair<std::uint16_t, std::uint8_t>>, AddrHash> ports_by_host;
        std::map<std::pair<std::uint16_t, std::uint8_t>, std::set<Addr16>> hosts_by_port;
        std::array<std::int64_t, 7> technique{};
        std::int64_t refused = 0, unreachable = 0, unanswered = 0, open = 0;
        TimePoint first = TimePoint::max();
        for (const auto& [k, p] : s.probes) {
            first = std::min(first, p.at);
            bool reveals = false;
            switch (p.outcome) {
            case Outcome::Refused: reveals = true; ++refused; break;
            case Outcome::Unreachable: reveals = true; ++unreachable; break;
            case Outcome::Answered: ++open; break;
            case Outcome::Pending:
                // An unanswered ACK says nothing (mid-stream packets of long-lived
                // connections look the same); an ACK scan shows itself by the RSTs.
                if (p.technique != ScanType::Ack && now - p.at >= cfg_.scan_unanswered_after) {
                    reveals = true;
                    ++unanswered;
                }
                break;
            }
            if (!reveals) continue;
            ++technique[static_cast<int>(p.technique)];
            ports_by_host[k.dst].insert({k.port, k.proto});
            hosts_by_port[{k.port, k.proto}].insert(k.dst);
        }
        std::size_t vertical = 0, horizontal = 0;
        Addr16 top_host{};
        std::pair<std::uint16_t, std::uint8_t> top_port{};
        for (const auto& [h, ports] : ports_by_host)
            if (ports.size() > vertical) vertical = ports.size(), top_host = h;
        for (const auto& [p, hosts] : hosts_by_port)
            if (hosts.size() > horizontal) horizontal = hosts.size(), top_port = p;
        const bool is_vertical = vertical >= cfg_.scan_vertical_ports;
        const bool is_horizontal = horizontal >= cfg_.scan_horizontal_hosts;
        const bool scanning = (is_vertical || is_horizontal) && now - s.last_probe < cfg_.scan_end_after;
        if (s.scanning && !scanning) {
            // The scan is over: a later one starts from a clean slate (its own
            // technique, its own first_seen), not mixed with this one's probes.
            probes_total_ -= s.probes.size();
            s.probes.clear();
            s.failures.clear();
        }
        s.scanning = scanning;
        if (scanning) {
            Finding f;
            f.type = EventType::PortScan;
            f.key = "port_scan|" + src;
            f.src = s.addr;
            if (is_vertical) f.dst = top_host;
            for (const auto& [h, ports] : ports_by_host) {
                if (f.targets.size() >= 16) break;
                f.targets.push_back(h);
            }
            std::sort(f.targets.begin(), f.targets.end());
            f.first_seen = first;
            f.last_seen = s.last_probe;
            const auto dominant = std::max_element(technique.begin(), technique.end()) - technique.begin();
            std::int64_t pairs = 0;
            for (const auto& [h, ports] : ports_by_host) pairs += static_cast<std::int64_t>(ports.size());
            f.severity = pairs >= 100 ? Severity::High : Severity::Medium;
            f.evidence["scan_type"] = std::string(toString(static_cast<ScanType>(dominant)));
            f.evidence["mode"] = std::string(is_vertical && is_horizontal ? "vertical+horizontal"
                                             : is_vertical                ? "vertical"
                                                                          : "horizontal");
            f.evidence["ports_probed"] = pairs;
            f.evidence["hosts"] = static_cast<std::int64_t>(ports_by_host.size());
            f.evidence["refused"] = refused;
            f.evidence["unreachable"] = unreachable;
            f.evidence["unanswered"] = unanswered;
            f.evidence["open"] = open;
            if (is_horizontal && !is_vertical) {
                f.evidence["dst_port"] = std::int64_t{top_port.first};
                f.evidence["protocol"] = util::protocolName(top_port.second);
            }
            const double span = seconds(s.last_probe - first);
            if (span > 0) f.evidence["probes_per_second"] = static_cast<double>(s.probes.size()) / span;
            out.push_back(std::move(f));
        }

        // Bursts of refused/unreachable connection attempts (not already a scan).
        if (!scanning && s.failures.size() >= cfg_.conn_failures) {
            Finding f;
            f.type = EventType::ConnectionFailures;
            f.key = "connection_failures|" + src;
            f.src = s.addr;
            std::map<std::pair<Addr16, std::uint16_t>, std::int64_t> by_target;
            TimePoint lo = TimePoint::max(), hi{};
            for (const auto& [k, at] : s.failures) {
                ++by_target[{std::get<0>(k), std::get<1>(k)}];
                lo = std::min(lo, at);
                hi = std::max(hi, at);
            }
            auto top = std::max_element(by_target.begin(), by_target.end(),
                                        [](const auto& a, const auto& b) { return a.second < b.second; });
            f.dst = top->first.first;
            f.first_seen = lo;
            f.last_seen = hi;
            f.evidence["failures"] = static_cast<std::int64_t>(s.failures.size());
            f.evidence["dst_port"] = std::int64_t{top->first.second};
            f.evidence["targets"] = static_cast<std::int64_t>(by_target.size());
            out.push_back(std::move(f));
        }

        // Fan-out: flows to unusually many hosts.
        if (!scanning && s.peers.size() >= cfg_.fanout_peers) {
            Finding f;
            f.type = EventType::FanOut;
            f.severity = Severity::Medium;
            f.key = "fan_out|" + src;
            f.src = s.addr;
            TimePoint lo = TimePoint::max(), hi{};
            for (const auto& [h, at] : s.peers) {
                lo = std::min(lo, at);
                hi = std::max(hi, at);
                if (f.targets.size() < 16) f.targets.push_back(h);
            }
            std::sort(f.targets.begin(), f.targets.end());
            f.first_seen = lo;
            f.last_seen = hi;
            f.evidence["peers"] = static_cast<std::int64_t>(s.peers.size());
            f.evidence["window_seconds"] = seconds(cfg_.fanout_window);
            out.push_back(std::move(f));
        }
        ++it;
    }
    return out;
}

// ---------------------------------------------------------------------------
// FloodAnalyzer

std::optional<double> FloodAnalyzer::baseline(const Addr16& a) const {
    auto it = hosts_.find(a);
    if (it == hosts_.end() || it->second.history_s <= 0) return std::nullopt;
    return it->second.ewma_pps;
}

void FloodAnalyzer::push(Host& h, const HostRates& r) const {
    h.window.push_back(r);
    h.window_s += r.seconds;
    const double keep = seconds(cfg_.flood_min_duration);
    while (h.window.size() > 1 && h.window_s - h.window.front().seconds >= keep) {
        h.window_s -= h.window.front().seconds;
        h.window.pop_front();
    }
}

std::vector<std::pair<EventType, double>> FloodAnalyzer::crossed(const HostRates& r, const Host& h) const {
    std::vector<std::pair<EventType, double>> hits;
    if (r.seconds <= 0 || cfg_.allowed(r.addr)) return hits;
    const auto& d = r.delta;
    const double pps = static_cast<double>(d.in_packets) / r.seconds;
    const double mbps = static_cast<double>(d.in_bytes) * 8 / 1e6 / r.seconds;
    const double out_pps = static_cast<double>(d.out_packets) / r.seconds;
    const double syn_pps = static_cast<double>(d.syn_in) / r.seconds;
    const double udp_pps = static_cast<double>(d.udp_in) / r.seconds;
    const double icmp_pps = static_cast<double>(d.icmp_in) / r.seconds;
    const double syn_ratio = d.tcp_in ? static_cast<double>(d.syn_in) / static_cast<double>(d.tcp_in) : 0.0;
    const FloodThresholds& th = cfg_.thresholdsFor(r.addr);
    if (th.syn_pps > 0 && syn_pps >= th.syn_pps && syn_ratio >= th.syn_ratio) hits.emplace_back(EventType::SynFlood, syn_pps);
    if (th.udp_pps > 0 && udp_pps >= th.udp_pps) hits.emplace_back(EventType::UdpFlood, udp_pps);
    if (th.icmp_pps > 0 && icmp_pps >= th.icmp_pps) hits.emplace_back(EventType::IcmpFlood, icmp_pps);
    if (hits.empty()) {
        const double flows_ps = static_cast<double>(r.new_flows) / r.seconds;
        const bool static_hit = (th.pps > 0 && pps >= th.pps) || (th.mbps > 0 && mbps >= th.mbps) ||
                                (th.flows > 0 && flows_ps >= th.flows);
        const bool adaptive_hit = h.history_s >= seconds(cfg_.baseline_warmup) && pps >= cfg_.surge_min_pps &&
                                  pps >= cfg_.surge_factor * h.ewma_pps && pps >= cfg_.surge_asymmetry * out_pps;
        if (static_hit || adaptive_hit) hits.emplace_back(EventType::TrafficSurge, pps);
    }
    return hits;
}

namespace {

HostRates sum(const std::deque<HostRates>& w, const Addr16& addr, double secs) {
    HostRates t;
    t.addr = addr;
    t.seconds = secs;
    for (const auto& r : w) {
        collector::addHostStats(t.delta, r.delta);
        t.new_flows += r.new_flows;
    }
    return t;
}

}  // namespace

std::vector<Finding> FloodAnalyzer::evaluate(const std::vector<HostRates>& samples, TimePoint now) {
    std::unordered_set<Addr16, AddrHash> sampled;
    for (const HostRates& r : samples) {
        if (r.seconds <= 0) continue;
        if (!hosts_.contains(r.addr) && hosts_.size() >= cfg_.max_hosts) {
            // Full: forget a host with no attack whose baseline is the oldest.
            auto victim = hosts_.end();
            for (auto it = hosts_.begin(); it != hosts_.end(); ++it)
                if (it->second.attacks.empty() &&
                    (victim == hosts_.end() || it->second.last_update < victim->second.last_update))
                    victim = it;
            if (victim == hosts_.end()) continue;
            hosts_.erase(victim);
        }
        sampled.insert(r.addr);
        Host& h = hosts_[r.addr];
        push(h, r);
        h.last_update = now;
    }
    // Hosts under attack that sent nothing this time: a zero sample, so their rates fall.
    for (auto& [addr, h] : hosts_) {
        if (sampled.contains(addr) || h.attacks.empty() || h.last_update == TimePoint{}) continue;
        HostRates zero;
        zero.addr = addr;
        zero.seconds = seconds(now - h.last_update);
        if (zero.seconds <= 0) continue;
        push(h, zero);
        h.last_update = now;
    }

    const double min_s = seconds(cfg_.flood_min_duration);
    for (const Addr16& addr : sampled) {
        Host& h = hosts_[addr];
        const HostRates& last = h.window.back();
        const auto tick_hits = crossed(last, h);
        const HostRates win = sum(h.window, addr, h.window_s);
        const auto win_hits = crossed(win, h);
        auto hit = [](const auto& v, EventType t) -> std::optional<double> {
            for (const auto& [x, rate] : v)
                if (x == t) return rate;
            return std::nullopt;
        };
        // Start candidates on the first interval that crosses.
        for (const auto& [type, rate] : tick_hits) {
            auto [it, fresh] = h.attacks.try_emplace(type);
            if (fresh) {
                it->second.first_seen = now - std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(last.seconds));
                it->second.last_seen = now;
            }
        }
        const double pps = static_cast<double>(win.delta.in_packets) / std::max(win.seconds, 1e-9);
        for (auto it = h.attacks.begin(); it != h.attacks.end();) {
            Attack& a = it->second;
            const auto rate = hit(win_hits, it->first);
            if (!a.confirmed) {
                // A candidate is judged once it is min_duration old, on the rate over
                // that time: a burst (a fast scan's SYNs) is not a flood.
                if (seconds(now - a.first_seen) + 1e-6 < min_s) {
                    ++it;
                    continue;
                }
                if (!rate) {
                    it = h.attacks.erase(it);
                    continue;
                }
                a.confirmed = true;
            }
            if (rate) {
                a.last_seen = now;
                a.peak_pps = std::max(a.peak_pps, *rate);
                a.evidence["pps"] = *rate;
                a.evidence["peak_pps"] = a.peak_pps;
                a.evidence["total_pps"] = pps;
                a.evidence["mbps"] = static_cast<double>(win.delta.in_bytes) * 8 / 1e6 / std::max(win.seconds, 1e-9);
                a.evidence["reply_pps"] = static_cast<double>(win.delta.out_packets) / std::max(win.seconds, 1e-9);
                if (it->first == EventType::SynFlood) {
                    a.evidence["synack_pps"] = static_cast<double>(win.delta.synack_out) / std::max(win.seconds, 1e-9);
                    a.evidence["syn_ratio"] = win.delta.tcp_in ? static_cast<double>(win.delta.syn_in) /
                                                                     static_cast<double>(win.delta.tcp_in)
                                                               : 0.0;
                }
                if (it->first == EventType::TrafficSurge) {
                    a.evidence["baseline_pps"] = h.ewma_pps;
                    a.evidence["flows_per_second"] = static_cast<double>(win.new_flows) / std::max(win.seconds, 1e-9);
                }
            }
            ++it;
        }
        if (h.attacks.empty()) {
            // The baseline learns only outside attacks (and candidates).
            const double dt = last.seconds;
            const double half = std::max(seconds(cfg_.baseline_half_life), 1e-3);
            const double alpha = 1.0 - std::exp2(-dt / half);
            const double tick_pps = static_cast<double>(last.delta.in_packets) / dt;
            h.ewma_pps = h.history_s == 0 ? tick_pps : h.ewma_pps + alpha * (tick_pps - h.ewma_pps);
            h.history_s += dt;
        }
    }

    std::vector<Finding> out;
    for (auto it = hosts_.begin(); it != hosts_.end();) {
        Host& h = it->second;
        std::erase_if(h.attacks, [&](const auto& a) {
            return a.second.confirmed ? now - a.second.last_seen >= cfg_.flood_end_after
                                      : now - a.second.first_seen > cfg_.flood_min_duration * 2;
        });
        for (const auto& [type, a] : h.attacks) {
            if (!a.confirmed) continue;
            Finding f;
            f.type = type;
            f.key = std::string(toString(type)) + "|" + util::formatAddr(it->first);
            f.dst = it->first;
            f.first_seen = a.first_seen;
            f.last_seen = a.last_seen;
            f.evidence = a.evidence;
            f.severity = Severity::High;
            out.push_back(std::move(f));
        }
        // Hosts silent for 10 minutes are forgotten (their baseline with them).
        if (h.attacks.empty() && now - h.last_update > std::chrono::minutes(10)) {
            it = hosts_.erase(it);
            continue;
        }
        ++it;
    }
    return out;
}

}  // namespace netprobe::analysis::security
