#include "netprobe/collector/snapshot.hpp"

#include "netprobe/collector/source.hpp"

#include <algorithm>
#include <array>
#include <bit>

namespace netprobe::collector {

using HostCounters = std::array<std::uint64_t, 9>;
static_assert(sizeof(np_host_stats) == sizeof(HostCounters), "np_host_stats: nine __u64 counters");

void addHostStats(np_host_stats& to, const np_host_stats& x) {
    auto a = std::bit_cast<HostCounters>(to);
    const auto b = std::bit_cast<HostCounters>(x);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
    to = std::bit_cast<np_host_stats>(a);
}

np_host_stats hostStatsSince(const np_host_stats& cur, const np_host_stats& prev) {
    auto c = std::bit_cast<HostCounters>(cur);
    const auto p = std::bit_cast<HostCounters>(prev);
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = c[i] >= p[i] ? c[i] - p[i] : c[i];
    return std::bit_cast<np_host_stats>(c);
}

std::uint64_t Snapshot::monoNs() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(mono.time_since_epoch()).count());
}

WallTime Snapshot::wallOf(std::uint64_t mono_ns) const {
    if (mono_ns == 0) return {};
    const auto age = std::chrono::nanoseconds(static_cast<std::int64_t>(monoNs()) - static_cast<std::int64_t>(mono_ns));
    return std::chrono::time_point_cast<WallTime::duration>(taken_at - age);
}

namespace {
// Snapshot's members, in order: a member added to Snapshot makes the sizes differ, so
// it is not forgotten in withoutFlowSamples() (add it here and there).
struct SnapshotMembers {
    decltype(Snapshot::taken_at) taken_at;
    decltype(Snapshot::mono) mono;
    decltype(Snapshot::interval_seconds) interval_seconds;
    decltype(Snapshot::sequence) sequence;
    decltype(Snapshot::interfaces) interfaces;
    decltype(Snapshot::flows) flows;
    decltype(Snapshot::handshakes) handshakes;
    decltype(Snapshot::udp_timings) udp_timings;
    decltype(Snapshot::protocols) protocols;
    decltype(Snapshot::malformed) malformed;
    decltype(Snapshot::map_errors) map_errors;
    decltype(Snapshot::icmp) icmp;
    decltype(Snapshot::overlay) overlay;
    decltype(Snapshot::kernel_flows) kernel_flows;
    decltype(Snapshot::device_reset_failures) device_reset_failures;
    decltype(Snapshot::stack) stack;
    decltype(Snapshot::cgroup_traffic) cgroup_traffic;
    decltype(Snapshot::netstat) netstat;
    decltype(Snapshot::full_listeners) full_listeners;
    decltype(Snapshot::links) links;
    decltype(Snapshot::link_counters) link_counters;
    decltype(Snapshot::conntrack) conntrack;
    decltype(Snapshot::security) security;
    decltype(Snapshot::intel) intel;
    decltype(Snapshot::l7) l7;
    decltype(Snapshot::names) names;
    decltype(Snapshot::trace) trace;
    decltype(Snapshot::sources) sources;
    decltype(Snapshot::collect_duration_seconds) collect_duration_seconds;
    decltype(Snapshot::collect_errors_total) collect_errors_total;
};
}  // namespace

const ebpf::LinkCounters* LinkCountersSample::find(std::uint32_t ifindex) const {
    auto it = std::lower_bound(links.begin(), links.end(), ifindex,
                               [](const ebpf::LinkCounters& l, std::uint32_t i) { return l.ifindex < i; });
    return it != links.end() && it->ifindex == ifindex ? &*it : nullptr;
}

bool Snapshot::hasStageInputs() const {
    return !flows.empty() || (security && !security->records.empty()) || (l7 && !l7->requests.empty()) ||
           (names && !names->observations.empty());
}

std::shared_ptr<const Snapshot> Snapshot::withoutFlowSamples() const {
    static_assert(sizeof(Snapshot) == sizeof(SnapshotMembers), "Snapshot has a new member: copy it below");
    auto c = std::make_shared<Snapshot>();
    c->taken_at = taken_at;
    c->mono = mono;
    c->interval_seconds = interval_seconds;
    c->sequence = sequence;
    c->interfaces = interfaces;
    c->protocols = protocols;
    c->malformed = malformed;
    c->map_errors = map_errors;
    c->icmp = icmp;
    c->overlay = overlay;
    c->kernel_flows = kernel_flows;
    c->device_reset_failures = device_reset_failures;
    c->stack = stack;
    c->cgroup_traffic = cgroup_traffic;
    c->netstat = netstat;
    c->full_listeners = full_listeners;
    c->links = links;
    c->link_counters = link_counters;
    c->conntrack = conntrack;
    if (security) {  // the counters: the ring records are the security stage's input
        auto sec = std::make_shared<SecuritySample>();
        sec->records_total = security->records_total;
        sec->records_dropped = security->records_dropped;
        sec->hosts = security->hosts;
        sec->seconds = security->seconds;
        sec->host_read_errors = security->host_read_errors;
        c->security = std::move(sec);
    }
    c->intel = intel;
    if (l7) {
        auto counters = std::make_shared<L7Sample>();
        counters->kernel = l7->kernel;
        counters->parse = l7->parse;
        counters->connections = l7->connections;
        counters->tls_libraries = l7->tls_libraries;
        c->l7 = std::move(counters);
    }
    if (names) {  // the counters: the observations are the stages' input
        auto counters = std::make_shared<NameSample>();
        counters->counters = names->counters;
        c->names = std::move(counters);
    }
    c->trace = trace;
    c->sources = sources;
    c->collect_duration_seconds = collect_duration_seconds;
    c->collect_errors_total = collect_errors_total;
    return c;
}

SnapshotBuilder::SnapshotBuilder(std::uint64_t sequence, MonoTime mono, WallTime wall, double interval_seconds)
    : snap_(std::make_shared<Snapshot>()) {
    snap_->sequence = sequence;
    snap_->mono = mono;
    snap_->taken_at = wall;
    snap_->interval_seconds = interval_seconds;
}

}  // namespace netprobe::collector
