// The topology stage (see topology.hpp).
#include <netprobe/analysis/topology.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/collector/flow_index.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/util/hash.hpp>

namespace netprobe::analysis {
namespace {

struct Key {
    util::Addr16 client{}, server{};
    std::uint16_t port = 0;
    std::uint8_t proto = 0;
    auto operator<=>(const Key&) const = default;
    bool operator==(const Key&) const = default;
};

// One direction of a 5-tuple.
struct Tuple {
    util::Addr16 src{}, dst{};
    std::uint16_t sport = 0, dport = 0;
    std::uint8_t proto = 0, family = 4;
    auto operator<=>(const Tuple&) const = default;
    bool operator==(const Tuple&) const = default;
};

struct TupleHash {
    std::size_t operator()(const Tuple& t) const noexcept {
        // word at a time (util/hash.hpp): a byte-wise FNV over the 38 bytes was ~8% of the
        // agent's samples under a random-port flood
        return util::mix64(util::hashAddr(util::hashAddr(0, t.src), t.dst),
                           std::uint64_t{t.sport} | std::uint64_t{t.dport} << 16 | std::uint64_t{t.proto} << 32 |
                               std::uint64_t{t.family} << 40);
    }
};
template <typename V>
using TupleMap = std::unordered_map<Tuple, V, TupleHash>;

struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
        return TupleHash{}(Tuple{k.client, k.server, 0, k.port, k.proto, 0});
    }
};

// A directed 5-tuple's packets in one collection, and when the kernel first saw it.
struct Counts {
    std::uint64_t bytes = 0, packets = 0, first_ns = 0;
};

// The collection's directed 5-tuples (their primary samples summed: an entry read, then
// removed), indexed by 5-tuple over the samples (a 4-byte slot each, no node per tuple).
class Directed {
public:
    struct Group {
        std::uint32_t sample;  // one of its samples (the 5-tuple's key)
        Counts n;
    };
    explicit Directed(std::span<const collector::FlowSample> samples) : samples_(samples), index_(samples.size()) {
        groups_.reserve(samples.size());
    }
    void add(std::uint32_t i) {
        const auto& f = samples_[i];
        std::uint32_t& g = index_.slot(f.key, KeyAt{this});
        const bool fresh = g == collector::FlowTupleIndex::npos;
        if (fresh) {
            g = static_cast<std::uint32_t>(groups_.size());
            groups_.push_back({i, Counts{0, 0, f.first_seen_ns}});
        }
        auto& c = groups_[g].n;
        if (!fresh && f.first_seen_ns && f.first_seen_ns < c.first_ns) c.first_ns = f.first_seen_ns;
        c.bytes += f.bytes;
        c.packets += f.packets;
    }
    [[nodiscard]] const std::vector<Group>& groups() const { return groups_; }
    [[nodiscard]] const flow_key& key(const Group& g) const { return samples_[g.sample].key; }
    [[nodiscard]] const Counts* find(const flow_key& k) const {
        const std::uint32_t g = index_.find(k, KeyAt{this});
        return g == collector::FlowTupleIndex::npos ? nullptr : &groups_[g].n;
    }

private:
    struct KeyAt {
        const Directed* d;
        const flow_key& operator()(std::uint32_t g) const { return d->samples_[d->groups_[g].sample].key; }
    };
    std::span<const collector::FlowSample> samples_;
    std::vector<Group> groups_;
    collector::FlowTupleIndex index_;
};

// A TCP connection by its canonical ends (client, server), both records' view of it.
struct ConnKey {
    util::Addr16 client{}, server{};
    std::uint16_t cport = 0, sport = 0;
    auto operator<=>(const ConnKey&) const = default;
};

util::Addr16 addr(const np_addr& a) {
    util::Addr16 out{};
    std::memcpy(out.data(), &a, 16);
    return out;
}

bool hasPorts(std::uint8_t proto) { return proto == 6 || proto == 17 || proto == 132; }

}  // namespace

struct Topology::State {
    TopologyOptions opts;
    std::shared_ptr<const Attribution> attribution;
    std::unordered_map<Key, std::shared_ptr<Conversation>, KeyHash> convs;
    struct ConnState {
        Key conv;
        std::uint32_t retrans_client = 0, retrans_server = 0;
        bool failed_counted = false;
        // the socket's cgroup was looked up (once per connection and end: both ends of a
        // connection on the node share this state)
        bool container_checked_client = false, container_checked_server = false;
        std::uint64_t seen_run = 0;
    };
    std::map<ConnKey, ConnState> conns;
    std::uint64_t run = 0;
    std::uint64_t overflow = 0, unoriented = 0;
    std::map<Key, std::pair<std::string, std::uint64_t>> pending_tls;  // -> (SNI, seen at)
    // The drop table's cumulative counts at the last read, by 5-tuple (deltas go to the
    // conversations); a tuple gone from the table is forgotten.
    using DropKey = std::tuple<util::Addr16, util::Addr16, std::uint16_t, std::uint16_t, std::uint8_t, std::uint32_t>;
    static void addDropReason(TopologySlot& sl, std::uint32_t reason, std::uint64_t n) {
        auto m = sl.drop_reasons ? std::make_shared<std::map<std::uint32_t, std::uint64_t>>(*sl.drop_reasons)
                                 : std::make_shared<std::map<std::uint32_t, std::uint64_t>>();
        (*m)[reason] += n;
        sl.drop_reasons = std::move(m);
    }
    std::map<DropKey, std::uint64_t> drops_seen;

    // An existing conversation, writable (copied first when a published view shares it).
    Conversation* existing(const Key& k) {
        auto it = convs.find(k);
        if (it == convs.end()) return nullptr;
        if (it->second.use_count() > 1) it->second = std::make_shared<Conversation>(*it->second);
        return it->second.get();
    }

    // The conversation, writable (copied first when a published view shares it); null
    // when the budget is spent.
    Conversation* get(const Key& k, std::uint8_t family, bool by_socket) {
        auto it = convs.find(k);
        if (it == convs.end()) {
            if (convs.size() >= opts.max_conversations) {
                ++overflow;
                return nullptr;
            }
            auto c = std::make_shared<Conversation>();
            c->client.ip = k.client;
            c->server.ip = k.server;
            c->client.family = c->server.family = family;
            c->port = k.port;
            c->ip_proto = k.proto;
            c->oriented_by_socket = by_socket;
            labels(*c);
            it = convs.emplace(k, std::move(c)).first;
        } else if (it->second.use_count() > 1) {
            it->second = std::make_shared<Conversation>(*it->second);
        }
        return it->second.get();
    }

    void labels(Conversation& c) const {
        if (!attribution) return;
        flow_key fk{};
        std::memcpy(&fk.src_ip, c.client.ip.data(), 16);
        std::memcpy(&fk.dst_ip, c.server.ip.data(), 16);
        fk.dst_port = c.port;
        fk.proto = c.ip_proto;
        fk.family = c.client.family;
        const auto l = attribution->flow(fk);
        c.client.ns = l.src_namespace;
        c.client.pod = l.src_pod;
        c.client.workload = l.src_workload;
        c.server.ns = l.dst_namespace;
        c.server.pod = l.dst_pod;
        c.server.workload = l.dst_workload;
        c.server.service = l.dst_service;
        c.client.mesh = l.src_mesh;
        c.server.mesh = l.dst_mesh;
    }

    static TopologySlot& slot(Conversation& c, std::int64_t id) {
        if (c.slots.empty() || c.slots.back().id < id) {
            c.slots.push_back(TopologySlot{.id = id});
            return c.slots.back();
        }
        auto it = std::lower_bound(c.slots.begin(), c.slots.end(), id,
                                   [](const TopologySlot& s, std::int64_t x) { return s.id < x; });
        if (it == c.slots.end() || it->id != id) it = c.slots.insert(it, TopologySlot{.id = id});
        return *it;
    }

    // The conversation a directed 5-tuple belongs to: an existing one, the socket's
    // orientation, else the port heuristic.
    // first_ns: when the kernel first saw each directed 5-tuple of this collection (the
    // client's first packet - the SYN - comes before the server's answer).
    // weak (when given): set when only the ports' order decided (no conversation, socket,
    // first packet or ephemeral port did).
    Key orient(const Tuple& t, const flow_key& tk, const TupleMap<bool>& sockets, const Directed& first_ns,
               bool& by_socket, bool* weak = nullptr) const {
        const Key fwd{t.src, t.dst, t.dport, t.proto}, rev{t.dst, t.src, t.sport, t.proto};
        by_socket = false;
        if (convs.contains(fwd)) return fwd;
        if (convs.contains(rev)) return rev;
        // sockets: (local ..., remote ...) as a tuple from the local end -> active?
        if (auto it = sockets.find(t); it != sockets.end()) {
            by_socket = true;
            return it->second ? fwd : rev;  // the source end's socket connected: it is the client
        }
        const Tuple back{t.dst, t.src, t.dport, t.sport, t.proto, t.family};
        if (auto it = sockets.find(back); it != sockets.end()) {
            by_socket = true;
            return it->second ? rev : fwd;
        }
        if (const Counts *a = first_ns.find(tk), *b = first_ns.find(collector::reversedFlowTuple(tk)); a && b) {
            if (a->first_ns < b->first_ns) return fwd;
            if (b->first_ns < a->first_ns) return rev;
        }
        // A kernel aggregate of connection attempts or refusals: the end with port 0 initiated.
        if (const int a = np_flow_aggregate_initiator(t.proto, t.sport, t.dport); a != 0) return a > 0 ? fwd : rev;
        // An ephemeral port (Linux's default range) at one end only: the other end serves.
        const auto ephemeral = [](std::uint16_t p) { return p >= 32768 && p <= 60999; };
        if (ephemeral(t.sport) != ephemeral(t.dport)) return ephemeral(t.sport) ? fwd : rev;
        if (weak) *weak = true;
        if (t.sport < t.dport) return rev;
        return fwd;
    }

    // A definitive orientation (a socket's connect()/accept(), an L7 parser's request) for a
    // conversation that a heuristic may have oriented the other way (key `wrong`: client and
    // server swapped, the port the real client's): its figures move to `right`.
    void reorient(const Key& right, const Key& wrong) {
        auto w = convs.find(wrong);
        if (w == convs.end() || w->second->oriented_by_socket) return;
        Conversation moved = *w->second;
        convs.erase(w);
        std::swap(moved.client, moved.server);
        moved.port = right.port;
        moved.oriented_by_socket = true;
        for (auto& sl : moved.slots) {
            std::swap(sl.bytes_out, sl.bytes_in);
            std::swap(sl.packets_out, sl.packets_in);
            std::swap(sl.retrans_client, sl.retrans_server);
            std::swap(sl.drops_to_server, sl.drops_to_client);
        }
        auto r = convs.find(right);
        if (r == convs.end()) {
            convs.emplace(right, std::make_shared<Conversation>(std::move(moved)));
            return;
        }
        if (r->second.use_count() > 1) r->second = std::make_shared<Conversation>(*r->second);
        Conversation& c = *r->second;
        for (const auto& sl : moved.slots) {
            auto& d = slot(c, sl.id);
            d.bytes_out += sl.bytes_out;
            d.bytes_in += sl.bytes_in;
            d.packets_out += sl.packets_out;
            d.packets_in += sl.packets_in;
            d.opened += sl.opened;
            d.failed += sl.failed;
            d.retransmits += sl.retransmits;
            d.retrans_client += sl.retrans_client;
            d.retrans_server += sl.retrans_server;
            d.drops_to_server += sl.drops_to_server;
            d.drops_to_client += sl.drops_to_client;
            if (sl.drop_reasons)
                for (const auto& [reason, n] : *sl.drop_reasons) State::addDropReason(d, reason, n);
            d.rtt_us_sum += sl.rtt_us_sum;
            d.rtt_samples += sl.rtt_samples;
        }
        c.first_seen_ns = std::min(c.first_seen_ns ? c.first_seen_ns : moved.first_seen_ns, moved.first_seen_ns);
        c.last_seen_ns = std::max(c.last_seen_ns, moved.last_seen_ns);
    }
};

Topology::Topology(TopologyOptions options, std::shared_ptr<const Attribution> attribution)
    : s_(std::make_unique<State>()) {
    s_->opts = options;
    if (s_->opts.slot.count() <= 0) s_->opts.slot = std::chrono::seconds(10);
    if (s_->opts.slots == 0) s_->opts.slots = 1;
    s_->attribution = std::move(attribution);
}

Topology::~Topology() = default;

void Topology::run(const collector::Snapshot& snap, Views& views) {
    State& s = *s_;
    ++s.run;
    const std::uint64_t now_ns = snap.monoNs();
    const auto slot_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(s.opts.slot).count());
    const auto now_slot = static_cast<std::int64_t>(now_ns / slot_ns);

    // The local sockets' orientation: (local, remote) -> connected (true) / accepted.
    TupleMap<bool> sockets;
    const auto* stack = snap.stack.get();
    if (stack) {
        for (const auto& c : stack->connections) {
            if (c.origin != NP_CONN_ACTIVE && c.origin != NP_CONN_PASSIVE) continue;
            sockets[Tuple{c.src_ip, c.dst_ip, c.src_port, c.dst_port, 6, c.family}] = c.origin == NP_CONN_ACTIVE;
        }
    }

    // Flow samples: each directed 5-tuple counted at one place, the kernel entry the
    // datapath source marks primary (the first created of the 5-tuple's live entries) - a
    // packet crossing two monitored interfaces is in two kernel entries, read at slightly
    // different moments, so neither their sum nor the larger of the two per collection
    // would count it once. (An inner flow of tunnel packets is another place than the
    // plain flow there.)
    Directed directed(snap.flows);
    for (std::uint32_t i = 0; i < snap.flows.size(); ++i) {
        const auto& f = snap.flows[i];
        if (!hasPorts(f.key.proto)) {
            ++s.unoriented;
            continue;
        }
        if (f.primary) directed.add(i);
    }
    // The 5-tuples whose orientation only the ports' order would decide go last: by then
    // a conversation of the same ends that something else oriented (a client port in the
    // ephemeral range, a socket) takes them, whatever order the samples came in.
    std::vector<const Directed::Group*> weak;
    auto count = [&](const Directed::Group& g, bool second) {
        const Counts& n = g.n;
        if (n.packets == 0) return;
        const flow_key& fk = directed.key(g);
        const Tuple t{addr(fk.src_ip), addr(fk.dst_ip), fk.src_port, fk.dst_port, fk.proto, fk.family};
        bool by_socket = false, by_ports = false;
        const Key k = s.orient(t, fk, sockets, directed, by_socket, second ? nullptr : &by_ports);
        if (by_ports) {
            weak.push_back(&g);
            return;
        }
        Conversation* c = s.get(k, t.family, by_socket);
        if (!c) return;
        auto& sl = State::slot(*c, now_slot);
        if (t.src == k.client && t.dst == k.server && t.dport == k.port) {
            sl.bytes_out += n.bytes;
            sl.packets_out += n.packets;
        } else {
            sl.bytes_in += n.bytes;
            sl.packets_in += n.packets;
        }
        if (c->first_seen_ns == 0) c->first_seen_ns = now_ns;
        c->last_seen_ns = now_ns;
    };
    for (const auto& g : directed.groups()) count(g, false);
    for (const auto* g : weak) count(*g, true);

    // TLS: a ClientHello seen at TC names its conversation's bytes as TLS (kept until the
    // conversation shows up, for a while: the hello and the flow sample may come apart).
    if (const auto* names = snap.names.get()) {
        for (const auto& o : names->observations) {
            if (o.kind != collector::NameObservation::Kind::TlsSni) continue;
            if (s.pending_tls.size() < 4096) s.pending_tls[Key{o.client, o.server, o.server_port, 6}] = {o.name, now_ns};
        }
    }
    for (auto it = s.pending_tls.begin(); it != s.pending_tls.end();) {
        auto cit = s.convs.find(it->first);
        if (cit != s.convs.end()) {
            Conversation* c = s.get(it->first, cit->second->client.family, cit->second->oriented_by_socket);
            if (c) {
                c->tls = true;
                if (c->sni.empty()) c->sni = it->second.first;
            }
            it = s.pending_tls.erase(it);
        } else if (now_ns - it->second.second > 60'000'000'000ull) {
            it = s.pending_tls.erase(it);
        } else {
            ++it;
        }
    }

    // Connections: opened, failed, retransmits, RTT; once per connection even when both
    // of its ends are on this node.
    if (stack) {
        for (const auto& r : stack->connections) {
            if (r.origin != NP_CONN_ACTIVE && r.origin != NP_CONN_PASSIVE) continue;
            const bool active = r.origin == NP_CONN_ACTIVE;
            const ConnKey ck = active ? ConnKey{r.src_ip, r.dst_ip, r.src_port, r.dst_port}
                                      : ConnKey{r.dst_ip, r.src_ip, r.dst_port, r.src_port};
            const Key k{ck.client, ck.server, ck.sport, 6};
            s.reorient(k, Key{ck.server, ck.client, ck.cport, 6});
            auto [it, fresh] = s.conns.try_emplace(ck);
            auto& cs = it->second;
            Conversation* c = s.get(fresh ? k : cs.conv, r.family, true);
            if (!c) {
                s.conns.erase(it);
                continue;
            }
            if (fresh) cs.conv = k;
            auto& sl = State::slot(*c, now_slot);
            if (fresh) ++sl.opened;
            if (r.failed && !cs.failed_counted) {
                ++sl.failed;
                cs.failed_counted = true;
            }
            auto& last = active ? cs.retrans_client : cs.retrans_server;
            if (r.retransmits > last) {
                sl.retransmits += r.retransmits - last;
                (active ? sl.retrans_client : sl.retrans_server) += r.retransmits - last;
            }
            last = std::max(last, r.retransmits);
            if (r.open && r.srtt_us > 0) {  // each end's own estimate
                sl.rtt_us_sum += r.srtt_us;
                ++sl.rtt_samples;
            }
            cs.seen_run = s.run;
            if (!r.comm.empty() && active && c->client.process.empty()) c->client.process = r.comm;
            if (!r.comm.empty() && !active && c->server.process.empty()) c->server.process = r.comm;
            // The container of the socket's cgroup (without Kubernetes the unit a workload is):
            // looked up once per connection (an in-memory read of the attribution's cgroup map).
            bool& checked = active ? cs.container_checked_client : cs.container_checked_server;
            if (s.attribution && r.cgroup_id && !checked) {
                if (auto cl = s.attribution->container(r.cgroup_id)) {
                    checked = true;
                    auto& end = active ? c->client : c->server;
                    if (!cl->container_id.empty() && end.container.empty()) end.container = cl->container_id.substr(0, 12);
                }
            }
            if (c->first_seen_ns == 0) c->first_seen_ns = now_ns;
            c->last_seen_ns = now_ns;
        }
        std::erase_if(s.conns, [&](const auto& e) { return e.second.seen_run != s.run; });

        // Drops by 5-tuple: what each conversation's packets lost in this kernel, by
        // direction (a packet from the client to the server, or back).
        std::map<State::DropKey, std::uint64_t> seen;
        for (const auto& d : stack->drop_flows) {
            const State::DropKey dk{d.src, d.dst, d.sport, d.dport, d.proto, d.reason};
            auto prev = s.drops_seen.find(dk);
            const std::uint64_t before = prev == s.drops_seen.end() || prev->second > d.packets ? 0 : prev->second;
            seen.emplace(dk, d.packets);
            const std::uint64_t n = d.packets - before;
            if (!n || !hasPorts(d.proto)) continue;
            if (Conversation* c = s.existing(Key{d.src, d.dst, d.dport, d.proto})) {
                auto& sl = State::slot(*c, now_slot);
                sl.drops_to_server += static_cast<std::uint32_t>(n);
                State::addDropReason(sl, d.reason, n);
            } else if (Conversation* r = s.existing(Key{d.dst, d.src, d.sport, d.proto})) {
                auto& sl = State::slot(*r, now_slot);
                sl.drops_to_client += static_cast<std::uint32_t>(n);
                State::addDropReason(sl, d.reason, n);
            }
        }
        s.drops_seen = std::move(seen);
    }

    // Requests, at the end that captured them. A slot's figures are shared with published
    // views, so the first request of a run copies them; the run's later requests of that
    // end update the copy made in this run (fresh: no view holds it yet) - one copy per
    // conversation end and run, not per request.
    if (snap.l7) {
        // (holding them: a copy dropped by a merge of conversations keeps its address to itself)
        std::unordered_map<const TopologyL7*, std::shared_ptr<TopologyL7>> fresh;
        for (const auto& r : snap.l7->requests) {
            Key k{r.client, r.server, r.server_port, 6};
            if (r.protocol == "dns") {
                const Key udp{r.client, r.server, r.server_port, 17};
                if (s.convs.contains(udp) || !s.convs.contains(k)) k = udp;
            }
            s.reorient(k, Key{r.server, r.client, r.client_port, k.proto});
            Conversation* c = s.get(k, r.family, true);
            if (!c) continue;
            auto& sl = State::slot(*c, now_slot);
            auto& side = r.side == netprobe::l7::Side::Server ? sl.l7_server : sl.l7_client;
            TopologyL7* l = nullptr;
            if (side)
                if (auto f = fresh.find(side.get()); f != fresh.end()) l = f->second.get();
            if (!l) {
                auto copy = side ? std::make_shared<TopologyL7>(*side) : std::make_shared<TopologyL7>();
                l = copy.get();
                fresh.emplace(l, copy);
                side = std::move(copy);
            }
            if (l->protocol != r.protocol) l->protocol = r.protocol;
            ++l->requests;
            l->errors += l7::isError(r);
            std::size_t b = 0;
            while (b < kTopologyLatencyBuckets.size() && r.duration_seconds > kTopologyLatencyBuckets[b]) ++b;
            ++l->latency[b];
            if (c->first_seen_ns == 0) c->first_seen_ns = now_ns;
            c->last_seen_ns = now_ns;
        }
    }

    // Forget what left the window; refresh labels now and then (pods come and go).
    const std::int64_t oldest = now_slot - static_cast<std::int64_t>(s.opts.slots) + 1;
    const bool relabel = s.attribution && s.run % 12 == 0;
    for (auto it = s.convs.begin(); it != s.convs.end();) {
        auto& c = it->second;
        if (c->slots.empty() || c->slots.back().id < oldest) {
            it = s.convs.erase(it);
            continue;
        }
        if (c->slots.front().id < oldest || relabel) {
            if (c.use_count() > 1) c = std::make_shared<Conversation>(*c);
            std::erase_if(c->slots, [&](const TopologySlot& sl) { return sl.id < oldest; });
            if (relabel) s.labels(*c);
        }
        ++it;
    }

    auto v = std::make_shared<TopologyView>();
    v->slot = s.opts.slot;
    v->slots = s.opts.slots;
    v->now_slot = now_slot;
    v->now_ns = now_ns;
    v->overflow = s.overflow;
    v->samples_unoriented = s.unoriented;
    if (s.opts.subnets) v->subnets = s.opts.subnets();
    v->groups = s.opts.groups;
    v->conversations.reserve(s.convs.size());
    for (const auto& [_, c] : s.convs) v->conversations.push_back(c);
    views.topology = std::move(v);
}

std::map<TcpConversationKey, const Conversation*> tcpConversations(const TopologyView& v) {
    std::map<TcpConversationKey, const Conversation*> m;
    for (const auto& c : v.conversations)
        if (c->ip_proto == 6) m.emplace(TcpConversationKey{c->client.ip, c->server.ip, c->port}, c.get());
    return m;
}

std::size_t windowSlots(const TopologyView& v, std::size_t seconds) {
    const auto slot_s = static_cast<std::size_t>(std::max<std::int64_t>(v.slot.count(), 1));
    return std::clamp<std::size_t>((seconds + slot_s - 1) / slot_s, 1, std::max<std::size_t>(v.slots, 1));
}

ConversationTotals totals(const Conversation& c, const TopologyView& v, std::size_t window_slots) {
    ConversationTotals t;
    const std::int64_t oldest = v.now_slot - static_cast<std::int64_t>(window_slots) + 1;
    std::uint64_t rtt_sum = 0, rtt_n = 0;
    TopologyL7 server, client;
    for (const auto& sl : c.slots) {
        if (sl.id < oldest) continue;
        t.bytes_out += sl.bytes_out;
        t.packets_out += sl.packets_out;
        t.bytes_in += sl.bytes_in;
        t.packets_in += sl.packets_in;
        t.opened += sl.opened;
        t.failed += sl.failed;
        t.retransmits += sl.retransmits;
        t.retrans_client += sl.retrans_client;
        t.retrans_server += sl.retrans_server;
        t.drops_to_server += sl.drops_to_server;
        t.drops_to_client += sl.drops_to_client;
        if (sl.drop_reasons)
            for (const auto& [reason, n] : *sl.drop_reasons) t.drop_reasons[reason] += n;
        rtt_sum += sl.rtt_us_sum;
        rtt_n += sl.rtt_samples;
        for (auto [src, dst] : {std::pair{sl.l7_server.get(), &server}, std::pair{sl.l7_client.get(), &client}}) {
            if (!src) continue;
            dst->protocol = src->protocol;
            dst->requests += src->requests;
            dst->errors += src->errors;
            for (std::size_t i = 0; i < dst->latency.size(); ++i) dst->latency[i] += src->latency[i];
        }
    }
    if (rtt_n) t.rtt_ms = static_cast<double>(rtt_sum) / static_cast<double>(rtt_n) / 1000.0;
    // The server's end when it was captured (both ends on the node: the same requests twice)
    const TopologyL7& l = server.requests ? server : client;
    if (l.requests) {
        t.l7 = true;
        t.l7_protocol = l.protocol;
        t.requests = l.requests;
        t.errors = l.errors;
        for (std::size_t i = 0; i < l.latency.size(); ++i) t.latency[i] = l.latency[i];
    }
    return t;
}

double latencyQuantile(const std::array<std::uint64_t, kTopologyLatencyBuckets.size() + 1>& h, double q) {
    std::uint64_t n = 0;
    for (auto x : h) n += x;
    if (n == 0) return 0;
    const double rank = q * static_cast<double>(n);
    double seen = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
        if (h[i] == 0) continue;
        if (seen + static_cast<double>(h[i]) >= rank) {
            const double lo = i == 0 ? 0 : kTopologyLatencyBuckets[i - 1];
            if (i == kTopologyLatencyBuckets.size()) return lo;  // +Inf bucket: its lower bound
            const double hi = kTopologyLatencyBuckets[i];
            return lo + (hi - lo) * std::clamp((rank - seen) / static_cast<double>(h[i]), 0.0, 1.0);
        }
        seen += static_cast<double>(h[i]);
    }
    return kTopologyLatencyBuckets.back();
}

std::string segmentName(const std::string& segment) {
    if (segment.starts_with("ns:")) return segment.substr(3);
    if (segment.starts_with("subnet:")) return segment.substr(7);
    if (segment.starts_with("cluster:")) return segment.substr(8) + " and peers";
    return segment;
}

std::vector<std::string> segmentGraph(const SegmentInput& in) {
    const std::size_t n = in.nodes.size();
    std::vector<std::vector<std::pair<std::size_t, double>>> adj(n);
    std::vector<double> volume(n, 0);
    for (const auto& e : in.edges) {
        if (e.a >= n || e.b >= n || e.a == e.b || e.weight <= 0) continue;
        adj[e.a].emplace_back(e.b, e.weight);
        adj[e.b].emplace_back(e.a, e.weight);
        volume[e.a] += e.weight;
        volume[e.b] += e.weight;
    }
    // Labels: node indexes; nodes with a namespace (else a local subnet) are fixed to
    // their segment's first node.
    std::vector<std::size_t> label(n);
    std::vector<bool> fixed(n, false);
    std::vector<std::string> fixed_name(n);
    std::map<std::string, std::size_t> seg_first;
    for (std::size_t i = 0; i < n; ++i) {
        label[i] = i;
        const std::string ns = i < in.ns.size() ? in.ns[i] : std::string();
        const std::string net = i < in.subnet.size() ? in.subnet[i] : std::string();
        if (!ns.empty()) fixed_name[i] = "ns:" + ns;
        else if (!net.empty()) fixed_name[i] = "subnet:" + net;
        else continue;
        label[i] = seg_first.try_emplace(fixed_name[i], i).first->second;
        fixed[i] = true;
    }
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return in.nodes[x] < in.nodes[y]; });
    std::map<std::size_t, double> score;
    for (int round = 0; round < 20; ++round) {
        bool changed = false;
        for (std::size_t i : order) {
            if (fixed[i] || adj[i].empty()) continue;
            score.clear();
            for (const auto& [j, w] : adj[i])
                if (!fixed[j]) score[label[j]] += w;  // namespaces are not joined by their clients
            if (score.empty()) continue;
            std::size_t best = label[i];
            double best_w = score.contains(best) ? score[best] : -1;
            for (const auto& [l, w] : score)
                if (w > best_w || (w == best_w && l < best)) {
                    best = l;
                    best_w = w;
                }
            if (best != label[i]) {
                label[i] = best;
                changed = true;
            }
        }
        if (!changed) break;
    }
    // Name each community after its busiest member.
    std::map<std::size_t, std::size_t> top;  // label -> member with the most volume
    for (std::size_t i = 0; i < n; ++i) {
        if (fixed[i]) continue;
        auto [it, fresh] = top.try_emplace(label[i], i);
        if (!fresh && (volume[i] > volume[it->second] ||
                       (volume[i] == volume[it->second] && in.nodes[i] < in.nodes[it->second])))
            it->second = i;
    }
    std::vector<std::string> out(n);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = fixed[i] ? fixed_name[i] : "cluster:" + in.nodes[top[label[i]]];
    return out;
}

bool specialAddress(const util::Addr16& a) {
    if (util::isV4Mapped(a)) return a[12] == 0 || a[12] == 127 || a[12] >= 224 || (a[12] == 169 && a[13] == 254);
    const util::Addr16 zero{};
    util::Addr16 lo{};
    lo[15] = 1;
    return a == zero || a == lo || a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
}

std::optional<LocalSubnet> localSubnet(const util::Addr16& addr, unsigned family_len) {
    const bool v4 = util::isV4Mapped(addr);
    const unsigned max = v4 ? 32 : 128;
    if (family_len == 0 || family_len >= max) return std::nullopt;  // default route, host prefix
    if (specialAddress(addr)) return std::nullopt;
    LocalSubnet s;
    s.bits = v4 ? 96 + family_len : family_len;
    s.network = util::maskAddr(addr, s.bits);
    s.cidr = util::formatAddr(s.network) + "/" + std::to_string(family_len);
    return s;
}

LocalSubnets normalizeSubnets(std::vector<LocalSubnet> subnets) {
    std::sort(subnets.begin(), subnets.end(), [](const LocalSubnet& a, const LocalSubnet& b) {
        return a.bits != b.bits ? a.bits > b.bits : a.network < b.network;
    });
    subnets.erase(std::unique(subnets.begin(), subnets.end(),
                              [](const LocalSubnet& a, const LocalSubnet& b) { return a.bits == b.bits && a.network == b.network; }),
                  subnets.end());
    return subnets;
}

const LocalSubnet* subnetOf(const LocalSubnets& subnets, const util::Addr16& addr) {
    for (const auto& s : subnets)  // longest first: the first that holds addr
        if (util::maskAddr(addr, s.bits) == s.network) return &s;
    return nullptr;
}

std::expected<CidrGroup, std::string> parseCidrGroup(std::string_view text) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) return std::unexpected("expected NAME=CIDR[,CIDR...]");
    CidrGroup g;
    g.name = std::string(text.substr(0, eq));
    if (g.name.empty() || g.name.size() > 63) return std::unexpected("a group name of 1 to 63 characters");
    for (char c : g.name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
            return std::unexpected("group name \"" + g.name + "\": letters, digits, '-', '_' and '.' only");
    std::string_view rest = text.substr(eq + 1);
    if (rest.empty()) return std::unexpected("group " + g.name + ": no CIDR");
    for (bool more = true; more;) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        more = comma != std::string_view::npos;
        if (more) rest = rest.substr(comma + 1);
        if (item.empty()) return std::unexpected("group " + g.name + ": an empty CIDR");
        const auto slash = item.find('/');
        if (slash == std::string_view::npos) return std::unexpected("\"" + std::string(item) + "\": expected ADDRESS/LENGTH");
        auto addr = util::parseAddr(std::string(item.substr(0, slash)));
        if (!addr) return std::unexpected("\"" + std::string(item) + "\": not an IPv4 or IPv6 address");
        const bool v4 = util::isV4Mapped(*addr) && item.substr(0, slash).find(':') == std::string_view::npos;
        unsigned len = 0;
        const std::string_view ls = item.substr(slash + 1);
        if (ls.empty() || ls.size() > 3 || !std::all_of(ls.begin(), ls.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return std::unexpected("\"" + std::string(item) + "\": bad prefix length");
        len = static_cast<unsigned>(std::stoul(std::string(ls)));
        if (len > (v4 ? 32u : 128u)) return std::unexpected("\"" + std::string(item) + "\": prefix length too long");
        LocalSubnet p;
        p.bits = v4 ? 96 + len : len;
        p.network = util::maskAddr(*addr, p.bits);
        p.cidr = util::formatAddr(p.network) + "/" + std::to_string(len);
        g.prefixes.push_back(std::move(p));
    }
    g.prefixes = normalizeSubnets(std::move(g.prefixes));
    return g;
}

const CidrGroup* groupOf(const CidrGroups& groups, const util::Addr16& addr) {
    const CidrGroup* best = nullptr;
    unsigned best_bits = 0;
    for (const auto& g : groups) {
        const LocalSubnet* p = subnetOf(g.prefixes, addr);
        if (p && (!best || p->bits > best_bits)) {
            best = &g;
            best_bits = p->bits;
        }
    }
    return best;
}

}  // namespace netprobe::analysis
