#include "netprobe/analysis/domains/stage.hpp"

#include <algorithm>
#include <set>
#include <tuple>

#include <netprobe/collector/snapshot.hpp>
#include <netprobe/l7/dns.hpp>

namespace netprobe::analysis::domains {

namespace {

constexpr std::uint64_t kNs = 1'000'000'000ull;

// A query seen at both ends of one node (L7), or a packet at two interfaces (TC): the
// same (client, server, name, DNS id + 1 or 0) in one run.
using Seen = std::tuple<util::Addr16, std::uint16_t, util::Addr16, std::uint16_t, std::string, std::uint32_t>;

}  // namespace

void DomainIntel::consider(const Candidate& r, const intel::IndicatorSet& set, const collector::Snapshot& snap,
                           std::uint64_t now) {
    std::vector<std::string> names{r.qname};
    if (r.answers)
        for (const auto& a : *r.answers) {
            if (a.type != 5) continue;
            for (const auto* n : {&a.name, &a.target})
                if (!n->empty() && std::find(names.begin(), names.end(), *n) == names.end()) names.push_back(*n);
        }
    std::optional<intel::IndicatorSet::DomainMatch> m;
    std::string matched;
    for (const auto& n : names) {
        if ((m = set.matchDomain(n))) {
            matched = n;
            break;
        }
    }
    if (!m) return;
    const auto& feed = set.feeds()[m->feed];
    DomainHit h;
    h.seq = ++seq_;
    h.mono_ns = r.mono_ns;
    h.time = snap.wallOf(r.mono_ns);
    h.kind = r.kind;
    h.via = r.via;
    h.qname = r.qname;
    h.qtype = r.qtype;
    h.rcode = r.rcode;
    h.name = matched;
    h.indicator = m->indicator->domain;
    h.feed = feed.name;
    h.confidence = m->indicator->confidence;
    h.block = feed.action == intel::Action::Block;
    h.note = m->indicator->note;
    h.client = r.client;
    h.server = r.server;
    h.client_port = r.client_port;
    h.server_port = r.server_port;
    h.family = r.family;
    h.pid = r.pid;
    auto& fc = feeds_[feed.name];
    ++fc.hits_total;
    // DNS: every address of the answer resolves the covered name (the chain leads there),
    // held for its record's TTL, clamped. TLS: the server the client named, held min_ttl.
    std::vector<std::pair<util::Addr16, std::uint64_t>> held;  // address, TTL in seconds
    if (r.answers) {
        for (const auto& a : *r.answers)
            if (a.type == 1 || a.type == 28) held.emplace_back(a.addr, a.ttl);
    } else {
        held.emplace_back(r.server, 0);
    }
    for (const auto& [addr, raw_ttl] : held) {
        if (r.answers) h.addresses.push_back(addr);
        const auto ttl = std::clamp<std::uint64_t>(raw_ttl, static_cast<std::uint64_t>(opts_.resolved.min_ttl.count()),
                                                   static_cast<std::uint64_t>(opts_.resolved.max_ttl.count()));
        const std::uint64_t expires = (r.mono_ns ? r.mono_ns : now) + ttl * kNs;
        auto it = resolved_.find(addr);
        if (it == resolved_.end()) {
            if (resolved_.size() >= opts_.resolved.max_addresses) {
                ++dropped_;
                continue;
            }
            it = resolved_.emplace(addr, ResolvedIndicator{.addr = addr}).first;
            ++resolved_generation_;
        }
        auto& ri = it->second;
        if (ri.feed_index != m->feed || ri.block != h.block || ri.confidence != h.confidence) ++resolved_generation_;
        ri.name = matched;
        ri.indicator = h.indicator;
        ri.note = h.note;
        ri.feed = feed.name;
        ri.feed_index = m->feed;
        ri.confidence = h.confidence;
        ri.block = h.block;
        ri.expires_mono_ns = std::max(ri.expires_mono_ns, expires);
        ++fc.addresses_total;
    }
    hits_.push_back(std::move(h));
    while (hits_.size() > opts_.max_hits) hits_.pop_front();
}

DomainIntel::DomainIntel(DomainIntelOptions options) : opts_(std::move(options)) {
    if (opts_.max_hits == 0) opts_.max_hits = 1;
    if (opts_.resolved.max_addresses == 0) opts_.resolved.max_addresses = 1;
}

// A new indicator set: the held addresses keep their place only while a domain indicator
// still covers their name (its feed and action may have changed).
void DomainIntel::revalidate(const intel::IndicatorSet& set) {
    bool changed = false;
    for (auto it = resolved_.begin(); it != resolved_.end();) {
        auto m = set.matchDomain(it->second.name);
        if (!m) {
            it = resolved_.erase(it);
            changed = true;
            continue;
        }
        const auto& feed = set.feeds()[m->feed];
        auto& r = it->second;
        const bool block = feed.action == intel::Action::Block;
        if (r.feed_index != m->feed || r.block != block || r.confidence != m->indicator->confidence) changed = true;
        r.feed_index = m->feed;
        r.feed = feed.name;
        r.indicator = m->indicator->domain;
        r.note = m->indicator->note;
        r.block = block;
        r.confidence = m->indicator->confidence;
        ++it;
    }
    if (changed) ++resolved_generation_;
}

void DomainIntel::run(const collector::Snapshot& snap, Views& views) {
    const std::uint64_t now = snap.monoNs();
    const auto set = opts_.indicators ? opts_.indicators() : nullptr;
    if (set && (!have_set_ || set->generation() != set_generation_)) {
        revalidate(*set);
        set_generation_ = set->generation();
        have_set_ = true;
    }
    const bool active = set && set->domainCount() > 0;

    if (active) {
        std::set<Seen> seen;
        if (snap.l7)
            for (const auto& r : snap.l7->requests) {
                if (r.protocol != "dns") continue;
                ++checked_;
                if (!seen.emplace(r.client, r.client_port, r.server, r.server_port, r.path, 0).second) continue;
                Candidate c{.mono_ns = r.mono_ns, .kind = "dns", .via = "l7", .qname = r.path, .qtype = r.method,
                            .rcode = netprobe::l7::dnsRcodeName(static_cast<std::uint8_t>(r.status)),
                            .answers = &r.answers, .client = r.client, .server = r.server,
                            .client_port = r.client_port, .server_port = r.server_port, .family = r.family,
                            .pid = r.pid};
                consider(c, *set, snap, now);
            }
        if (snap.names)
            for (const auto& o : snap.names->observations) {
                ++checked_;
                const bool dns = o.kind == collector::NameObservation::Kind::Dns;
                // the same packet seen at two monitored interfaces (a forwarding node): once
                if (!seen.emplace(o.client, o.client_port, o.server, o.server_port, o.name, dns ? o.dns_id + 1 : 0).second)
                    continue;
                Candidate c{.mono_ns = o.mono_ns, .kind = dns ? "dns" : "tls_sni", .via = "tc", .qname = o.name,
                            .qtype = dns ? netprobe::l7::dnsTypeName(o.qtype) : std::string("SNI"),
                            .rcode = dns ? netprobe::l7::dnsRcodeName(o.rcode) : std::string(),
                            .answers = dns ? &o.answers : nullptr, .client = o.client, .server = o.server,
                            .client_port = o.client_port, .server_port = o.server_port, .family = o.family, .pid = 0};
                consider(c, *set, snap, now);
            }
    }

    // Expired addresses leave; so does everything when no set covers domains any more.
    for (auto it = resolved_.begin(); it != resolved_.end();) {
        if (active && it->second.expires_mono_ns > now) {
            ++it;
            continue;
        }
        if (active) ++expired_;
        it = resolved_.erase(it);
        ++resolved_generation_;
    }

    auto v = std::make_shared<DomainIntelView>();
    v->hits.assign(hits_.begin(), hits_.end());
    v->hits_total = seq_;
    v->resolved.reserve(resolved_.size());
    for (auto [addr, r] : resolved_) {
        r.expires = snap.wallOf(r.expires_mono_ns);
        v->resolved.push_back(std::move(r));
    }
    v->resolved_generation = resolved_generation_;
    v->set_generation = set_generation_;
    v->dns_checked_total = checked_;
    v->resolved_dropped_total = dropped_;
    v->resolved_expired_total = expired_;
    for (auto& [name, c] : feeds_) c.resolved = 0;
    for (const auto& r : v->resolved) ++feeds_[r.feed].resolved;
    v->feeds = feeds_;
    v->active = active;
    views.domains = std::move(v);
}

}  // namespace netprobe::analysis::domains
