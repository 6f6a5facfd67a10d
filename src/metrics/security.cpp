// The security export: events as JSON, the events log, netprobe_security_* series.
#include <netprobe/metrics/security.hpp>

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include <netprobe/metrics/exposition.hpp>
#include <netprobe/metrics/render.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {

using namespace analysis::security;

namespace {

// RFC 3339 (UTC "Z" or a numeric offset, optional fraction) or Unix seconds.
std::optional<WallTime> parseTime(const std::string& s) {
    double unix_s = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), unix_s);
    // Times the clock can hold (nanoseconds since 1970 in 64 bits end in 2262): later
    // ones are refused, not wrapped (found by tests/fuzz/api_query_fuzz.cpp).
    constexpr double kMaxUnix = 9.0e9;  // year 2255
    if (ec == std::errc() && p == s.data() + s.size()) {
        if (!(unix_s >= 0 && unix_s <= kMaxUnix)) return std::nullopt;
        return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(unix_s)));
    }
    std::tm tm{};
    const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) return std::nullopt;
    double frac = 0;
    if (*rest == '.') {
        const char* start = rest;
        ++rest;
        while (*rest >= '0' && *rest <= '9') ++rest;
        frac = std::strtod(std::string(start, rest).c_str(), nullptr);
    }
    long offset = 0;
    if (*rest == 'Z' || *rest == 'z') {
        ++rest;
    } else if (*rest == '+' || *rest == '-') {
        // Exactly [+-]HH:MM.
        auto digit = [](char c) { return c >= '0' && c <= '9'; };
        if (!digit(rest[1]) || !digit(rest[2]) || rest[3] != ':' || !digit(rest[4]) || !digit(rest[5]))
            return std::nullopt;
        const int hh = (rest[1] - '0') * 10 + (rest[2] - '0'), mm = (rest[4] - '0') * 10 + (rest[5] - '0');
        if (hh > 23 || mm > 59) return std::nullopt;
        offset = (hh * 3600L + mm * 60L) * (*rest == '-' ? -1 : 1);
        rest += 6;
    } else {
        return std::nullopt;
    }
    if (*rest != '\0') return std::nullopt;
    const std::time_t t = timegm(&tm) - offset;
    if (t < 0 || static_cast<double>(t) > kMaxUnix) return std::nullopt;
    return WallTime(std::chrono::seconds(t)) +
           std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(frac));
}

nlohmann::json evidenceJson(const Evidence& ev) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : ev) std::visit([&j, &k](const auto& x) { j[k] = x; }, v);
    return j;
}

}  // namespace

std::expected<EventQuery, std::string> parseEventQuery(const std::vector<std::pair<std::string, std::string>>& params,
                                                       std::size_t max_limit) {
    EventQuery q;
    for (const auto& [k, v] : params) {
        if (k == "since") {
            auto t = parseTime(v);
            if (!t) return std::unexpected("since: expected RFC 3339 time (2026-11-28T18:00:00Z) or Unix seconds, got \"" + v + "\"");
            q.since = *t;
        } else if (k == "type") {
            std::string_view rest = v;
            while (!rest.empty()) {
                auto comma = rest.find(',');
                auto name = rest.substr(0, comma);
                auto t = parseEventType(name);
                if (!t)
                    return std::unexpected("type: unknown event type \"" + std::string(name) +
                                           "\" (" + analysis::security::eventTypeNames() + ")");
                q.types.push_back(*t);
                if (comma == std::string_view::npos) break;
                rest.remove_prefix(comma + 1);
            }
        } else if (k == "limit") {
            std::size_t n = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || p != v.data() + v.size() || n == 0 || n > max_limit)
                return std::unexpected("limit: expected an integer from 1 to " + std::to_string(max_limit));
            q.limit = n;
        } else {
            return std::unexpected("unknown parameter \"" + k + "\" (since, type, limit)");
        }
    }
    return q;
}

namespace {

nlohmann::json toJson(const SecurityEvent& e) {
    nlohmann::json j;
    j["id"] = e.id;
    j["type"] = toString(e.type);
    j["severity"] = toString(e.severity);
    j["src_ip"] = e.src ? nlohmann::json(util::formatAddr(*e.src)) : nlohmann::json(nullptr);
    j["dst_ip"] = e.dst ? nlohmann::json(util::formatAddr(*e.dst)) : nlohmann::json(nullptr);
    auto targets = nlohmann::json::array();
    for (const auto& t : e.targets) targets.push_back(util::formatAddr(t));
    j["targets"] = std::move(targets);
    j["detected_at"] = metrics::rfc3339(e.detected_at);
    j["first_seen"] = metrics::rfc3339(e.first_seen);
    j["last_seen"] = metrics::rfc3339(e.last_seen);
    j["ended_at"] = e.ended_at ? nlohmann::json(metrics::rfc3339(*e.ended_at)) : nlohmann::json(nullptr);
    j["active"] = !e.ended_at.has_value();
    auto ev = evidenceJson(e.evidence);
    if (!e.top_sources.empty()) {
        auto top = nlohmann::json::array();
        for (const auto& s : e.top_sources)
            top.push_back({{"ip", util::formatAddr(s.addr)}, {"packets", s.packets}, {"bytes", s.bytes}});
        ev["top_sources"] = std::move(top);
    }
    j["evidence"] = std::move(ev);
    if (!e.blocked.empty()) j["blocked"] = e.blocked;
    return j;
}

}  // namespace

std::string eventJson(const SecurityEvent& e) {
    return toJson(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string eventsJson(const std::vector<EventPtr>& events, bool enabled) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& e : events) arr.push_back(toJson(*e));
    nlohmann::json j{{"enabled", enabled}, {"count", events.size()}, {"events", std::move(arr)}};
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::unique_ptr<EventLog>> EventLog::open(const std::string& path) {
    auto log = std::make_unique<EventLog>();
    if (path.empty()) return log;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return std::unexpected(errnoError(errno, "open --events-log " + path));
    log->file_.reset(::fdopen(fd, "a"));
    if (!log->file_) {
        const int e = errno;
        ::close(fd);
        return std::unexpected(errnoError(e, "open --events-log " + path));
    }
    return log;
}

void EventLog::write(const analysis::Views& views) {
    if (!views.security) return;
    for (const auto& ch : views.security->changes) {
        const std::string line = eventJson(*ch.event);
        spdlog::info("security event {}: {}", ch.what, line);
        if (file_) {
            std::fputs(line.c_str(), file_.get());
            std::fputc('\n', file_.get());
            std::fflush(file_.get());
        }
    }
}

namespace {
// netprobe_intel_*: feeds, indicators, matched and dropped traffic (--intel-config).
void renderIntelMetrics(ExpositionWriter& w, const collector::IntelSample& in, const analysis::security::AnalyzerStats& st);
}  // namespace

std::string renderSecurityMetrics(const SecurityView& v, const ebpf::MitigationStatus* status) {
    ExpositionWriter w;
    auto type = [](int t) { return toString(static_cast<EventType>(t)); };
    w.family("netprobe_security_events_total", MetricType::Counter,
             "Security events detected, by type (an incident counts once, when detected).");
    for (int t = 0; t < kEventTypes; ++t) w.sample("netprobe_security_events_total", {{"type", type(t)}}, v.events_total[t]);
    w.family("netprobe_security_active_attacks", MetricType::Gauge, "Incidents in progress, by type.");
    for (int t = 0; t < kEventTypes; ++t) w.sample("netprobe_security_active_attacks", {{"type", type(t)}}, v.active[t]);
    const auto& st = v.stats;
    w.family("netprobe_security_observations_total", MetricType::Counter,
             "Datapath records the detectors consumed: first packets of new flows, ICMP unreachables.");
    w.sample("netprobe_security_observations_total", {{"kind", "new_flow"}}, st.new_flows);
    w.sample("netprobe_security_observations_total", {{"kind", "icmp_unreachable"}}, st.unreachables);
    w.family("netprobe_security_folded_flows_total", MetricType::Counter,
             "New flows announced by another record of their aggregate entry: under flow pressure one record per "
             "tick and CPU announces an aggregate entry's connection attempts or refusals and carries their count.");
    w.sample("netprobe_security_folded_flows_total", {}, st.new_flows_folded);
    w.family("netprobe_security_records_dropped_total", MetricType::Counter,
             "Ring records received but not analysed: the agent's queue between two evaluations was full.");
    w.sample("netprobe_security_records_dropped_total", {}, st.records_dropped);
    w.family("netprobe_security_tracked_sources", MetricType::Gauge, "Sources with scan/connection state (bounded).");
    w.sample("netprobe_security_tracked_sources", {}, st.tracked_sources);
    w.family("netprobe_security_sources_evicted_total", MetricType::Counter,
             "Sources whose state was dropped because the source table was full.");
    w.sample("netprobe_security_sources_evicted_total", {}, st.sources_evicted);
    w.family("netprobe_security_tracked_probes", MetricType::Gauge,
             "Probes (first packets of flows) held for scan detection, all sources (bounded).");
    w.sample("netprobe_security_tracked_probes", {}, st.tracked_probes);
    w.family("netprobe_security_probes_dropped_total", MetricType::Counter,
             "Probes not held because a per-source or total bound was reached.");
    w.sample("netprobe_security_probes_dropped_total", {}, st.probes_dropped);
    w.family("netprobe_security_tracked_hosts", MetricType::Gauge, "Destinations with flood baselines (bounded).");
    w.sample("netprobe_security_tracked_hosts", {}, st.tracked_hosts);
    w.family("netprobe_security_learned_peers", MetricType::Gauge,
             "Client/server pairs learned for new_peer detection (bounded by learned_max).");
    w.sample("netprobe_security_learned_peers", {}, st.learned_peers);
    w.family("netprobe_security_peers_not_learned_total", MetricType::Counter,
             "Client/server pairs neither learned nor reported because learned_max was reached.");
    w.sample("netprobe_security_peers_not_learned_total", {}, st.peers_not_learned);
    w.family("netprobe_security_policy_gaps_total", MetricType::Counter,
             "NetworkPolicy enforcement gaps read from the policy stage (policy_enforcement_gap events).");
    w.sample("netprobe_security_policy_gaps_total", {}, st.policy_gaps);
    w.family("netprobe_security_policy_gaps_missed_total", MetricType::Counter,
             "Such gaps that left the policy stage's list of recent gaps before the security stage read them.");
    w.sample("netprobe_security_policy_gaps_missed_total", {}, st.policy_gaps_missed);
    w.family("netprobe_security_evaluations_total", MetricType::Counter, "Detector evaluations (ticks).");
    w.sample("netprobe_security_evaluations_total", {}, st.evaluations);
    w.family("netprobe_security_read_errors_total", MetricType::Counter, "Failed reads of the host counters.");
    w.sample("netprobe_security_read_errors_total", {}, st.host_read_errors);
    w.family("netprobe_security_evaluation_duration_seconds", MetricType::Gauge, "Duration of the last evaluation.");
    w.sample("netprobe_security_evaluation_duration_seconds", {}, st.last_evaluation_seconds);

    const char* mode = toString(v.mitigation);
    w.family("netprobe_security_mitigation_mode", MetricType::Gauge, "Mitigation mode (the labelled one is 1).");
    for (auto m : {MitigationMode::Off, MitigationMode::DryRun, MitigationMode::On})
        w.sample("netprobe_security_mitigation_mode", {{"mode", toString(m)}}, std::uint64_t{m == v.mitigation ? 1u : 0u});
    w.family("netprobe_security_block_rules", MetricType::Gauge,
             "Blocklist rules in force: in the kernel's blocklist, where XDP matches them.");
    w.sample("netprobe_security_block_rules", {}, static_cast<std::uint64_t>(status ? status->rules.size() : 0));
    w.family("netprobe_security_block_rules_planned", MetricType::Gauge,
             "Blocklist rules detection asks for (the mitigator makes the kernel's blocklist match them).");
    w.sample("netprobe_security_block_rules_planned", {}, static_cast<std::uint64_t>(v.blocklist.size()));
    w.family("netprobe_security_block_rules_added_total", MetricType::Counter, "Blocklist rules planned.");
    w.sample("netprobe_security_block_rules_added_total", {}, v.blocks_planned_total);
    w.family("netprobe_security_block_rules_failed_total", MetricType::Counter,
             "Blocks not planned because the blocklist was full.");
    w.sample("netprobe_security_block_rules_failed_total", {}, v.blocks_refused_total);
    w.family("netprobe_security_mitigation_failures_total", MetricType::Counter,
             "Blocklist changes the kernel refused, by operation (each is retried).");
    const std::pair<const char*, std::uint64_t> ops[] = {
        {"insert", status ? status->insert_failures_total : 0},
        {"delete", status ? status->delete_failures_total : 0},
        {"reset_counters", status ? status->counter_reset_failures_total : 0},
        {"read_counters", status ? status->counter_read_failures_total : 0}};
    for (const auto& [op, n] : ops) w.sample("netprobe_security_mitigation_failures_total", {{"operation", op}}, n);
    // Per rule (at most NP_BLOCK_RULES_MAX rules): what XDP matched. In dry-run the
    // packets passed; with mitigation on they were dropped.
    w.family("netprobe_security_blocked_packets_total", MetricType::Counter,
             "Packets matched by a blocklist rule (dropped with mitigation on, passed in dry-run).");
    std::uint64_t all = status ? status->retired.packets : 0;
    if (status)
        for (const auto& r : status->rules) {
            w.sample("netprobe_security_blocked_packets_total", {{"cidr", r.cidr}, {"mode", mode}}, r.matched.packets);
            all += r.matched.packets;
        }
    w.family("netprobe_security_blocked_packets_all_total", MetricType::Counter,
             "Packets matched by any blocklist rule, removed rules included.");
    w.sample("netprobe_security_blocked_packets_all_total", {{"mode", mode}}, all);
    if (v.intel) renderIntelMetrics(w, *v.intel, v.stats);
    return w.take();
}

namespace {
void renderIntelMetrics(ExpositionWriter& w, const collector::IntelSample& in, const analysis::security::AnalyzerStats& st) {
    // One series set per configured feed (a bounded list the operator wrote).
    static const np_intel_counters kZero{};
    const auto* feeds = !in.feeds.empty() ? &in.feeds : in.set ? &in.set->feeds() : nullptr;
    auto counters = [&](std::size_t i) -> const np_intel_counters& {
        return i < in.counters.size() ? in.counters[i] : kZero;
    };
    w.family("netprobe_intel_indicators", MetricType::Gauge,
             "Indicators of each threat-intel feed at its last successful load, by kind (ip prefixes, domains).");
    if (feeds)
        for (const auto& f : *feeds) {
            w.sample("netprobe_intel_indicators", {{"feed", f.name}, {"kind", "ip"}}, static_cast<std::uint64_t>(f.ips));
            w.sample("netprobe_intel_indicators", {{"feed", f.name}, {"kind", "domain"}}, static_cast<std::uint64_t>(f.domains));
        }
    w.family("netprobe_intel_feed_malformed_lines", MetricType::Gauge,
             "Lines of a feed's last load that were not understood (the rest of the feed loaded).");
    if (feeds)
        for (const auto& f : *feeds) w.sample("netprobe_intel_feed_malformed_lines", {{"feed", f.name}}, static_cast<std::uint64_t>(f.errors));
    w.family("netprobe_intel_feed_loads_total", MetricType::Counter, "Loads of each feed, by result.");
    if (feeds)
        for (const auto& f : *feeds) {
            w.sample("netprobe_intel_feed_loads_total", {{"feed", f.name}, {"result", "ok"}}, f.loads_total);
            w.sample("netprobe_intel_feed_loads_total", {{"feed", f.name}, {"result", "error"}}, f.load_failures_total);
        }
    w.family("netprobe_intel_feed_last_load_timestamp_seconds", MetricType::Gauge,
             "When each feed last loaded successfully (Unix time).");
    if (feeds)
        for (const auto& f : *feeds)
            if (f.loaded_at)
                w.sample("netprobe_intel_feed_last_load_timestamp_seconds", {{"feed", f.name}},
                         std::chrono::duration<double>(f.loaded_at->time_since_epoch()).count());
    w.family("netprobe_intel_prefixes", MetricType::Gauge,
             "Unique IP prefixes in the kernel's indicator trie (all feeds).");
    w.sample("netprobe_intel_prefixes", {}, static_cast<std::uint64_t>(in.installed_prefixes));
    w.family("netprobe_intel_install_duration_seconds", MetricType::Gauge,
             "Time the last indicator set took to build into a kernel trie.");
    w.sample("netprobe_intel_install_duration_seconds", {}, in.install_seconds);
    w.family("netprobe_intel_installs_total", MetricType::Counter, "Indicator sets installed in the kernel, by result.");
    w.sample("netprobe_intel_installs_total", {{"result", "ok"}}, in.installs_total);
    w.sample("netprobe_intel_installs_total", {{"result", "error"}}, in.install_failures_total);
    using Field = __u64 np_intel_counters::*;
    auto perFeed = [&](const char* name, const char* help, Field from, Field to) {
        w.family(name, MetricType::Counter, help);
        if (!feeds) return;
        for (std::size_t i = 0; i < feeds->size(); ++i) {
            const auto& f = (*feeds)[i];
            const auto& c = counters(i);
            if (to == nullptr) {
                w.sample(name, {{"feed", f.name}}, static_cast<std::uint64_t>(c.*from));
                continue;
            }
            w.sample(name, {{"feed", f.name}, {"direction", "from"}}, static_cast<std::uint64_t>(c.*from));
            w.sample(name, {{"feed", f.name}, {"direction", "to"}}, static_cast<std::uint64_t>(c.*to));
        }
    };
    perFeed("netprobe_intel_packets_total",
            "Packets whose source (direction=from) or else destination (direction=to) matched a feed's indicator, "
            "seen at TC on the monitored interfaces.",
            &np_intel_counters::from_packets, &np_intel_counters::to_packets);
    perFeed("netprobe_intel_bytes_total", "Bytes of the packets in netprobe_intel_packets_total.",
            &np_intel_counters::from_bytes, &np_intel_counters::to_bytes);
    perFeed("netprobe_intel_dropped_packets_total",
            "Packets dropped because they matched a block-action feed with mitigation on.",
            &np_intel_counters::dropped_packets, nullptr);
    w.family("netprobe_intel_flow_records_total", MetricType::Counter,
             "Datapath records of flows matching an indicator that the security stage consumed.");
    w.sample("netprobe_intel_flow_records_total", {}, st.intel_hits);
    w.family("netprobe_intel_tracked_matches", MetricType::Gauge,
             "Indicator/local-address pairs with a match in progress (bounded).");
    w.sample("netprobe_intel_tracked_matches", {}, st.intel_tracked);
    w.family("netprobe_intel_matches_dropped_total", MetricType::Counter,
             "Matches not tracked because the bound was reached (their packets are still counted).");
    w.sample("netprobe_intel_matches_dropped_total", {}, st.intel_dropped);
    w.family("netprobe_intel_read_errors_total", MetricType::Counter, "Failed reads of the kernel's intel counters.");
    w.sample("netprobe_intel_read_errors_total", {}, in.read_errors);
    w.family("netprobe_intel_dns_queries_total", MetricType::Counter,
             "DNS queries for names that a domain indicator covers, read by the security stage (events).");
    w.sample("netprobe_intel_dns_queries_total", {}, st.intel_dns_hits);
    w.family("netprobe_intel_dns_queries_missed_total", MetricType::Counter,
             "Such queries that left the main pipeline's ring of recent hits before the security stage read them.");
    w.sample("netprobe_intel_dns_queries_missed_total", {}, st.intel_dns_missed);
}
}  // namespace

std::string renderDomainIntelMetrics(const analysis::domains::DomainIntelView& v) {
    ExpositionWriter w;
    w.family("netprobe_intel_dns_checked_total", MetricType::Counter,
             "DNS requests (parsed by the L7 capture) checked against the domain indicators.");
    w.sample("netprobe_intel_dns_checked_total", {}, v.dns_checked_total);
    // per feed with domain indicators: a bounded list the operator wrote
    w.family("netprobe_intel_dns_matches_total", MetricType::Counter,
             "DNS queries whose name (or a CNAME of the answer) a domain indicator of the feed covers.");
    for (const auto& [feed, c] : v.feeds) w.sample("netprobe_intel_dns_matches_total", {{"feed", feed}}, c.hits_total);
    w.family("netprobe_intel_resolved_addresses", MetricType::Gauge,
             "Addresses resolved from names a domain indicator covers, held as IP indicators until their TTL ends.");
    for (const auto& [feed, c] : v.feeds)
        w.sample("netprobe_intel_resolved_addresses", {{"feed", feed}}, static_cast<std::uint64_t>(c.resolved));
    w.family("netprobe_intel_resolved_answers_total", MetricType::Counter,
             "A/AAAA answers that added or renewed such an address.");
    for (const auto& [feed, c] : v.feeds)
        w.sample("netprobe_intel_resolved_answers_total", {{"feed", feed}}, c.addresses_total);
    w.family("netprobe_intel_resolved_dropped_total", MetricType::Counter,
             "Resolved addresses not held: resolved.max_addresses reached.");
    w.sample("netprobe_intel_resolved_dropped_total", {}, v.resolved_dropped_total);
    w.family("netprobe_intel_resolved_expired_total", MetricType::Counter, "Resolved addresses whose TTL ran out.");
    w.sample("netprobe_intel_resolved_expired_total", {}, v.resolved_expired_total);
    return w.take();
}

std::string renderNameCaptureMetrics(const collector::NameSample& names) {
    const auto& n = names.counters;
    ExpositionWriter w;
    w.family("netprobe_name_capture_records_total", MetricType::Counter,
             "Records of the name capture ring read (DNS responses and TLS ClientHellos seen at TC).");
    w.sample("netprobe_name_capture_records_total", {}, n.records_total);
    w.family("netprobe_name_capture_unparsed_total", MetricType::Counter,
             "Captured payloads that gave no name, by reason.");
    w.sample("netprobe_name_capture_unparsed_total", {{"reason", "dns_not_a_response"}}, n.dns_not_parsed);
    w.sample("netprobe_name_capture_unparsed_total", {{"reason", "tls_no_server_name"}}, n.hello_without_name);
    w.sample("netprobe_name_capture_unparsed_total", {{"reason", "tls_truncated"}}, n.hello_truncated);
    w.sample("netprobe_name_capture_unparsed_total", {{"reason", "tls_malformed"}}, n.hello_malformed);
    w.family("netprobe_name_capture_dropped_total", MetricType::Counter,
             "Names parsed but not queued for the pipeline: the queue was full.");
    w.sample("netprobe_name_capture_dropped_total", {}, n.queue_dropped);
    return w.take();
}

nlohmann::json intelJson(const collector::IntelSample* in, const analysis::domains::DomainIntelView* domains) {
    nlohmann::json j;
    j["enabled"] = in != nullptr;
    j["feeds"] = nlohmann::json::array();
    if (domains) {
        nlohmann::json d;
        d["checked_total"] = domains->dns_checked_total;
        d["matches_total"] = domains->hits_total;
        d["resolved_dropped_total"] = domains->resolved_dropped_total;
        d["resolved_expired_total"] = domains->resolved_expired_total;
        auto hits = nlohmann::json::array();
        for (auto it = domains->hits.rbegin(); it != domains->hits.rend() && hits.size() < 100; ++it) {
            const auto& h = *it;
            auto addrs = nlohmann::json::array();
            for (const auto& a : h.addresses) addrs.push_back(util::formatAddr(a));
            hits.push_back({{"time", metrics::rfc3339(h.time)},
                            {"kind", h.kind},
                            {"via", h.via},
                            {"query", h.qname},
                            {"type", h.qtype},
                            {"rcode", h.rcode},
                            {"matched_name", h.name},
                            {"indicator", h.indicator},
                            {"feed", h.feed},
                            {"confidence", h.confidence},
                            {"action", h.block ? "block" : "alert"},
                            {"client", util::formatEndpoint(h.client, h.client_port)},
                            {"server", util::formatEndpoint(h.server, h.server_port)},
                            {"pid", h.pid},
                            {"addresses", std::move(addrs)}});
        }
        d["recent_matches"] = std::move(hits);  // newest first, at most 100
        auto res = nlohmann::json::array();
        for (const auto& r : domains->resolved)
            res.push_back({{"address", util::formatAddr(r.addr)},
                           {"name", r.name},
                           {"indicator", r.indicator},
                           {"feed", r.feed},
                           {"confidence", r.confidence},
                           {"action", r.block ? "block" : "alert"},
                           {"expires", metrics::rfc3339(r.expires)}});
        d["resolved"] = std::move(res);  // at most resolved.max_addresses
        j["dns"] = std::move(d);
    }
    if (!in) return j;
    j["prefixes"] = in->installed_prefixes;
    j["install_seconds"] = in->install_seconds;
    j["installs_total"] = in->installs_total;
    j["install_failures_total"] = in->install_failures_total;
    if (!in->install_error.empty()) j["install_error"] = in->install_error;
    if (in->set) j["generation"] = in->set->generation();
    const auto& feeds = !in->feeds.empty() ? in->feeds : in->set ? in->set->feeds() : in->feeds;
    auto time = [](const std::optional<WallTime>& t) -> nlohmann::json {
        if (!t) return nullptr;
        return metrics::rfc3339(*t);
    };
    for (std::size_t i = 0; i < feeds.size(); ++i) {
        const auto& f = feeds[i];
        nlohmann::json x;
        x["name"] = f.name;
        x["type"] = std::string(intel::feedFormatName(f.format));
        x["action"] = std::string(intel::actionName(f.action));
        x["source"] = f.source;
        x["status"] = f.last_error.empty() ? (f.loaded_at ? "ok" : "pending") : "error";
        if (!f.last_error.empty()) x["error"] = f.last_error;
        x["ips"] = f.ips;
        x["domains"] = f.domains;
        x["expired"] = f.expired;
        x["malformed_lines"] = f.errors;
        auto errs = nlohmann::json::array();
        for (const auto& e : f.first_errors) errs.push_back({{"line", e.line}, {"reason", e.reason}});
        x["first_errors"] = std::move(errs);
        x["last_load"] = time(f.loaded_at);
        x["modified"] = time(f.modified_at);
        x["checked"] = time(f.checked_at);
        x["not_modified_total"] = f.not_modified_total;
        x["from_cache"] = f.from_cache;
        x["loads_total"] = f.loads_total;
        x["load_failures_total"] = f.load_failures_total;
        const np_intel_counters c = i < in->counters.size() ? in->counters[i] : np_intel_counters{};
        x["matched"] = {{"from", {{"packets", c.from_packets}, {"bytes", c.from_bytes}}},
                        {"to", {{"packets", c.to_packets}, {"bytes", c.to_bytes}}},
                        {"dropped", {{"packets", c.dropped_packets}, {"bytes", c.dropped_bytes}}}};
        j["feeds"].push_back(std::move(x));
    }
    return j;
}

}  // namespace netprobe::metrics
