// SecurityMonitor: one worker thread polls the sec_events ring buffer and, every
// tick, reads host_stats, runs the detectors and turns their findings into events
// (opened, updated, ended). HTTP threads read the events under a mutex.
#include "netprobe/security/monitor.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "ebpf/datapath.hpp"
#include "export/json_api.hpp"
#include <netprobe/util/duration.hpp>

namespace netprobe::security {

namespace {

Addr16 toAddr(const np_addr& a) {
    Addr16 out{};
    std::memcpy(out.data(), a.v6, 16);
    return out;
}

// RFC 3339 (UTC "Z" or a numeric offset, optional fraction) or Unix seconds.
std::optional<WallTime> parseTime(const std::string& s) {
    double unix_s = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), unix_s);
    if (ec == std::errc() && p == s.data() + s.size() && unix_s >= 0)
        return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(unix_s)));
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
        int hh = 0, mm = 0;
        if (std::sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
        offset = (hh * 3600L + mm * 60L) * (*rest == '-' ? -1 : 1);
        rest += 6;
    } else {
        return std::nullopt;
    }
    if (*rest != '\0') return std::nullopt;
    const std::time_t t = timegm(&tm) - offset;
    return WallTime(std::chrono::seconds(t)) +
           std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(frac));
}

nlohmann::json evidenceJson(const Evidence& ev) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : ev) std::visit([&j, &k](const auto& x) { j[k] = x; }, v);
    return j;
}

struct FileCloser {
    void operator()(std::FILE* f) const {
        if (f) std::fclose(f);
    }
};

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
                                           "\" (port_scan, syn_flood, udp_flood, icmp_flood, traffic_surge, "
                                           "connection_failures, fan_out, new_peer)");
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

std::string eventJson(const SecurityEvent& e) { return toJson(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string eventsJson(const std::vector<SecurityEvent>& events) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& e : events) arr.push_back(toJson(e));
    nlohmann::json j{{"enabled", true}, {"count", events.size()}, {"events", std::move(arr)}};
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------

struct RingBufferFree {
    void operator()(ring_buffer* r) const { ring_buffer__free(r); }
};

struct SecurityMonitor::Impl {
    ebpf::Manager& manager;
    SecurityConfig cfg;
    MonitorOptions opts;
    ebpf::SecurityMaps maps;
    ConnectionAnalyzer conn;
    FloodAnalyzer flood;
    std::unique_ptr<ring_buffer, RingBufferFree> ring;
    std::unique_ptr<std::FILE, FileCloser> log;
    std::thread worker;
    std::atomic<bool> stopping{false};

    // worker-only state
    std::vector<np_host_slot> prev_slots, cur_slots;  // host_stats, previous and current read
    std::unordered_map<Addr16, std::uint64_t, AddrHash> new_flows;  // since the last tick, by destination
    Clock::time_point prev_read{};

    // shared with readers, under mu
    mutable std::mutex mu;
    std::deque<SecurityEvent> events;                // newest first, bounded
    std::map<std::string, std::uint64_t> active;      // finding key -> event id
    std::array<std::uint64_t, kEventTypes> events_total{};
    std::atomic<std::uint64_t> obs_flows{0}, obs_unreach{0}, tick_count{0}, read_errors{0};
    std::atomic<std::uint64_t> tracked_sources{0}, tracked_hosts{0}, sources_evicted{0}, tracked_probes{0},
        probes_dropped{0};
    std::atomic<double> last_tick_seconds{0};
    std::map<std::string, BlockRule> rules;           // cidr text -> rule
    std::vector<std::uint32_t> free_rule_ids;
    np_counter retired_blocked{};  // matches of expired rules, kept for the _all_ counter
    std::uint64_t rules_added = 0, rules_expired = 0, rules_failed = 0;
    std::uint64_t next_id = 1;
    bool warned_no_xdp = false;

    Impl(ebpf::Manager& m, SecurityConfig c, MonitorOptions o)
        : manager(m), cfg(std::move(c)), opts(std::move(o)), maps(m.securityMaps()), conn(cfg, Clock::now()),
          flood(cfg) {
        for (std::uint32_t i = NP_BLOCK_RULES_MAX; i-- > 0;) free_rule_ids.push_back(i);
    }

    static WallTime wall(TimePoint t) {
        const auto now_s = Clock::now();
        const auto now_w = std::chrono::system_clock::now();
        return now_w - std::chrono::duration_cast<WallTime::duration>(now_s - t);
    }

    static int onRecord(void* ctx, void* data, std::size_t size) {
        auto* self = static_cast<Impl*>(ctx);
        if (size < sizeof(np_sec_event)) return 0;
        np_sec_event e;
        std::memcpy(&e, data, sizeof e);
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
            self->conn.observe(f);
            self->obs_flows.fetch_add(1, std::memory_order_relaxed);
            // flows/s per destination (flood.flows); a flow seen at ingress and at egress
            // (a forwarding host) counts once, where it entered
            if (e.key.direction == NP_DIR_INGRESS && self->new_flows.size() < self->cfg.max_hosts) ++self->new_flows[f.dst];
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
            self->conn.observe(u);
            self->obs_unreach.fetch_add(1, std::memory_order_relaxed);
        }
        return 0;
    }

    // Every slot of host_stats, every CPU's copy: vals[slot * ncpu + cpu].
    Result<void> readSlots(std::vector<np_host_slot>& vals) const {
        const auto ncpu = static_cast<std::size_t>(ebpf::possibleCpus());
        vals.assign(std::size_t{NP_HOST_SLOTS} * ncpu, np_host_slot{});
        std::vector<std::uint32_t> keys(NP_HOST_SLOTS);
        std::uint32_t in_tok = 0, out_tok = 0, done = 0;
        bool first = true;
        LIBBPF_OPTS(bpf_map_batch_opts, bo);
        while (done < NP_HOST_SLOTS) {
            __u32 count = NP_HOST_SLOTS - done;
            int err = bpf_map_lookup_batch(maps.host_stats, first ? nullptr : &in_tok, &out_tok, keys.data() + done,
                                           vals.data() + std::size_t{done} * ncpu, &count, &bo);
            if (err && errno != ENOENT) return std::unexpected(errnoError(errno, "batch read host_stats"));
            done += count;
            if (err || count == 0) break;
            in_tok = out_tok;
            first = false;
        }
        return {};
    }


    // Per address, what changed since the previous read. Deltas are taken per (slot,
    // CPU): a slot whose owner changed counts from zero for its new owner.
    std::vector<HostRates> hostDeltas(TimePoint now) {
        std::vector<HostRates> rates;
        if (auto r = readSlots(cur_slots); !r) {
            read_errors.fetch_add(1);
            spdlog::warn("security: {}", r.error().what());
            return rates;
        }
        const bool have_prev = prev_slots.size() == cur_slots.size();
        const double dt = prev_read == TimePoint{} ? 0.0 : std::chrono::duration<double>(now - prev_read).count();
        if (have_prev && dt > 0) {
            std::unordered_map<Addr16, np_host_stats, AddrHash> by_addr;
            static const np_addr kFree{};
            for (std::size_t i = 0; i < cur_slots.size(); ++i) {
                const np_host_slot& c = cur_slots[i];
                if (std::memcmp(&c.addr, &kFree, sizeof kFree) == 0) continue;
                const np_host_slot& p = prev_slots[i];
                const bool same_owner = std::memcmp(&c.addr, &p.addr, sizeof c.addr) == 0;
                if (same_owner && c.stats.in_packets == p.stats.in_packets && c.stats.out_packets == p.stats.out_packets)
                    continue;
                addHostStats(by_addr[toAddr(c.addr)], same_owner ? hostStatsSince(c.stats, p.stats) : c.stats);
            }
            rates.reserve(by_addr.size());
            for (const auto& [a, d] : by_addr) {
                if (!d.in_packets && !d.out_packets) continue;
                auto nf = new_flows.find(a);
                rates.push_back(HostRates{a, dt, d, nf == new_flows.end() ? 0 : nf->second});
            }
        }
        std::swap(prev_slots, cur_slots);
        prev_read = now;
        new_flows.clear();
        return rates;
    }

    std::vector<SourceShare> topSources(const Addr16& dst) const {
        if (opts.top_sources) return opts.top_sources(dst);
        std::vector<ebpf::FlowDelta> flows;
        if (auto r = manager.readFlows(flows); !r) return {};
        return topSourcesOf(flows, dst, [](const ebpf::FlowDelta& f) {
            return std::tuple{f.key, std::uint64_t{f.stats.packets}, std::uint64_t{f.stats.bytes}};
        });
    }

    // Active floods: their top sources again (once a second).
    void refreshTopSources() {
        std::lock_guard lock(mu);
        for (const auto& [key, id] : active) {
            SecurityEvent* e = findEvent(id);
            if (!e || !floodType(e->type) || !e->dst) continue;
            if (auto top = topSources(*e->dst); !top.empty()) e->top_sources = std::move(top);
            // The snapshot may have lagged the detection: block sources as they show up.
            for (const auto& src : e->top_sources)
                if (auto b = block(src.addr, e->id);
                    !b.empty() && std::find(e->blocked.begin(), e->blocked.end(), b) == e->blocked.end())
                    e->blocked.push_back(b);
        }
    }

    void writeLog(const SecurityEvent& e, const char* what) {
        const std::string line = eventJson(e);
        spdlog::info("security event {}: {}", what, line);
        if (log) {
            std::fputs(line.c_str(), log.get());
            std::fputc('\n', log.get());
            std::fflush(log.get());
        }
    }

    static bool sourceBased(EventType t) {
        return t == EventType::PortScan || t == EventType::ConnectionFailures || t == EventType::FanOut;
    }
    static bool floodType(EventType t) {
        return t == EventType::SynFlood || t == EventType::UdpFlood || t == EventType::IcmpFlood ||
               t == EventType::TrafficSurge;
    }

    // Under mu. Adds a /32 (/128) block for addr; returns the CIDR text or "".
    std::string block(const Addr16& addr, std::uint64_t event_id) {
        if (cfg.mitigate == MitigationMode::Off || cfg.allowed(addr)) return {};
        if (!opts.xdp_attached) {
            if (!warned_no_xdp) spdlog::warn("security: mitigation needs XDP, which is off (--xdp-mode=off)");
            warned_no_xdp = true;
            return {};
        }
        Cidr c{addr, 128};
        const std::string text = c.str();
        const auto now = std::chrono::system_clock::now();
        if (auto it = rules.find(text); it != rules.end()) {
            it->second.expires_at = now + cfg.block_duration;  // seen again: extend
            return text;
        }
        if (free_rule_ids.empty()) {
            ++rules_failed;
            return {};
        }
        BlockRule r{c, free_rule_ids.back(), event_id, now, now + cfg.block_duration};
        std::vector<np_counter> zeros(static_cast<std::size_t>(ebpf::possibleCpus()));
        bpf_map_update_elem(maps.block_stats, &r.rule_id, zeros.data(), BPF_ANY);
        np_block_key k{};
        k.prefixlen = c.prefix;
        std::memcpy(k.addr.v6, c.addr.data(), 16);
        np_block_value v{r.rule_id, 0};
        if (bpf_map_update_elem(maps.blocklist, &k, &v, BPF_ANY) != 0) {
            ++rules_failed;
            spdlog::warn("security: blocklist insert {}: {}", text, std::strerror(errno));
            return {};
        }
        free_rule_ids.pop_back();
        ++rules_added;
        rules.emplace(text, r);
        spdlog::warn("security: {} {} for {} (event {})", cfg.mitigate == MitigationMode::On ? "blocking" : "dry-run: would block",
                     text, util::formatDuration(cfg.block_duration), event_id);
        return text;
    }

    np_counter ruleCounter(std::uint32_t id) const {
        std::vector<np_counter> v(static_cast<std::size_t>(ebpf::possibleCpus()));
        np_counter sum{};
        if (bpf_map_lookup_elem(maps.block_stats, &id, v.data()) == 0)
            for (const auto& c : v) sum.packets += c.packets, sum.bytes += c.bytes;
        return sum;
    }

    void expireRules() {
        const auto now = std::chrono::system_clock::now();
        for (auto it = rules.begin(); it != rules.end();) {
            if (it->second.expires_at > now) {
                ++it;
                continue;
            }
            np_block_key k{};
            k.prefixlen = it->second.cidr.prefix;
            std::memcpy(k.addr.v6, it->second.cidr.addr.data(), 16);
            bpf_map_delete_elem(maps.blocklist, &k);
            auto c = ruleCounter(it->second.rule_id);
            retired_blocked.packets += c.packets;
            retired_blocked.bytes += c.bytes;
            free_rule_ids.push_back(it->second.rule_id);
            ++rules_expired;
            spdlog::info("security: block of {} expired", it->first);
            it = rules.erase(it);
        }
    }

    SecurityEvent* findEvent(std::uint64_t id) {
        for (auto& e : events)
            if (e.id == id) return &e;
        return nullptr;
    }

    void reconcile(std::vector<Finding> findings, TimePoint now) {
        // A port scan's SYNs are not also a SYN flood against the hosts it scans.
        std::vector<Addr16> scanned;
        for (const auto& f : findings)
            if (f.type == EventType::PortScan) scanned.insert(scanned.end(), f.targets.begin(), f.targets.end());
        std::erase_if(findings, [&](const Finding& f) {
            return f.type == EventType::SynFlood && f.dst &&
                   std::find(scanned.begin(), scanned.end(), *f.dst) != scanned.end();
        });
        std::lock_guard lock(mu);
        std::map<std::string, bool> seen;
        for (auto& f : findings) {
            seen[f.key] = true;
            auto it = active.find(f.key);
            SecurityEvent* e = it == active.end() ? nullptr : findEvent(it->second);
            if (!e) {
                SecurityEvent ne;
                ne.id = next_id++;
                ne.type = f.type;
                ne.severity = f.severity;
                ne.src = f.src;
                ne.dst = f.dst;
                ne.targets = f.targets;
                ne.detected_at = wall(now);
                ne.first_seen = wall(f.first_seen);
                ne.last_seen = wall(f.last_seen);
                ne.evidence = std::move(f.evidence);
                ne.evidence["detection_latency_ms"] =
                    std::chrono::duration<double, std::milli>(now - f.first_seen).count();
                if (floodType(f.type) && f.dst) ne.top_sources = topSources(*f.dst);
                if (sourceBased(f.type) && f.src) {
                    if (auto b = block(*f.src, ne.id); !b.empty()) ne.blocked.push_back(b);
                } else if (floodType(f.type)) {
                    for (const auto& s : ne.top_sources)
                        if (auto b = block(s.addr, ne.id); !b.empty()) ne.blocked.push_back(b);
                }
                ++events_total[static_cast<int>(f.type)];
                if (f.instant) ne.ended_at = ne.detected_at;
                events.push_front(std::move(ne));
                writeLog(events.front(), "detected");
                if (!f.instant) active[f.key] = events.front().id;
                while (events.size() > cfg.max_events) {
                    // Never drop an active incident's record before older ended ones.
                    auto victim = std::find_if(events.rbegin(), events.rend(),
                                               [](const SecurityEvent& x) { return x.ended_at.has_value(); });
                    if (victim == events.rend()) break;
                    events.erase(std::next(victim).base());
                }
                continue;
            }
            e->severity = std::max(e->severity, f.severity);
            e->last_seen = wall(f.last_seen);
            e->targets = f.targets;
            if (f.dst) e->dst = f.dst;
            const auto latency = e->evidence["detection_latency_ms"];
            e->evidence = std::move(f.evidence);
            e->evidence["detection_latency_ms"] = latency;
        }
        for (auto it = active.begin(); it != active.end();) {
            if (seen.contains(it->first)) {
                ++it;
                continue;
            }
            if (SecurityEvent* e = findEvent(it->second)) {
                e->ended_at = wall(now);
                if (floodType(e->type) && e->dst) {
                    auto top = topSources(*e->dst);
                    if (!top.empty()) e->top_sources = std::move(top);
                }
                writeLog(*e, "ended");
            }
            it = active.erase(it);
        }
        expireRules();
    }

    void tick(TimePoint now) {
        const auto t0 = Clock::now();
        auto rates = hostDeltas(now);
        auto findings = flood.evaluate(rates, now);
        auto conn_findings = conn.evaluate(now);
        for (auto& f : conn_findings) findings.push_back(std::move(f));
        for (auto& f : conn.takeNewPeers()) findings.push_back(std::move(f));
        reconcile(std::move(findings), now);
        if (tick_count.load() % 4 == 3) refreshTopSources();
        tracked_sources.store(conn.sources());
        tracked_hosts.store(flood.tracked());
        sources_evicted.store(conn.sourcesEvicted());
        tracked_probes.store(conn.probes());
        probes_dropped.store(conn.probesDropped());
        tick_count.fetch_add(1);
        last_tick_seconds.store(std::chrono::duration<double>(Clock::now() - t0).count());
    }

    void run() {
        auto next = Clock::now();
        while (!stopping.load()) {
            auto now = Clock::now();
            if (now >= next) {
                tick(now);
                next = now + cfg.tick;
                continue;
            }
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
            int n = ring_buffer__poll(ring.get(), static_cast<int>(std::clamp<long long>(wait, 1, 100)));
            if (n < 0 && n != -EINTR) {
                spdlog::error("security: ring buffer poll: {}", std::strerror(-n));
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        }
    }
};

SecurityMonitor::SecurityMonitor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SecurityMonitor::~SecurityMonitor() { stop(); }

Result<std::unique_ptr<SecurityMonitor>> SecurityMonitor::create(ebpf::Manager& manager, SecurityConfig cfg,
                                                                 MonitorOptions opts) {
    if (auto r = validate(cfg); !r) return std::unexpected(r.error());
    if (!manager.options().enable_security)
        return std::unexpected(makeError("security monitor: the datapath was loaded without security maps"));
    if (static_cast<int>(cfg.mitigate) != static_cast<int>(manager.options().mitigate))
        return std::unexpected(makeError("security monitor: mitigation mode differs from the datapath's"));
    auto impl = std::make_unique<Impl>(manager, std::move(cfg), std::move(opts));
    if (!impl->opts.events_log.empty()) {
        int fd = ::open(impl->opts.events_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) return std::unexpected(errnoError(errno, "open --events-log " + impl->opts.events_log));
        impl->log.reset(::fdopen(fd, "a"));
        if (!impl->log) {
            ::close(fd);
            return std::unexpected(errnoError(errno, "open --events-log " + impl->opts.events_log));
        }
    }
    ring_buffer* rb = ring_buffer__new(impl->maps.events, &Impl::onRecord, impl.get(), nullptr);
    if (!rb) return std::unexpected(errnoError(errno, "security: ring buffer"));
    impl->ring.reset(rb);
    // The blocklist starts empty: rules of an earlier run died with its maps.
    return std::unique_ptr<SecurityMonitor>(new SecurityMonitor(std::move(impl)));
}

void SecurityMonitor::start() {
    if (impl_->worker.joinable()) return;
    impl_->stopping = false;
    impl_->worker = std::thread([this] { impl_->run(); });
}

void SecurityMonitor::stop() {
    if (!impl_ || !impl_->worker.joinable()) return;
    impl_->stopping = true;
    impl_->worker.join();
}

const SecurityConfig& SecurityMonitor::config() const { return impl_->cfg; }

std::vector<SecurityEvent> SecurityMonitor::events(const EventQuery& q) const {
    std::lock_guard lock(impl_->mu);
    std::vector<SecurityEvent> out;
    for (const auto& e : impl_->events) {
        if (out.size() >= q.limit) break;
        if (!q.types.empty() && std::find(q.types.begin(), q.types.end(), e.type) == q.types.end()) continue;
        if (q.since) {
            WallTime latest = std::max(e.detected_at, e.last_seen);
            if (e.ended_at) latest = std::max(latest, *e.ended_at);
            if (latest < *q.since) continue;
        }
        out.push_back(e);
    }
    return out;
}

std::vector<BlockRule> SecurityMonitor::blockRules() const {
    std::lock_guard lock(impl_->mu);
    std::vector<BlockRule> out;
    for (const auto& [k, r] : impl_->rules) out.push_back(r);
    return out;
}

void SecurityMonitor::renderMetrics(metrics::ExpositionWriter& w) const {
    using metrics::MetricType;
    const Impl& im = *impl_;
    std::lock_guard lock(im.mu);
    std::array<std::uint64_t, kEventTypes> active{};
    for (const auto& [key, id] : im.active)
        for (const auto& e : im.events)
            if (e.id == id) {
                ++active[static_cast<int>(e.type)];
                break;
            }
    w.family("netprobe_security_events_total", MetricType::Counter,
             "Security events detected, by type (an incident counts once, when detected).");
    for (int t = 0; t < kEventTypes; ++t)
        w.sample("netprobe_security_events_total", {{"type", toString(static_cast<EventType>(t))}}, im.events_total[t]);
    w.family("netprobe_security_active_attacks", MetricType::Gauge, "Incidents in progress, by type.");
    for (int t = 0; t < kEventTypes; ++t)
        w.sample("netprobe_security_active_attacks", {{"type", toString(static_cast<EventType>(t))}},
                 static_cast<std::uint64_t>(active[t]));
    w.family("netprobe_security_observations_total", MetricType::Counter,
             "Datapath records the detectors consumed: first packets of new flows, ICMP unreachables.");
    w.sample("netprobe_security_observations_total", {{"kind", "new_flow"}}, im.obs_flows.load());
    w.sample("netprobe_security_observations_total", {{"kind", "icmp_unreachable"}}, im.obs_unreach.load());
    w.family("netprobe_security_tracked_sources", MetricType::Gauge, "Sources with scan/connection state (bounded).");
    w.sample("netprobe_security_tracked_sources", {}, im.tracked_sources.load());
    w.family("netprobe_security_sources_evicted_total", MetricType::Counter,
             "Sources whose state was dropped because the source table was full.");
    w.sample("netprobe_security_sources_evicted_total", {}, im.sources_evicted.load());
    w.family("netprobe_security_tracked_probes", MetricType::Gauge,
             "Probes (first packets of flows) held for scan detection, all sources (bounded).");
    w.sample("netprobe_security_tracked_probes", {}, im.tracked_probes.load());
    w.family("netprobe_security_probes_dropped_total", MetricType::Counter,
             "Probes not held because a per-source or total bound was reached.");
    w.sample("netprobe_security_probes_dropped_total", {}, im.probes_dropped.load());
    w.family("netprobe_security_tracked_hosts", MetricType::Gauge, "Destinations with flood baselines (bounded).");
    w.sample("netprobe_security_tracked_hosts", {}, im.tracked_hosts.load());
    w.family("netprobe_security_evaluations_total", MetricType::Counter, "Detector evaluations (ticks).");
    w.sample("netprobe_security_evaluations_total", {}, im.tick_count.load());
    w.family("netprobe_security_read_errors_total", MetricType::Counter, "Failed reads of the host counters.");
    w.sample("netprobe_security_read_errors_total", {}, im.read_errors.load());
    w.family("netprobe_security_evaluation_duration_seconds", MetricType::Gauge, "Duration of the last evaluation.");
    w.sample("netprobe_security_evaluation_duration_seconds", {}, im.last_tick_seconds.load());

    const char* mode = toString(im.cfg.mitigate);
    w.family("netprobe_security_mitigation_mode", MetricType::Gauge, "Mitigation mode (the labelled one is 1).");
    for (auto m : {MitigationMode::Off, MitigationMode::DryRun, MitigationMode::On})
        w.sample("netprobe_security_mitigation_mode", {{"mode", toString(m)}}, std::uint64_t{m == im.cfg.mitigate ? 1u : 0u});
    w.family("netprobe_security_block_rules", MetricType::Gauge, "Blocklist rules in force.");
    w.sample("netprobe_security_block_rules", {}, static_cast<std::uint64_t>(im.rules.size()));
    w.family("netprobe_security_block_rules_added_total", MetricType::Counter, "Blocklist rules added.");
    w.sample("netprobe_security_block_rules_added_total", {}, im.rules_added);
    w.family("netprobe_security_block_rules_failed_total", MetricType::Counter,
             "Blocks not added: blocklist full or insert failed.");
    w.sample("netprobe_security_block_rules_failed_total", {}, im.rules_failed);
    // Per rule (at most NP_BLOCK_RULES_MAX live rules): what XDP matched. In dry-run
    // the packets passed; with mitigation on they were dropped.
    w.family("netprobe_security_blocked_packets_total", MetricType::Counter,
             "Packets matched by a blocklist rule (dropped with mitigation on, passed in dry-run).");
    std::uint64_t all = std::uint64_t{im.retired_blocked.packets};
    for (const auto& [cidr, r] : im.rules) {
        const auto c = im.ruleCounter(r.rule_id);
        w.sample("netprobe_security_blocked_packets_total", {{"cidr", cidr}, {"mode", mode}}, std::uint64_t{c.packets});
        all += std::uint64_t{c.packets};
    }
    w.family("netprobe_security_blocked_packets_all_total", MetricType::Counter,
             "Packets matched by any blocklist rule, expired rules included.");
    w.sample("netprobe_security_blocked_packets_all_total", {{"mode", mode}}, all);
}

}  // namespace netprobe::security
