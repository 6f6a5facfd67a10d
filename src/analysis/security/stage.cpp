#include "netprobe/analysis/security/stage.hpp"

#include <netprobe/analysis/policy.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace netprobe::analysis::security {

namespace {
Addr16 toAddr(const np_addr& a) { return std::bit_cast<Addr16>(a); }
}  // namespace

std::vector<SourceShare> topSourcesOf(const FlowRecords& flows, const Addr16& dst, std::size_t n) {
    std::unordered_map<Addr16, SourceShare, AddrHash> by;
    for (const auto& f : flows) {
        if (std::memcmp(f.key.dst_ip.v6, dst.data(), 16) != 0) continue;
        const Addr16 src = toAddr(f.key.src_ip);
        auto& s = by[src];
        s.addr = src;
        s.packets += f.packets;
        s.bytes += f.bytes;
    }
    std::vector<SourceShare> out;
    out.reserve(by.size());
    for (const auto& [a, s] : by) out.push_back(s);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.packets > b.packets; });
    if (out.size() > n) out.resize(n);
    return out;
}

SecurityStage::SecurityStage(Options options, TimePoint started)
    : opts_(std::move(options)),
      conn_(opts_.config, started),
      flood_(opts_.config),
      book_(opts_.config.max_events),
      planner_(opts_.config, NP_BLOCK_RULES_MAX) {
    // Enforced by XDP, or at TC ingress where an interface has no XDP program.
    mitigating_ = opts_.config.mitigate != MitigationMode::Off;
}

std::vector<SourceShare> SecurityStage::topSources(const Addr16& dst) {
    if (!opts_.flows) return {};
    auto v = opts_.flows();
    if (!v) return {};
    // The same view: the weak pointer keeps its control block, so a new view can never
    // take the old one's identity.
    const bool same = !top_view_.expired() && !top_view_.owner_before(v) && !v.owner_before(top_view_);
    if (!same || top_cache_.size() >= 256) {
        top_view_ = v;
        top_cache_.clear();
    }
    auto it = top_cache_.find(dst);
    if (it == top_cache_.end()) it = top_cache_.emplace(dst, topSourcesOf(v->records, dst)).first;
    return it->second;
}

void SecurityStage::observeGaps(const PolicyView& v) {
    if (v.gaps_total <= gaps_seen_) return;
    const std::uint64_t fresh = v.gaps_total - gaps_seen_;
    const std::size_t listed = static_cast<std::size_t>(std::min<std::uint64_t>(fresh, v.gaps.size()));
    stats_.policy_gaps_missed += fresh - listed;
    // newest first: the `listed` newest are the new ones, read oldest first
    for (std::size_t i = listed; i-- > 0;) {
        const DeniedFlow& d = v.gaps[i];
        PolicyGapObservation g;
        g.at = TimePoint{std::chrono::nanoseconds(d.decided_ns ? d.decided_ns : d.last_ns)};
        g.client = d.client;
        g.server = d.server;
        g.proto = d.proto;
        g.port = d.port;
        g.client_pod = d.client_pod;
        g.server_pod = d.server_pod;
        const bool ingress = d.verdict.ingress.decision == PolicyDecision::Denied;
        g.side = ingress ? "ingress" : "egress";
        g.policies = ingress ? d.verdict.ingress.policies : d.verdict.egress.policies;
        g.packets_out = d.packets_out;
        g.packets_in = d.packets_in;
        gaps_.observe(g);
        ++stats_.policy_gaps;
    }
    gaps_seen_ = v.gaps_total;
}

void SecurityStage::observeDns(const domains::DomainIntelView& v) {
    if (v.hits_total <= dns_seq_) return;
    if (!v.hits.empty() && v.hits.front().seq > dns_seq_ + 1) stats_.intel_dns_missed += v.hits.front().seq - dns_seq_ - 1;
    for (const auto& h : v.hits) {
        if (h.seq <= dns_seq_) continue;
        IntelDnsQuery q;
        q.at = TimePoint{std::chrono::nanoseconds(h.mono_ns)};
        q.client = h.client;
        q.server = h.server;
        q.server_port = h.server_port;
        q.qname = h.qname;
        q.qtype = h.qtype;
        q.rcode = h.rcode;
        q.addresses = h.addresses;
        IntelIndicatorInfo info;
        info.indicator = h.indicator;
        info.feed = h.feed;
        info.confidence = h.confidence;
        info.block = h.block;
        info.note = h.note;
        intel_.observe(q, info);
        ++stats_.intel_dns_hits;
    }
    dns_seq_ = v.hits_total;
}

void SecurityStage::observe(const collector::SecuritySample& s, const intel::IndicatorSet* intel,
                            const domains::DomainIntelView* domains,
                            std::unordered_map<Addr16, std::uint64_t, AddrHash>& new_flows) {
    for (const auto& e : s.records) {
        const TimePoint at{std::chrono::nanoseconds(e.ts_ns)};
        if (e.kind == NP_SEC_NEW_FLOW) {
            FlowStart f;
            f.at = at;
            f.src = toAddr(e.key.src_ip);
            f.dst = toAddr(e.key.dst_ip);
            f.sport = e.key.src_port;
            f.dport = e.key.dst_port;
            f.proto = e.key.proto;
            f.tcp_flags = e.tcp_flags;
            f.tcp_doff = e.tcp_doff;
            f.payload_len = e.payload_len;
            conn_.observe(f);
            // Under flow pressure one record may announce an aggregate entry's attempts of
            // a tick (the others folded into it: np_sec_event.folded): counted as the
            // attempts they are; the detectors see the record's own tuple.
            const std::uint64_t flows = 1 + std::uint64_t{e.folded};
            ++stats_.new_flows;
            stats_.new_flows_folded += e.folded;
            // flows/s per destination (flood.flows); a flow seen at ingress and at egress
            // (a forwarding host) counts once, where it entered
            if (e.key.direction == NP_DIR_INGRESS && (new_flows.size() < opts_.config.max_hosts || new_flows.contains(f.dst)))
                new_flows[f.dst] += flows;
        } else if (e.kind == NP_SEC_ICMP_ERROR) {
            Unreachable u;
            u.at = at;
            u.reporter = toAddr(e.key.src_ip);
            u.inner_src = toAddr(e.inner_src);
            u.inner_dst = toAddr(e.inner_dst);
            u.inner_sport = e.inner_src_port;
            u.inner_dport = e.inner_dst_port;
            u.inner_proto = e.inner_proto;
            u.time_exceeded = e.key.family == 4 ? e.icmp_type == 11 : e.icmp_type == 3;
            conn_.observe(u);
            ++stats_.unreachables;
        } else if (e.kind == NP_SEC_INTEL) {
            IntelHit h;
            h.at = at;
            h.src = toAddr(e.key.src_ip);
            h.dst = toAddr(e.key.dst_ip);
            h.sport = e.key.src_port;
            h.dport = e.key.dst_port;
            h.proto = e.key.proto;
            h.match = e.inner_proto;
            h.feed = e.inner_src_port;
            ++stats_.intel_hits;
            const Addr16& ioc = (h.match & NP_INTEL_MATCH_SRC) ? h.src : h.dst;
            IntelIndicatorInfo info;
            // The set the kernel checks now names the indicator; a record from before a
            // reload whose indicator is gone keeps the kernel's feed and the address.
            const intel::IpMatch m = (intel ? intel->match(ioc) : std::nullopt).value_or(intel::IpMatch{});
            // not a listed prefix: an address a DNS answer gave for a listed domain
            const domains::ResolvedIndicator* r = nullptr;
            if (!m.indicator && domains) {
                auto it = std::lower_bound(domains->resolved.begin(), domains->resolved.end(), ioc,
                                           [](const auto& x, const Addr16& a) { return x.addr < a; });
                if (it != domains->resolved.end() && it->addr == ioc) r = &*it;
            }
            if (r) {
                info.indicator = r->indicator;
                info.feed = r->feed;
                info.confidence = r->confidence;
                info.block = r->block;
                info.note = r->note;
            } else if (m.indicator) {
                const auto& feed = intel->feeds()[m.feed];
                info.indicator = m.indicator->prefix.str();
                info.feed = feed.name;
                info.confidence = m.indicator->confidence;
                info.block = feed.action == intel::Action::Block;
                info.note = m.indicator->note;
            } else {
                info.indicator = util::formatAddr(ioc);
                info.feed = intel && h.feed < intel->feeds().size() ? intel->feeds()[h.feed].name
                                                                    : "feed " + std::to_string(h.feed);
                info.block = (h.match & NP_INTEL_MATCH_BLOCK) != 0;
            }
            intel_.observe(h, info);
        }
    }
}

void SecurityStage::planBlocks(const EventPtr& e, const std::vector<Addr16>& sources, WallTime now) {
    std::vector<std::string> added;
    for (const auto& a : sources) {
        auto cidr = planner_.block(a, e->id, now);
        if (!cidr.empty() && std::find(e->blocked.begin(), e->blocked.end(), cidr) == e->blocked.end())
            added.push_back(std::move(cidr));
    }
    if (added.empty()) return;
    auto copy = std::make_shared<SecurityEvent>(*e);
    copy->blocked.insert(copy->blocked.end(), added.begin(), added.end());
    for (const auto& c : added)
        spdlog::warn("security: {} {} for {} event {}",
                     opts_.config.mitigate == MitigationMode::On ? "blocking" : "dry-run: would block", c,
                     toString(e->type), e->id);
    book_.update(copy);
}

void SecurityStage::run(const collector::Snapshot& s, Views& views) {
    const auto t0 = std::chrono::steady_clock::now();
    const TimePoint now = s.mono;
    const WallTime wall_now = s.taken_at;
    std::unordered_map<Addr16, std::uint64_t, AddrHash> new_flows;
    std::vector<Finding> findings;
    const auto domains = opts_.domains ? opts_.domains() : nullptr;
    if (domains) observeDns(*domains);
    if (opts_.policy)
        if (auto pv = opts_.policy()) observeGaps(*pv);
    if (s.security) {
        const auto& sample = *s.security;
        observe(sample, s.intel && s.intel->set ? s.intel->set.get() : nullptr, domains.get(), new_flows);
        stats_.records_total = sample.records_total;
        stats_.records_dropped = sample.records_dropped;
        stats_.host_read_errors = sample.host_read_errors;
        if (sample.seconds > 0) {
            std::vector<HostRates> rates;
            rates.reserve(sample.hosts.size());
            for (const auto& h : sample.hosts) {
                auto nf = new_flows.find(h.addr);
                rates.push_back(HostRates{h.addr, sample.seconds, h.delta, nf == new_flows.end() ? 0 : nf->second});
            }
            findings = flood_.evaluate(rates, now);
        }
    }
    for (auto& f : conn_.evaluate(now)) findings.push_back(std::move(f));
    for (auto& f : conn_.takeNewPeers()) findings.push_back(std::move(f));
    for (auto& f : intel_.evaluate(now)) findings.push_back(std::move(f));
    for (auto& f : gaps_.evaluate(now)) findings.push_back(std::move(f));

    IncidentBook::Hooks hooks;
    hooks.top_sources = [this](const Addr16& dst) { return topSources(dst); };
    hooks.wall = [&](TimePoint t) {
        return wall_now - std::chrono::duration_cast<WallTime::duration>(now - t);
    };
    auto changes = book_.apply(std::move(findings), now, hooks);
    if (stats_.evaluations % 4 == 3) book_.refreshTopSources(hooks);
    if (mitigating_) {
        for (const auto& ch : changes) {
            if (std::string_view(ch.what) != "detected") continue;
            const auto& e = ch.event;
            if (sourceBased(e->type) && e->src) planBlocks(e, {*e->src}, wall_now);
        }
        // Floods: their largest senders, as they show up in the flow records.
        for (const auto& e : book_.active()) {
            if (!floodType(e->type)) continue;
            std::vector<Addr16> srcs;
            for (const auto& t : e->top_sources) srcs.push_back(t.addr);
            planBlocks(e, srcs, wall_now);
        }
        planner_.expire(wall_now);
    }
    // The published changes carry the events as they are now (with their blocks).
    const auto events = book_.events();
    for (auto& ch : changes)
        for (const auto& e : events)
            if (e->id == ch.event->id) {
                ch.event = e;
                break;
            }

    ++stats_.evaluations;
    stats_.tracked_sources = conn_.sources();
    stats_.sources_evicted = conn_.sourcesEvicted();
    stats_.tracked_probes = conn_.probes();
    stats_.probes_dropped = conn_.probesDropped();
    stats_.tracked_hosts = flood_.tracked();
    stats_.learned_peers = conn_.learned();
    stats_.peers_not_learned = conn_.notLearned();
    stats_.intel_tracked = intel_.tracked();
    stats_.intel_dropped = intel_.dropped();
    stats_.last_evaluation_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    auto v = std::make_shared<SecurityView>();
    v->mitigation = opts_.config.mitigate;
    v->events = events;
    v->events_total = book_.totals();
    for (const auto& e : book_.active()) ++v->active[static_cast<int>(e->type)];
    v->changes = std::move(changes);
    v->stats = stats_;
    v->blocklist = planner_.plan();
    v->blocks_planned_total = planner_.plannedTotal();
    v->blocks_expired_total = planner_.expiredTotal();
    v->blocks_refused_total = planner_.refusedTotal();
    v->intel = s.intel;
    views.security = std::move(v);
}

}  // namespace netprobe::analysis::security
