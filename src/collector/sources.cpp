#include "netprobe/collector/sources.hpp"

#include <netprobe/l7/dns.hpp>
#include <netprobe/l7/tls.hpp>
#include <netprobe/ebpf/interfaces.hpp>

#include "ebpf/sock_diag.hpp"

#include <cerrno>

#include <cstdio>

#include <charconv>

#include <net/if.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <map>
#include <unordered_map>

namespace netprobe::collector {

namespace {

double rate(std::uint64_t cur, std::uint64_t prev, double secs) {
    if (secs <= 0 || cur < prev) return 0;
    return static_cast<double>(cur - prev) / secs;
}

}  // namespace

// ---- DatapathSource ----

DatapathSource::DatapathSource(ebpf::Manager& manager, std::chrono::nanoseconds flow_idle_timeout,
                               std::function<std::chrono::nanoseconds()> interval)
    : manager_(manager), flow_idle_timeout_(flow_idle_timeout), interval_(std::move(interval)) {}

namespace {

// An aggregate entry of the kernel table (np_flow_aggregate_side): TCP with a port 0.
bool aggregateEntry(const flow_key& k) { return np_flow_aggregate_initiator(k.proto, k.src_port, k.dst_port) != 0; }

std::uint64_t aggregatedPackets(std::span<const FlowSample> samples) {
    std::uint64_t n = 0;
    for (const auto& f : samples)
        if (aggregateEntry(f.key)) n += f.packets;
    return n;
}

}  // namespace

std::uint64_t DatapathSource::kernelIdleNs() const {
    // Two intervals without a packet, but never longer than the flow timeout; under
    // pressure one second, so that the entries of a flood's attempts go at once.
    auto idle = pressure_ ? std::int64_t{1'000'000'000} : std::max<std::int64_t>(2 * interval_().count(), 1'000'000'000);
    if (flow_idle_timeout_.count() > 0) idle = std::min<std::int64_t>(idle, flow_idle_timeout_.count());
    return static_cast<std::uint64_t>(idle);
}

Result<void> DatapathSource::collect(SnapshotBuilder& b) {
    auto stats = manager_.getNetworkStats();
    if (!stats) return std::unexpected(stats.error());
    // The kernel table is read batch by batch straight into the baselines: no copy of
    // the whole table is held (100k entries would be ~5 MiB more at the peak).
    Snapshot& snap = b.snapshot();
    const std::uint64_t now_mono = snap.monoNs();
    // Room for a sample of every kernel entry: address space only (the allocation is
    // mmapped; pages are resident once written), so the vector never regrows and copies.
    snap.flows.reserve(std::size_t{manager_.flowTableCapacity()} + 1024);
    deltas_.reserve(manager_.flowTableCapacity());  // the same for the baselines (once)
    deltas_.begin();
    auto read = manager_.forEachFlow([&](const ebpf::FlowEntry& e) { deltas_.add(e, snap.flows); });
    if (read) {
        deltas_.end();
    } else {
        // The samples read so far are published (their baselines moved on); the entries
        // not read keep theirs and count at the next collection. Nothing is forgotten.
        if (read_failures_++ == 0) spdlog::warn("datapath: {} (partial read, retried)", read.error().what());
    }
    // Pressure: the entries plus the connection attempts aggregated since the previous
    // collection (each would have been an entry) fill 3/4 of the table; it lasts until
    // they fall below half. While it lasts the programs aggregate SYNs and RSTs without
    // an entry, and idle entries go after a second.
    std::uint64_t aggregated = aggregatedPackets(snap.flows);
    {
        const std::uint64_t capacity = manager_.flowTableCapacity();
        const std::uint64_t demand = (read ? *read : deltas_.size()) + aggregated;
        const bool was = pressure_;
        pressure_ = nextFlowPressure(was, demand, capacity);
        if (pressure_ != was) {
            manager_.setFlowPressure(pressure_);
            spdlog::info("datapath: kernel flow table {} ({} entries and {} aggregated packets, capacity {})",
                         pressure_ ? "under pressure: connection attempts and refusals without an entry are aggregated"
                                   : "no longer under pressure",
                         read ? *read : deltas_.size(), aggregated, capacity);
        }
    }
    const std::uint64_t idle_ns = kernelIdleNs();
    const std::size_t read_samples = snap.flows.size();
    // Idle kernel entries leave the kernel table with their final values, so its
    // capacity serves live flows. A failed removal keeps the entry's baseline (its
    // packets are never counted twice) and is retried at the next collection. In chunks:
    // the keys of every idle entry at once were 4 MiB more at the peak with 100k of them.
    constexpr std::size_t kIdleChunk = 4096;
    for (bool more = true; more;) {
        const auto keys = deltas_.idle(now_mono, idle_ns, kIdleChunk);
        more = keys.size() == kIdleChunk;
        for (const auto& key : keys) {
            auto last = manager_.removeFlow(key);
            if (last) {
                // Its final delta; none when nothing came since the last read (an idle entry
                // usually): such a sample tells no stage anything, and 100k entries going idle
                // at once were 8 MiB of them at the peak.
                const FlowSample ended = deltas_.retire(key, last->last);
                remember_failures_ += last->remember_failed ? 1 : 0;
                if (ended.packets != 0) snap.flows.push_back(ended);
                ++removed_idle_;
            } else if (last.error().code == ENOENT) {
                deltas_.forget(key);
            } else {
                more = false;  // (its key would come first again)
                if (remove_failures_++ == 0) spdlog::warn("datapath: {} (retried)", last.error().what());
            }
        }
    }
    aggregated += aggregatedPackets(std::span<const FlowSample>(snap.flows).subspan(read_samples));
    aggregated_packets_ += aggregated;
    // Which sample is its 5-tuple's place (a routed packet is in the entries of two
    // interfaces): the stages that count a 5-tuple once count those.
    deltas_.markPlaces(snap.flows);
    // TCP handshakes timed since the previous collection (a ring in shared memory).
    if (auto h = manager_.drainHandshakes(snap.handshakes); !h && handshake_failures_++ == 0)
        spdlog::warn("datapath: {} (retried)", h.error().what());
    // UDP flows' datagram timing (QoS): those with a datagram within the idle horizon.
    {
        const std::uint64_t since = now_mono > idle_ns ? now_mono - idle_ns : 0;
        if (auto u = manager_.readUdpTimings(snap.udp_timings, since); !u && udp_timing_failures_++ == 0)
            spdlog::warn("datapath: {} (retried)", u.error().what());
    }
    snap.kernel_flows.capacity = manager_.flowTableCapacity();
    snap.kernel_flows.entries = read ? *read : deltas_.size();
    snap.kernel_flows.read_failures_total = read_failures_;
    snap.kernel_flows.removed_idle_total = removed_idle_;
    snap.kernel_flows.remove_failures_total = remove_failures_;
    snap.kernel_flows.remember_failures_total = remember_failures_;
    snap.kernel_flows.pressure = pressure_;
    snap.kernel_flows.aggregated_packets_total = aggregated_packets_;

    const double secs = prev_time_ == MonoTime{}
                            ? 0.0
                            : std::chrono::duration<double>(stats->taken_at - prev_time_).count();
    std::unordered_map<std::uint32_t, ebpf::AttachInfo> attached;
    for (auto& a : manager_.attachments()) attached.emplace(a.ifindex, std::move(a));
    for (const auto& d : stats->devices) {
        auto at = attached.find(d.ifindex);
        if (at == attached.end()) continue;  // counters of an interface being detached
        InterfaceStats s;
        s.name = at->second.ifname;
        s.index = d.ifindex;
        s.ingress_packets = d.ingress.packets;
        s.ingress_bytes = d.ingress.bytes;
        s.egress_packets = d.egress.packets;
        s.egress_bytes = d.egress.bytes;
        s.xdp_packets = d.xdp.packets;
        s.xdp_bytes = d.xdp.bytes;
        s.tc_mode = at->second.tc;
        s.xdp_mode = at->second.xdp;
        s.layer3 = at->second.layer3;
        s.last_updated = snap.taken_at;
        auto prev = std::find_if(prev_devices_.begin(), prev_devices_.end(),
                                 [&](const auto& p) { return p.ifindex == d.ifindex; });
        if (prev != prev_devices_.end()) {
            s.ingress_packets_rate = rate(d.ingress.packets, prev->ingress.packets, secs);
            s.ingress_bytes_rate = rate(d.ingress.bytes, prev->ingress.bytes, secs);
            s.egress_packets_rate = rate(d.egress.packets, prev->egress.packets, secs);
            s.egress_bytes_rate = rate(d.egress.bytes, prev->egress.bytes, secs);
        }
        snap.interfaces.push_back(std::move(s));
        attached.erase(at);
    }
    // Attached interfaces that have not seen a packet yet still get a row.
    for (const auto& [idx, a] : attached) {
        InterfaceStats s;
        s.name = a.ifname;
        s.index = idx;
        s.tc_mode = a.tc;
        s.xdp_mode = a.xdp;
        s.layer3 = a.layer3;
        s.last_updated = snap.taken_at;
        snap.interfaces.push_back(std::move(s));
    }
    std::sort(snap.interfaces.begin(), snap.interfaces.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
    prev_devices_ = stats->devices;
    prev_time_ = stats->taken_at;

    snap.protocols = stats->protocols;
    snap.malformed = stats->malformed;
    snap.map_errors = stats->map_errors;
    snap.icmp = std::move(stats->icmp);
    snap.overlay = stats->overlay;
    snap.device_reset_failures = stats->device_reset_failures;
    return {};
}

// ---- StackSource, CgroupTrafficSource ----

Result<void> StackSource::collect(SnapshotBuilder& b) {
    auto st = monitor_.read();
    if (!st) return std::unexpected(st.error());
    b.snapshot().stack = std::make_shared<const ebpf::StackStats>(std::move(*st));
    return {};
}

Result<void> CgroupTrafficSource::collect(SnapshotBuilder& b) {
    auto ct = monitor_.read();
    if (!ct) return std::unexpected(ct.error());
    b.snapshot().cgroup_traffic = std::make_shared<const ebpf::CgroupTrafficStats>(std::move(*ct));
    return {};
}

// ---- SecuritySource ----

Result<std::unique_ptr<SecuritySource>> SecuritySource::create(const ebpf::Manager& manager, std::size_t max_queued) {
    if (!manager.options().enable_security)
        return std::unexpected(makeError("security: the datapath was loaded without security maps"));
    std::unique_ptr<SecuritySource> s(new SecuritySource());
    s->max_queued_ = max_queued;
    auto hosts = manager.mapFd(ebpf::DatapathMap::HostStats);
    if (!hosts) return std::unexpected(hosts.error());
    s->host_stats_ = std::move(*hosts);
    auto mapped = [&]() -> Result<ebpf::MappedMap> {
        auto dirty = manager.mapFd(ebpf::DatapathMap::HostDirty);
        if (!dirty) return std::unexpected(dirty.error());
        return ebpf::MappedMap::map(dirty->get(), NP_HOST_DIRTY_WORDS * sizeof(std::uint64_t), "np_host_dirty");
    }();
    if (mapped)
        s->dirty_ = std::move(*mapped);
    else
        spdlog::info("security: every host_stats read reads all {} slots ({})", NP_HOST_SLOTS, mapped.error().what());
    auto events = manager.mapFd(ebpf::DatapathMap::SecurityEvents);
    if (!events) return std::unexpected(events.error());
    auto ring = ebpf::RingReader::start(events->get(), "security", [raw = s.get()](std::span<const std::byte> rec) {
        if (rec.size() < sizeof(np_sec_event)) return;
        std::lock_guard lock(raw->queue_mu_);
        ++raw->records_total_;
        if (raw->queue_.size() >= raw->max_queued_) {
            ++raw->records_dropped_;
            return;
        }
        np_sec_event e;
        std::memcpy(&e, rec.data(), sizeof e);
        raw->queue_.push_back(e);
    });
    if (!ring) return std::unexpected(ring.error());
    s->ring_ = std::move(*ring);
    return s;
}

SecuritySource::~SecuritySource() { ring_.reset(); }

Result<std::vector<HostDelta>> SecuritySource::hostDeltas() {
    const auto ncpu = static_cast<std::size_t>(ebpf::possibleCpus());
    const std::size_t n = std::size_t{NP_HOST_SLOTS} * ncpu;
    // The slots changed since the previous read (the bits are taken before any read, so
    // a change during the read sets its bit for the next one).
    dirty_slots_.clear();
    if (dirty_) {
        auto* words = static_cast<std::uint64_t*>(dirty_.data());
        for (std::uint32_t w = 0; w < NP_HOST_DIRTY_WORDS; ++w) {
            std::atomic_ref<std::uint64_t> word(words[w]);
            if (word.load(std::memory_order_relaxed) == 0) continue;
            for (std::uint64_t bits = word.exchange(0); bits; bits &= bits - 1)
                dirty_slots_.push_back(w * 64 + static_cast<std::uint32_t>(std::countr_zero(bits)));
        }
    }
    const bool have = slots_.size() == n;
    const bool full = !dirty_ || !have || ++reads_ % kFullReadEvery == 0 || dirty_slots_.size() > kSparseReadMax;
    // Deltas per (slot, CPU): a slot whose owner changed counts from zero for its new owner.
    std::map<util::Addr16, np_host_stats> by_addr;
    static const np_addr kFree{};
    auto account = [&](std::uint32_t slot, std::span<const np_host_slot> now) {
        np_host_slot* last = slots_.data() + std::size_t{slot} * ncpu;
        for (std::size_t cpu = 0; cpu < ncpu; ++cpu) {
            const np_host_slot& c = now[cpu];
            np_host_slot& p = last[cpu];
            if (std::memcmp(&c.addr, &kFree, sizeof kFree) != 0) {
                const bool same_owner = std::memcmp(&c.addr, &p.addr, sizeof c.addr) == 0;
                if (!same_owner || c.stats.in_packets != p.stats.in_packets || c.stats.out_packets != p.stats.out_packets)
                    addHostStats(by_addr[std::bit_cast<util::Addr16>(c.addr)],
                                 same_owner ? hostStatsSince(c.stats, p.stats) : c.stats);
            }
            p = c;
        }
    };
    if (full) {
        // Every slot is overwritten by the read (or the read fails): no zero-fill (it was
        // ~6% of the agent's CPU under load, 4 reads a second).
        fresh_.resize(n);
        std::uint32_t read = 0;
        auto r = ebpf::readPerCpuArray<np_host_slot>(host_stats_.get(), NP_HOST_SLOTS,
                                                     [&](std::uint32_t i, std::span<const np_host_slot> v) {
                                                         std::copy(v.begin(), v.end(), fresh_.begin() + i * ncpu);
                                                         ++read;
                                                     });
        if (!r || read != NP_HOST_SLOTS) {
            slots_.clear();  // partly stale: start the deltas over
            if (!r) return std::unexpected(r.error());
            return std::unexpected(makeError("host_stats: read " + std::to_string(read) + " of " +
                                             std::to_string(NP_HOST_SLOTS) + " slots"));
        }
        if (have) {
            for (std::uint32_t i = 0; i < NP_HOST_SLOTS; ++i)
                account(i, std::span<const np_host_slot>(fresh_.data() + std::size_t{i} * ncpu, ncpu));
        } else {
            std::swap(slots_, fresh_);  // the first read: the base of the next deltas
        }
    } else {
        // A slot whose bit was not set is as the previous read left it.
        fresh_.resize(ncpu);
        for (const std::uint32_t i : dirty_slots_) {
            if (auto r = ebpf::lookupElem(host_stats_.get(), &i, fresh_.data(), "host_stats"); !r) {
                slots_.clear();
                return std::unexpected(r.error());
            }
            account(i, std::span<const np_host_slot>(fresh_.data(), ncpu));
        }
    }
    std::vector<HostDelta> out;
    out.reserve(by_addr.size());
    for (const auto& [a, d] : by_addr)
        if (d.in_packets || d.out_packets) out.push_back({a, d});
    return out;
}

Result<void> SecuritySource::collect(SnapshotBuilder& b) {
    auto sample = std::make_shared<SecuritySample>();
    {
        std::lock_guard lock(queue_mu_);
        sample->records.swap(queue_);
        // Room for as many records as this tick had: the queue fills without regrowing
        // (each regrowth copies it and holds both buffers). Address space until written.
        queue_.reserve(sample->records.size());
        sample->records_total = records_total_;
        sample->records_dropped = records_dropped_;
    }
    const auto now = b.snapshot().mono;
    if (auto hosts = hostDeltas()) {
        sample->hosts = std::move(*hosts);
        sample->seconds = prev_read_ == MonoTime{} ? 0.0 : std::chrono::duration<double>(now - prev_read_).count();
        prev_read_ = now;
    } else {
        if (host_read_errors_++ == 0) spdlog::warn("security: {}", hosts.error().what());
    }
    sample->host_read_errors = host_read_errors_;
    b.snapshot().security = std::move(sample);
    return {};
}

// ---- IntelSource ----

// ---- NameSource ----

Result<std::unique_ptr<NameSource>> NameSource::create(const ebpf::Manager& manager, std::size_t max_queued) {
    if (!manager.options().enable_names)
        return std::unexpected(makeError("names: the datapath was loaded without name capture"));
    std::unique_ptr<NameSource> s(new NameSource());
    s->max_queued_ = max_queued;
    auto events = manager.mapFd(ebpf::DatapathMap::NameEvents);
    if (!events) return std::unexpected(events.error());
    auto ring = ebpf::RingReader::start(events->get(), "names",
                                        [raw = s.get()](std::span<const std::byte> rec) { raw->onRecord(rec); });
    if (!ring) return std::unexpected(ring.error());
    s->ring_ = std::move(*ring);
    return s;
}

NameSource::~NameSource() { ring_.reset(); }

void NameSource::onRecord(std::span<const std::byte> rec) {
    // parsed outside the lock; the record is the header and cap_len bytes
    NameObservation o;
    std::uint64_t not_dns = 0, no_name = 0, truncated = 0, malformed = 0;
    bool ok = false;
    if (rec.size() >= NP_NAME_HDR_LEN) {
        np_name_event h;
        std::memcpy(&h, rec.data(), NP_NAME_HDR_LEN);
        const std::size_t cap = std::min<std::size_t>({h.cap_len, rec.size() - NP_NAME_HDR_LEN, NP_NAME_CAP});
        const std::string_view data(reinterpret_cast<const char*>(rec.data()) + NP_NAME_HDR_LEN, cap);
        o.mono_ns = h.ts_ns;
        o.family = h.key.family;
        if (h.kind == NP_NAME_DNS) {
            o.kind = NameObservation::Kind::Dns;
            std::memcpy(o.server.data(), &h.key.src_ip, 16);
            std::memcpy(o.client.data(), &h.key.dst_ip, 16);
            o.server_port = h.key.src_port;
            o.client_port = h.key.dst_port;
            auto m = l7::parseDns(data);
            if (m && m->response) {
                o.dns_id = m->id;
                o.name = std::move(m->qname);
                o.qtype = m->qtype;
                o.rcode = m->rcode;
                o.answers = std::move(m->answers);
                ok = true;
            } else {
                ++not_dns;
            }
        } else if (h.kind == NP_NAME_TLS_HELLO) {
            o.kind = NameObservation::Kind::TlsSni;
            std::memcpy(o.client.data(), &h.key.src_ip, 16);
            std::memcpy(o.server.data(), &h.key.dst_ip, 16);
            o.client_port = h.key.src_port;
            o.server_port = h.key.dst_port;
            switch (l7::parseClientHelloSni(data, &o.name)) {
                case l7::SniResult::Name: ok = true; break;
                case l7::SniResult::NoSni: ++no_name; break;
                case l7::SniResult::Truncated: ++truncated; break;
                case l7::SniResult::NotHello:
                case l7::SniResult::Malformed: ++malformed; break;
            }
        } else {
            ++malformed;
        }
    } else {
        ++malformed;
    }
    std::lock_guard lock(mu_);
    auto& c = state_.counters;
    ++c.records_total;
    c.dns_not_parsed += not_dns;
    c.hello_without_name += no_name;
    c.hello_truncated += truncated;
    c.hello_malformed += malformed;
    if (!ok) return;
    if (state_.observations.size() >= max_queued_) {
        ++c.queue_dropped;
        return;
    }
    state_.observations.push_back(std::move(o));
}

Result<void> NameSource::collect(SnapshotBuilder& b) {
    auto sample = std::make_shared<NameSample>();
    {
        std::lock_guard lock(mu_);
        sample->observations = std::move(state_.observations);
        state_.observations.clear();
        sample->counters = state_.counters;
    }
    b.snapshot().names = std::move(sample);
    return {};
}

void IntelSource::installed(std::shared_ptr<const intel::IndicatorSet> set, const Result<ebpf::IntelInstall>& result) {
    std::lock_guard lock(mu_);
    if (result) {
        ++state_.installs_total;
        state_.install_error.clear();
        state_.install_seconds = result->seconds;
        state_.installed_prefixes = result->entries;
        state_.set = std::move(set);
    } else {
        ++state_.install_failures_total;
        state_.install_error = result.error().what();
        // the kernel keeps the previous trie: so does the published set, except for the
        // feeds' statuses, which say what the last load found
    }
}

void IntelSource::statuses(std::vector<intel::FeedStatus> feeds) {
    std::lock_guard lock(mu_);
    state_.feeds = std::move(feeds);
}

Result<void> IntelSource::collect(SnapshotBuilder& b) {
    auto sample = std::make_shared<IntelSample>();
    {
        std::lock_guard lock(mu_);
        *sample = state_;
    }
    if (auto c = maps_.readCounters()) {
        sample->counters = std::move(*c);
    } else {
        std::lock_guard lock(mu_);
        sample->read_errors = ++state_.read_errors;
        b.snapshot().intel = std::move(sample);
        return std::unexpected(c.error());
    }
    b.snapshot().intel = std::move(sample);
    return {};
}

void parseNetstat(std::string_view text, std::map<std::string, std::uint64_t>& out) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        lines.push_back(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    }
    auto words = [](std::string_view l) {
        std::vector<std::string_view> w;
        while (!l.empty()) {
            const auto sp = l.find(' ');
            if (sp != 0) w.push_back(l.substr(0, sp));
            if (sp == std::string_view::npos) break;
            l = l.substr(sp + 1);
        }
        return w;
    };
    for (std::size_t i = 0; i + 1 < lines.size(); i += 2) {
        const auto names = words(lines[i]), values = words(lines[i + 1]);
        if (names.empty() || values.empty() || names[0] != values[0] || !names[0].ends_with(':')) continue;
        const std::string group(names[0].substr(0, names[0].size() - 1));
        for (std::size_t k = 1; k < names.size() && k < values.size(); ++k) {
            std::uint64_t v = 0;
            auto sv = values[k];
            if (sv.starts_with('-')) continue;  // Tcp.MaxConn is -1
            auto [p, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), v);
            if (ec == std::errc() && p == sv.data() + sv.size()) out[group + "." + std::string(names[k])] = v;
        }
    }
}

Result<void> NetstatSource::collect(SnapshotBuilder& b) {
    auto m = std::make_shared<std::map<std::string, std::uint64_t>>();
    for (const char* f : {"netstat", "snmp"}) {
        const std::string path = dir_ + "/" + f;
        std::FILE* fp = std::fopen(path.c_str(), "re");
        if (!fp) return std::unexpected(errnoError(errno, "read " + path));
        std::string text;
        char buf[8192];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, fp)) > 0;) text.append(buf, n);
        std::fclose(fp);
        parseNetstat(text, *m);
    }
    // Which listener overflowed: the counter is the namespace's, the queues are per socket.
    if (auto it = m->find("TcpExt.ListenOverflows"); it != m->end()) {
        const bool moved = overflows_ && it->second > *overflows_;
        overflows_ = it->second;
        if (moved) {
            if (!diag_) {
                auto fd = ebpf::sockDiagSocket("");
                if (fd) diag_ = std::move(*fd);
                else if (!diag_warned_) {
                    spdlog::warn("netstat: cannot read the listeners' accept queues: {}", fd.error().what());
                    diag_warned_ = true;
                }
            }
            std::vector<ebpf::TcpListener> all;
            if (diag_) {
                if (auto r = ebpf::dumpTcpListeners(diag_.get(), all); !r) {
                    if (!diag_warned_) spdlog::warn("netstat: listener dump: {}", r.error().what());
                    diag_warned_ = true;
                    all.clear();
                    diag_.reset();  // a fresh socket next time
                }
            }
            auto full = std::make_shared<std::vector<FullListener>>();
            for (const auto& l : all)
                if (l.queued > 0 && l.queued >= l.backlog)
                    full->push_back({l.addr, l.family, l.port, l.queued, l.backlog});
            std::sort(full->begin(), full->end(),
                      [](const FullListener& a, const FullListener& b) { return a.queued > b.queued; });
            if (full->size() > 64) full->resize(64);
            b.snapshot().full_listeners = std::move(full);
        }
    }
    b.snapshot().netstat = std::move(m);
    return {};
}

// ---- links: speeds and queueing disciplines (a background task's dumps) ----

bool nominalSpeed(std::string_view kind) {
    return kind == "veth" || kind == "tun" || kind == "netkit" || kind == "bridge";
}

LinkSource::~LinkSource() {
    if (scheduler_ && task_) scheduler_->cancel(*task_);
}

void LinkSource::schedule(util::Scheduler& scheduler, std::chrono::nanoseconds period) {
    scheduler_ = &scheduler;
    task_ = scheduler.every("links: speed and qdiscs", std::chrono::duration_cast<util::Scheduler::Duration>(period),
                            [this] { refresh(); });
}

void LinkSource::refresh() {
    const auto at = std::chrono::steady_clock::now();
    auto links = ebpf::dumpLinks();
    auto qdiscs = links ? ebpf::dumpQdiscs() : Result<std::vector<ebpf::QdiscInfo>>(std::unexpected(links.error()));
    const auto prev = latest_.load();
    if (!links || !qdiscs) {
        const std::string err = (!links ? links.error() : qdiscs.error()).what();
        if (failures_++ == 0 || (prev && prev->last_error.empty()))
            spdlog::warn("links: {} (the previous reading stays)", err);
        auto s = std::make_shared<LinkSample>(prev ? *prev : LinkSample{});
        s->failures = failures_;
        s->last_error = err;
        latest_.store(std::move(s));
        return;
    }
    if (prev && !prev->last_error.empty()) spdlog::info("links: read again");
    auto s = std::make_shared<LinkSample>();
    s->read_at = at;
    s->refreshes = ++refreshes_;
    s->failures = failures_;
    for (auto& l : *links) {
        LinkState st;
        st.name = std::move(l.name);
        st.index = l.index;
        st.kind = std::move(l.kind);
        if (auto c = configured_.find(st.name); c != configured_.end()) {
            st.speed_mbps = c->second;
            st.speed_configured = true;
        } else if (!nominalSpeed(st.kind) && !l.loopback) {
            if (auto sp = ebpf::readLinkSpeed(st.name)) st.speed_mbps = *sp;
        }
        s->links.push_back(std::move(st));
    }
    if (refreshes_ == 1)  // once: a configured speed for a link this namespace does not have
        for (const auto& [name, mbps] : configured_)
            if (std::none_of(s->links.begin(), s->links.end(), [&](const LinkState& l) { return l.name == name; }))
                spdlog::warn("--link-speed: no link named {} (yet); its {} Mb/s applies when it appears", name, mbps);
    std::sort(s->links.begin(), s->links.end(), [](const LinkState& a, const LinkState& b) { return a.index < b.index; });
    for (auto& q : *qdiscs) {
        auto it = std::lower_bound(s->links.begin(), s->links.end(), q.ifindex,
                                   [](const LinkState& l, std::uint32_t i) { return l.index < i; });
        if (it != s->links.end() && it->index == q.ifindex) it->qdiscs.push_back(std::move(q));
    }
    latest_.store(std::move(s));
}

Result<void> LinkSource::collect(SnapshotBuilder& b) {
    b.snapshot().links = latest_.load();
    return {};
}

// ---- link counters ----

Result<void> LinkCountersSource::collect(SnapshotBuilder& b) {
    auto c = ebpf::dumpLinkCounters();
    if (!c) return std::unexpected(c.error());
    auto s = std::make_shared<LinkCountersSample>();
    s->read_at = b.snapshot().mono;
    s->links = std::move(*c);
    b.snapshot().link_counters = std::move(s);
    return {};
}

// ---- conntrack ----

namespace {

// The whole of a small /proc file; nullopt with errno set when it cannot be read.
std::optional<std::string> readProcFile(const std::string& path) {
    std::FILE* fp = std::fopen(path.c_str(), "re");
    if (!fp) return std::nullopt;
    std::string text;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, fp)) > 0;) text.append(buf, n);
    const bool failed = std::ferror(fp) != 0;
    const int e = errno;
    std::fclose(fp);
    if (failed) {
        errno = e;
        return std::nullopt;
    }
    return text;
}

std::optional<std::uint64_t> parseUnsigned(std::string_view t) {
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.remove_suffix(1);
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
    return v;
}

}  // namespace

void parseConntrackStat(std::string_view text, ConntrackSample& out) {
    auto words = [](std::string_view l) {
        std::vector<std::string_view> w;
        while (!l.empty()) {
            const auto sp = l.find_first_of(" \t");
            if (sp != 0) w.push_back(l.substr(0, sp));
            if (sp == std::string_view::npos) break;
            l = l.substr(sp + 1);
        }
        return w;
    };
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return;
    const auto names = words(text.substr(0, nl));
    int drop = -1, early = -1, failed = -1;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] == "drop") drop = static_cast<int>(i);
        if (names[i] == "early_drop") early = static_cast<int>(i);
        if (names[i] == "insert_failed") failed = static_cast<int>(i);
    }
    out.drop = out.early_drop = out.insert_failed = 0;
    text.remove_prefix(nl + 1);
    while (!text.empty()) {
        const auto e = text.find('\n');
        const auto values = words(text.substr(0, e));
        text = e == std::string_view::npos ? std::string_view() : text.substr(e + 1);
        if (values.size() != names.size()) continue;
        auto hex = [&](int i) -> std::uint64_t {
            if (i < 0) return 0;
            const auto v = values[static_cast<std::size_t>(i)];
            std::uint64_t x = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x, 16);
            return ec == std::errc() && p == v.data() + v.size() ? x : 0;
        };
        out.drop += hex(drop);
        out.early_drop += hex(early);
        out.insert_failed += hex(failed);
    }
}

Result<void> ConntrackSource::collect(SnapshotBuilder& b) {
    auto s = std::make_shared<ConntrackSample>();
    const auto count = readProcFile(dir_ + "/nf_conntrack_count");
    if (!count) {
        if (errno != ENOENT) return std::unexpected(errnoError(errno, "read " + dir_ + "/nf_conntrack_count"));
        if (!told_absent_) {
            spdlog::info("conntrack: no table in this network namespace ({} absent: nf_conntrack not loaded)",
                         dir_ + "/nf_conntrack_count");
            told_absent_ = true;
        }
        b.snapshot().conntrack = std::move(s);
        return {};
    }
    const auto max = readProcFile(dir_ + "/nf_conntrack_max");
    if (!max) return std::unexpected(errnoError(errno, "read " + dir_ + "/nf_conntrack_max"));
    const auto c = parseUnsigned(*count), m = parseUnsigned(*max);
    if (!c || !m) return std::unexpected(makeError("conntrack: unexpected nf_conntrack_count/max text"));
    if (told_absent_) {
        spdlog::info("conntrack: table present now");
        told_absent_ = false;
    }
    s->available = true;
    s->count = *c;
    s->max = *m;
    if (auto st = readProcFile(stat_)) parseConntrackStat(*st, *s);
    b.snapshot().conntrack = std::move(s);
    return {};
}

Result<std::unique_ptr<L7Source>> L7Source::create(Options options, util::Scheduler* scheduler) {
    std::unique_ptr<L7Source> s(new L7Source(options.tracker));
    auto cap = ebpf::L7Capture::create(options.capture, [raw = s.get()](const ebpf::L7Message& m) {
        std::lock_guard lock(raw->mu_);
        raw->tracker_.feed(m);
    });
    if (!cap) return std::unexpected(cap.error());
    s->capture_ = std::move(*cap);
    if (options.capture.tls) {
        auto scan = [raw = s.get()] {
            auto n = raw->capture_->attachTlsLibraries();
            if (!n) spdlog::warn("l7: TLS libraries: {}", n.error().what());
            raw->tls_libraries_ = raw->capture_->tlsLibraries().size();
        };
        if (scheduler) {
            s->scheduler_ = scheduler;
            s->tls_task_ = scheduler->every("l7 tls libraries", std::chrono::seconds(10), scan);
        } else {
            scan();
        }
    }
    return s;
}

L7Source::~L7Source() {
    if (scheduler_ && tls_task_) scheduler_->cancel(*tls_task_);
    capture_.reset();
}

Result<void> L7Source::collect(SnapshotBuilder& b) {
    std::vector<l7::Request> spare;
    {
        std::lock_guard lock(spare_->mu);
        spare.swap(spare_->requests);
    }
    // At ~140k requests/s (nginx + wrk, both ends tracked) a fresh vector per collection
    // faulted in ~18k pages/s (an eighth of the agent's CPU); the storage is reused instead.
    auto sample = std::shared_ptr<L7Sample>(new L7Sample(), [pool = spare_](L7Sample* s) {
        std::vector<l7::Request> v = std::move(s->requests);
        delete s;
        v.clear();  // the requests go, their storage stays
        if (v.capacity() * sizeof(l7::Request) > kMaxSpareBytes) return;
        std::lock_guard lock(pool->mu);
        if (v.capacity() > pool->requests.capacity()) pool->requests.swap(v);
    });  // (the smaller vector is freed here, after the lock)
    {
        std::lock_guard lock(mu_);
        sample->requests = tracker_.take(std::move(spare));
        tracker_.expire(b.snapshot().monoNs());
        sample->dns_unanswered = tracker_.takeDnsUnanswered();
        sample->parse = tracker_.counters();
        sample->connections = tracker_.connections();
    }
    sample->tls_libraries = tls_libraries_.load();
    if (auto c = capture_->counters()) {
        last_kernel_ = *c;
    } else if (counter_errors_++ == 0) {
        spdlog::warn("l7: {}", c.error().what());
    }
    sample->kernel = last_kernel_;
    b.snapshot().l7 = std::move(sample);
    return {};
}

}  // namespace netprobe::collector
