#include "netprobe/analysis/diagnosis.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>

#include <netprobe/analysis/anomaly/stage.hpp>
#include <netprobe/analysis/bottlenecks.hpp>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/forecast/stage.hpp>
#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

namespace {

std::uint64_t since(std::uint64_t cur, std::uint64_t prev) { return cur >= prev ? cur - prev : cur; }

std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, v == static_cast<double>(static_cast<std::uint64_t>(v)) ? "%.0f" : "%.3g", v);
    return b;
}

int rank(const std::string& severity) { return severity == "critical" ? 0 : severity == "warning" ? 1 : 2; }

}  // namespace

DropAdvice dropAdvice(const std::string& r) {
    // Reasons that are part of normal operation (a closed socket's queue freed, packets for
    // other hosts on a shared segment, duplicate TCP data after a retransmission).
    static const std::map<std::string, DropAdvice> table = {
        {"NOT_SPECIFIED", {"", "", "", {}, true}},
        {"SOCKET_CLOSE", {"", "", "", {}, true}},
        {"OTHERHOST", {"", "", "", {}, true}},
        {"TCP_OLD_DATA", {"", "", "", {}, true}},
        {"TCP_CLOSE", {"", "", "", {}, true}},
        {"QUEUE_PURGE", {"", "", "", {}, true}},
        {"UNIX_DISCONNECT", {"", "", "", {}, true}},
        {"TCP_OFOMERGE", {"", "", "", {}, true}},
        {"TCP_LISTEN_OVERFLOW",
         {"Listen queue overflow: connections dropped because the accept queue is full", "critical",
          "A server does not accept() fast enough for its connection rate, or its listen backlog is too small "
          "(listen(fd, backlog) is capped by net.core.somaxconn).",
          {"ss -ltn   # Recv-Q at Send-Q on the listening socket is a full queue",
           "sysctl -w net.core.somaxconn=4096 and net.ipv4.tcp_max_syn_backlog=4096",
           "raise the application's listen backlog (nginx: listen ... backlog=4096) or add workers"}}},
        {"PKT_TOO_BIG",
         {"Packets larger than the path MTU dropped", "critical",
          "A packet exceeded the MTU of the route or device and could not be fragmented (DF set, or IPv6): a "
          "mismatched MTU on a veth/tunnel or an overlay without MSS clamping.",
          {"ip link show   # compare the MTUs along the path (veth, bridge, vxlan, uplink)",
           "ip link set dev IFACE mtu 1450   # match the overlay's MTU on the pod side",
           "nft add rule inet filter forward tcp flags syn tcp option maxseg size set rt mtu   # MSS clamping"}}},
        {"NETFILTER_DROP",
         {"Packets dropped by a firewall rule", "warning",
          "An nftables/iptables rule (or a NetworkPolicy implemented with it) drops this traffic.",
          {"nft list ruleset   # rules with a drop verdict and their counters",
           "iptables-save -c | grep -E 'DROP|REJECT'",
           "kubectl get networkpolicy -A   # if the node runs a policy-enforcing CNI"}}},
        {"NO_SOCKET",
         {"Packets to ports nobody listens on", "warning",
          "TCP segments or UDP datagrams arrived for a port without a socket: a service that is down or not yet "
          "listening, clients using the wrong port, or a scan.",
          {"ss -ltnu   # what listens on this host", "netprobe top ports; netprobe events --type port_scan"}}},
        {"SOCKET_RCVBUFF",
         {"Socket receive buffers full", "critical",
          "A receiver does not read fast enough: datagrams (or TCP data beyond the buffer) are dropped.",
          {"sysctl -w net.core.rmem_max=8388608 net.core.rmem_default=1048576",
           "raise SO_RCVBUF in the application, or read faster (more threads, recvmmsg)"}}},
        {"SOCKET_BACKLOG",
         {"Socket backlog full", "warning",
          "Packets for a socket owned by a busy process overflowed its backlog.",
          {"sysctl -w net.core.netdev_max_backlog=16384", "check the owning process's CPU (top -H)"}}},
        {"PROTO_MEM",
         {"Protocol memory exhausted", "critical",
          "TCP/UDP memory reached net.ipv4.tcp_mem/udp_mem pressure limits.",
          {"cat /proc/net/sockstat", "sysctl net.ipv4.tcp_mem net.ipv4.udp_mem   # raise with care"}}},
        {"QDISC_DROP",
         {"Queueing discipline dropped packets", "warning",
          "An egress queue is full: more traffic than the link or a shaper allows.",
          {"tc -s qdisc show dev IFACE", "raise the queue limit or the shaper's rate; find the sender: netprobe top talkers"}}},
        {"CPU_BACKLOG",
         {"Per-CPU input backlog full", "critical",
          "Receive processing cannot keep up (net.core.netdev_max_backlog reached).",
          {"sysctl -w net.core.netdev_max_backlog=16384", "spread interrupts: RPS/RSS (ethtool -l, /sys/class/net/IFACE/queues)"}}},
        {"FULL_RING",
         {"Device ring full", "critical", "The NIC's ring overflowed: packets arrived faster than the driver drained them.",
          {"ethtool -g IFACE; ethtool -G IFACE rx 4096", "ethtool -S IFACE | grep -i drop"}}},
        {"NOMEM", {"Out of memory for packets", "critical", "skb allocation failed.", {"free -m; cat /proc/net/sockstat"}}},
        {"TCP_CSUM", {"Bad TCP checksums", "warning", "Corrupted segments: a faulty NIC, cable or offload.",
                      {"ethtool -S IFACE | grep -i err", "ethtool -K IFACE rx off   # test without checksum offload"}}},
        {"UDP_CSUM", {"Bad UDP checksums", "warning", "Corrupted datagrams: a faulty NIC, cable or offload.",
                      {"ethtool -S IFACE | grep -i err"}}},
        {"IP_CSUM", {"Bad IP header checksums", "warning", "Corrupted packets.", {"ethtool -S IFACE | grep -i err"}}},
        {"IP_RPFILTER",
         {"Reverse-path filter dropped packets", "warning",
          "Packets arrived on an interface the route back to their source does not use (asymmetric routing).",
          {"sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.IFACE.rp_filter   # 2 (loose) for asymmetric paths"}}},
        {"IP_INNOROUTES", {"No route for received packets", "warning", "Packets to forward or deliver had no route.",
                           {"ip route get DST"}}},
        {"IP_OUTNOROUTES", {"No route for sent packets", "warning", "Locally sent packets had no route.", {"ip route"}}},
        {"NEIGH_FAILED", {"Neighbour (ARP/NDP) resolution failed", "warning",
                          "The next hop did not answer ARP/neighbour solicitations.", {"ip neigh show", "arping -I IFACE NEXTHOP"}}},
        {"NEIGH_QUEUEFULL", {"Neighbour queue full", "warning", "Packets waiting for ARP/NDP overflowed the queue.",
                             {"sysctl net.ipv4.neigh.default.unres_qlen_bytes"}}},
        {"TCP_ZEROWINDOW", {"TCP data beyond a zero window", "info", "A receiver's window was closed (slow reader).",
                            {"netprobe connections -o wide   # look for the slow reader"}}},
    };
    if (auto it = table.find(r); it != table.end()) return it->second;
    return {"Packets dropped by the kernel (" + r + ")", "warning",
            "The kernel dropped packets with reason SKB_DROP_REASON_" + r + " (include/net/dropreason-core.h).",
            {"perf trace -e skb:kfree_skb --filter 'reason == SKB_DROP_REASON_" + r + "'   # or: netprobe top drops"},
            false};
}

namespace {

// What each kind of device counter means, and what to do about it.
struct CounterAdvice {
    const char* cause;
    std::vector<std::string> fix;  // IFACE: the interface
};

CounterAdvice counterAdvice(std::string_view counter, std::string_view kind) {
    if (counter == "rx_missed_errors" || counter == "rx_over_errors" || counter == "rx_fifo_errors")
        return {"the NIC ran out of receive descriptors: frames arrived faster than the driver drained its ring "
                "(a ring too small for bursts, one queue or CPU overloaded, interrupt coalescing)",
                {"ethtool -g IFACE; ethtool -G IFACE rx 4096   # raise the RX ring to its maximum",
                 "ethtool -l IFACE; ethtool -L IFACE combined N   # more queues (RSS) spread over the CPUs",
                 "ethtool -S IFACE | grep -iE 'miss|fifo|no_buf|drop'   # which queue overflows",
                 "sysctl -w net.core.netdev_budget=600 net.core.netdev_budget_usecs=8000"}};
    if (counter == "rx_crc_errors" || counter == "rx_frame_errors")
        return {"frames arrived corrupted (bad FCS, misaligned): a faulty cable, transceiver or port, or a speed/duplex "
                "mismatch with the switch",
                {"ethtool IFACE   # speed, duplex, auto-negotiation on both ends",
                 "ethtool -S IFACE | grep -iE 'crc|align|symbol|fcs'; ethtool -m IFACE   # optics levels",
                 "replace the cable/SFP or move to another switch port; update the NIC firmware (ethtool -i IFACE)"}};
    if (counter == "rx_length_errors")
        return {"frames of an invalid length: usually larger than this interface's MTU (the peer or switch uses a "
                "bigger MTU)",
                {"ip link show dev IFACE   # compare the MTU with the peer's and the switch's",
                 "ip link set dev IFACE mtu 9000   # or lower the peer's MTU to this one"}};
    if (counter == "rx_errors")
        return {"the device received bad frames (the detailed counters say which kind; none moved: the driver counts "
                "them only here)",
                {"ip -s -s link show dev IFACE; ethtool -S IFACE | grep -iE 'err|crc|drop'",
                 "dmesg | grep -i IFACE   # driver resets, firmware errors"}};
    if (counter == "rx_dropped")
        return {"the stack discarded received frames: a protocol or VLAN nothing handles, a full per-CPU backlog "
                "(net.core.netdev_max_backlog) or XDP/driver drops",
                {"ip -s -s link show dev IFACE; cat /proc/net/softnet_stat   # 2nd column: backlog drops per CPU",
                 "sysctl -w net.core.netdev_max_backlog=16384",
                 "netprobe top drops   # the kernel's drop reasons"}};
    if (counter == "tx_dropped")
        return {kind == "veth"
                    ? "packets were dropped on their way out; on a veth: its peer end is down (or being deleted) or the "
                      "peer's receive backlog is full"
                    : "packets were dropped on their way out: the device queue was full or stopped, the link has no "
                      "carrier, or the driver refused them",
                kind == "veth"
                    ? std::vector<std::string>{"ip link show dev IFACE   # NO-CARRIER / M-DOWN: the peer is down",
                                               "ip -n PEER_NETNS link set PEER up   # bring the peer end up (or remove the "
                                               "stale veth)",
                                               "sysctl -w net.core.netdev_max_backlog=16384   # a full peer backlog"}
                    : std::vector<std::string>{"ip link show dev IFACE   # state, NO-CARRIER, qlen",
                                               "ip link set dev IFACE txqueuelen 10000",
                                               "tc -s qdisc show dev IFACE   # a shaper or queue limit dropping",
                                               "ethtool -g IFACE; ethtool -G IFACE tx 4096   # TX ring"}};
    if (counter == "tx_carrier_errors" || counter == "tx_aborted_errors" || counter == "tx_heartbeat_errors")
        return {"the carrier was lost while sending: a flapping link (cable, transceiver, switch port) or the driver "
                "resetting",
                {"ethtool IFACE; ip -s -s link show dev IFACE",
                 "dmesg | grep -iE 'IFACE|link is (up|down)|tx timeout'   # link flaps, transmit timeouts",
                 "ethtool -i IFACE   # driver and firmware versions: update them"}};
    if (counter == "collisions" || counter == "tx_window_errors")
        return {"collisions (late ones: tx_window_errors): a half-duplex link or a duplex mismatch with the switch",
                {"ethtool IFACE   # Duplex: Half is the problem",
                 "ethtool -s IFACE autoneg on   # or set the same speed/duplex on both ends"}};
    if (counter == "tx_fifo_errors")
        return {"the device's transmit FIFO underran: the driver or DMA could not feed it in time (driver or firmware "
                "problem, PCIe or memory pressure)",
                {"ethtool -i IFACE   # update the driver/firmware", "ethtool -S IFACE | grep -iE 'fifo|underrun'"}};
    if (counter == "tx_errors")
        return {"the device failed to send packets (the detailed counters say which kind; none moved: the driver "
                "counts them only here)",
                {"ip -s -s link show dev IFACE; ethtool -S IFACE | grep -iE 'err|drop'",
                 "dmesg | grep -i IFACE   # driver resets, transmit timeouts"}};
    return {"frames for a device not designated to receive them (a bond or team backup port)", {}};
}

bool isDropCounter(std::string_view c) {
    return c == "rx_dropped" || c == "tx_dropped" || c == "rx_missed_errors";
}

std::string replaceAll(std::string s, std::string_view from, const std::string& to) {
    for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
    return s;
}

}  // namespace

std::vector<Finding> interfaceErrorFindings(const std::vector<InterfaceWindow>& ifaces, const DiagnosisOptions& o) {
    std::vector<Finding> out;
    for (const auto& w : ifaces) {
        bool fires = false, critical = false;
        const double rx = static_cast<double>(w.delta.rx_packets), tx = static_cast<double>(w.delta.tx_packets);
        for (const auto& c : ebpf::kLinkErrorCounters) {
            const std::uint64_t n = w.delta.*(c.field);
            if (n == 0 || std::string_view(c.name) == "rx_nohandler") continue;  // bond/team backups: normal
            if (n < (isDropCounter(c.name) ? o.interface_drops_min : o.interface_errors_min)) continue;
            fires = true;
            // at least 1% of what the direction carried (or everything: nothing got through)
            const double carried = c.rx ? rx : tx;
            if (static_cast<double>(n) >= 0.01 * (carried + static_cast<double>(n))) critical = true;
        }
        if (!fires) continue;
        Finding f;
        f.rule = "interface_errors";
        f.subject = w.name;
        f.severity = critical ? "critical" : "warning";
        std::vector<std::string> moved, causes;
        std::vector<std::string> fix;
        for (const auto& c : ebpf::kLinkErrorCounters) {
            const std::uint64_t n = w.delta.*(c.field);
            if (n == 0) continue;
            moved.push_back(std::string(c.name) + " " + fmt(static_cast<double>(n)));
            f.evidence.push_back({c.name, static_cast<double>(n), "packets"});
            f.evidence.push_back({std::string(c.name) + "_rate", w.seconds > 0 ? static_cast<double>(n) / w.seconds : 0,
                                  "packets/s"});
            auto a = counterAdvice(c.name, w.kind);
            causes.push_back(std::string(c.name) + ": " + a.cause);
            for (auto& x : a.fix) {
                x = replaceAll(std::move(x), "IFACE", w.name);
                if (std::find(fix.begin(), fix.end(), x) == fix.end()) fix.push_back(std::move(x));
            }
        }
        f.evidence.push_back({"rx_packets", rx, "packets"});
        f.evidence.push_back({"tx_packets", tx, "packets"});
        f.evidence.push_back({"window", w.seconds, "seconds"});
        std::string list;
        for (const auto& m : moved) list += (list.empty() ? "" : ", ") + m;
        f.title = "Interface " + w.name + " is dropping or corrupting packets (" + list + " in " + fmt(std::round(w.seconds)) +
                  " s)";
        for (const auto& c : causes) f.cause += (f.cause.empty() ? "" : "; ") + c;
        f.cause += ".";
        f.fix = std::move(fix);
        const std::string window = std::to_string(static_cast<long>(o.window.count())) + "s";
        f.query = "ip -s -s link show dev " + w.name + "; increase(netprobe_interface_errors_total{interface=\"" + w.name +
                  "\"}[" + window + "]); increase(netprobe_interface_drops_total{interface=\"" + w.name + "\"}[" + window +
                  "])";
        out.push_back(std::move(f));
    }
    return out;
}

namespace {

struct Tuple {
    std::uint8_t family = 0, proto = 0;
    util::Addr16 src{}, dst{};
    std::uint16_t sport = 0, dport = 0;
    auto operator<=>(const Tuple&) const = default;
};

struct Seen {
    Tuple t;
    std::uint64_t packets = 0, bytes = 0, first = 0, last = 0;
    std::uint8_t flags = 0;
    std::uint32_t ifindex = 0;
    std::uint8_t direction = 0;
};

bool unicast(const util::Addr16& a) {
    if (util::isV4Mapped(a)) return !(a[12] >= 224 && a[12] <= 239) && !(a[12] == 255 && a[13] == 255 && a[14] == 255 && a[15] == 255);
    return a[0] != 0xff;
}

// Request/response services over UDP: every request is answered.
bool answeredUdpPort(std::uint16_t p) {
    switch (p) {
    case 53: case 88: case 123: case 161: case 389: case 443: case 853: case 1812: return true;
    default: return false;
    }
}

// The server's port of a 5-tuple: the non-ephemeral one facing an ephemeral one, else the lower.
bool serverIsDst(const Tuple& t) {
    constexpr std::uint16_t ephemeral = 32768;
    if (t.proto == IPPROTO_UDP && answeredUdpPort(t.dport)) return true;
    if (t.proto == IPPROTO_UDP && answeredUdpPort(t.sport)) return false;
    // a kernel aggregate of connection attempts or refusals: the end with port 0 initiated
    if (const int a = np_flow_aggregate_initiator(t.proto, t.sport, t.dport); a != 0) return a > 0;
    if (t.dport < ephemeral && t.sport >= ephemeral) return true;
    if (t.sport < ephemeral && t.dport >= ephemeral) return false;
    return t.dport <= t.sport;
}

}  // namespace

std::vector<Finding> oneWayFlowFindings(const FlowRecords& records, std::uint64_t now_ns, const DiagnosisOptions& o,
                                        const std::function<std::string(std::uint32_t)>& ifname) {
    // Every TCP/UDP 5-tuple once, with the figures of its busiest interface/direction:
    // an index of 5-tuples over the records (4 bytes a slot; a copy of each record's
    // figures was ~90 bytes a flow, every collection).
    auto eligible = [](const flow_key& k) {
        return k.encap == NP_ENCAP_NONE && (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP);
    };
    auto timed = [&](std::size_t i) {
        const auto& r = records.storedAt(i);
        return r.first_seen_ns != 0 && r.last_seen_ns >= r.first_seen_ns;  // no times: nothing to judge
    };
    collector::FlowTupleIndex index(records.size());
    auto key_at = [&](std::uint32_t i) -> const flow_key& { return records.storedAt(i).key; };
    for (std::uint32_t i = 0; i < records.size(); ++i) {
        const flow_key& k = records.storedAt(i).key;
        if (!eligible(k) || !timed(i)) continue;
        std::uint32_t& at = index.slot(k, key_at);
        if (at == collector::FlowTupleIndex::npos || records.storedAt(i).packets > records.storedAt(at).packets) at = i;
    }
    auto seenAt = [&](std::uint32_t i) {
        const FlowRecord r = records[i];
        Seen x;
        x.t.family = r.key.family;
        x.t.proto = r.key.proto;
        std::memcpy(x.t.src.data(), &r.key.src_ip, 16);
        std::memcpy(x.t.dst.data(), &r.key.dst_ip, 16);
        x.t.sport = r.key.src_port;
        x.t.dport = r.key.dst_port;
        x.packets = r.packets;
        x.bytes = r.bytes;
        x.first = r.first_seen_ns;
        x.last = r.last_seen_ns;
        x.flags = r.tcp_flags;
        x.ifindex = r.key.ifindex;
        x.direction = r.key.direction;
        return x;
    };
    const std::uint64_t min_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(o.one_way_min).count());
    const std::uint64_t window_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(o.window).count());

    // Conversations (client, server, server port, protocol) with one direction only.
    struct Conv {
        bool client_side = true;  // the direction seen is the client's
        std::uint64_t packets = 0, bytes = 0, first = UINT64_MAX, last = 0;
        std::uint8_t flags = 0;
        std::vector<Seen> top;  // its busiest 5-tuples (at most 3)
        std::size_t flows = 0;
    };
    std::map<std::tuple<std::uint8_t, util::Addr16, util::Addr16, std::uint16_t, bool>, Conv> convs;
    for (std::uint32_t i = 0; i < records.size(); ++i) {
        const flow_key& k = records.storedAt(i).key;
        if (!eligible(k) || index.find(k, key_at) != i) continue;  // (each 5-tuple at its busiest record)
        if (index.find(collector::reversedFlowTuple(k), key_at) != collector::FlowTupleIndex::npos) continue;
        const Seen x = seenAt(i);
        if (!unicast(x.t.dst) || !unicast(x.t.src)) continue;
        const bool to_server = serverIsDst(x.t);
        const util::Addr16& client = to_server ? x.t.src : x.t.dst;
        const util::Addr16& server = to_server ? x.t.dst : x.t.src;
        const std::uint16_t port = to_server ? x.t.dport : x.t.sport;
        if (x.t.proto == IPPROTO_TCP) {
            if (x.packets < o.one_way_tcp_packets_min || x.last - x.first < min_ns) continue;
        } else if (!to_server || !answeredUdpPort(port)) {
            continue;  // UDP: requests to a service that answers every request, only
        }
        auto& c = convs[{x.t.proto, client, server, port, to_server}];
        c.client_side = to_server;
        c.packets += x.packets;
        c.bytes += x.bytes;
        c.first = std::min(c.first, x.first);
        c.last = std::max(c.last, x.last);
        c.flags |= x.flags;
        ++c.flows;
        // the three busiest, in that order (the first of equals stays first)
        auto at = std::upper_bound(c.top.begin(), c.top.end(), x.packets,
                                   [](std::uint64_t p, const Seen& s) { return p > s.packets; });
        if (at - c.top.begin() < 3) {
            c.top.insert(at, x);
            if (c.top.size() > 3) c.top.pop_back();
        }
    }
    std::vector<std::pair<std::uint64_t, Finding>> found;
    for (auto& [key, c] : convs) {
        const auto& [proto, client, server, port, to_server] = key;
        if (now_ns > c.last && now_ns - c.last > window_ns) continue;  // over before the window
        if (proto == IPPROTO_UDP && (c.packets < o.one_way_udp_packets_min || c.last - c.first < min_ns)) continue;
        const bool tcp = proto == IPPROTO_TCP;
        const std::string pname = tcp ? "tcp" : "udp";
        const std::string cs = util::formatAddr(client), ss = util::formatEndpoint(server, port);
        Finding f;
        f.rule = "one_way_flows";
        f.subject = pname + " " + cs + " -> " + ss;
        f.severity = "warning";
        // TCP: the client acknowledging (ACK without SYN in its direction is not
        // distinguishable from the OR of flags; ACK with data after the handshake is) means
        // the server's segments reach it another way.
        const bool acked = tcp && (c.flags & 0x10) != 0;
        const double secs = static_cast<double>(c.last - c.first) / 1e9;
        if (!c.client_side) {
            f.title = "Only the server's side of " + pname + " " + cs + " -> " + ss +
                      " crosses this node: the client's packets arrive another way";
            f.cause = "Asymmetric routing: " + cs + " reaches " + ss + " through another interface or node and only the "
                      "answers come through here (a second route or uplink, ECMP, a policy route, a direct-return load "
                      "balancer). Stateful firewalls and conntrack on either path see half a connection and may drop it; "
                      "a strict rp_filter on the receiving host drops traffic arriving on an interface its route back "
                      "does not use.";
        } else if (acked) {
            f.title = "Asymmetric routing: " + pname + " " + cs + " -> " + ss +
                      " crosses this node, its replies do not";
            f.cause = "The client acknowledges the server's segments, so the replies exist but return another way: the "
                      "server's route back to " + cs + " uses another interface or node (a second route or uplink, ECMP, "
                      "a policy route, a direct-return/DSR load balancer, where it is by design). Stateful firewalls and "
                      "conntrack see half a connection (INVALID, UNREPLIED) and may drop it; a strict rp_filter drops the "
                      "replies on a host whose route to the server points elsewhere.";
        } else if (tcp) {
            f.title = "TCP connection attempts " + cs + " -> " + ss + " get no reply through this node";
            f.cause = "SYNs cross this node and nothing comes back: the destination is down or does not exist, a "
                      "firewall drops the SYNs beyond this node or the replies, or the replies take another path "
                      "(asymmetric routing) where a strict rp_filter or a stateful firewall drops them.";
        } else {
            f.title = "UDP requests " + cs + " -> " + ss + " get no answer through this node";
            f.cause = "Requests to a service that answers every request (DNS, NTP, QUIC, ...) cross this node and no "
                      "answer comes back: nothing listens or the server refuses silently, a firewall drops the requests "
                      "beyond this node or the answers, or the answers come back another way (asymmetric routing, a "
                      "server answering from another address).";
        }
        f.evidence = {{"packets_seen", static_cast<double>(c.packets), "packets"},
                      {"bytes_seen", static_cast<double>(c.bytes), "bytes"},
                      {"packets_back", 0, "packets"},
                      {"bytes_back", 0, "bytes"},
                      {"flows", static_cast<double>(c.flows), "flows"},
                      {"duration", secs, "seconds"}};
        std::string where;
        for (std::size_t i = 0; i < c.top.size(); ++i) {
            const auto& t = c.top[i].t;
            f.evidence.push_back({"flow " + util::formatEndpoint(t.src, t.sport) + " -> " + util::formatEndpoint(t.dst, t.dport),
                                  static_cast<double>(c.top[i].packets), "packets"});
            if (i == 0) where = ifname(c.top[i].ifindex) + (c.top[i].direction == NP_DIR_INGRESS ? " ingress" : " egress");
        }
        const std::string sip = util::formatAddr(server);
        f.fix = {"ip route get " + cs + " from " + sip + "   # on " + sip + ": where its replies leave (should be via this node)",
                 "ip route get " + sip + " from " + cs + " iif " + (where.empty() ? "IFACE" : where.substr(0, where.find(' '))) +
                     "   # on this node: the forward path",
                 "sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter   # 1 (strict) drops asymmetric "
                 "returns; 2 (loose) accepts them",
                 "nft list ruleset | grep -iE 'drop|reject'; iptables-save -c | grep -E 'DROP|REJECT'   # on the return path",
                 "conntrack -L -s " + cs + " -d " + sip + "   # UNREPLIED / SYN_SENT entries on stateful hops",
                 "tcpdump -ni any host " + cs + " and host " + sip + "   # on the server: do the requests arrive, where do "
                 "the answers go"};
        f.query = "netprobe flows --ip " + cs + " --port " + std::to_string(port) + " -o wide   # " +
                  (where.empty() ? std::string() : "seen on " + where + "; ") + "no flow " + ss + " -> " + cs;
        found.emplace_back(c.packets, std::move(f));
    }
    std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<Finding> out;
    for (std::size_t i = 0; i < found.size() && i < o.one_way_max_findings; ++i) out.push_back(std::move(found[i].second));
    return out;
}

Diagnosis::Counters Diagnosis::countersOf(const collector::Snapshot& s) {
    Counters c;
    if (s.stack) {
        c.stack = true;
        for (const auto& d : s.stack->drops) c.drops[d.name] += d.count;
        c.failed = s.stack->failed;
        c.retransmits = s.stack->retransmits;
        c.resets_received = s.stack->resets_received;
        if (s.stack->ringbuf_reserve_failures) c.lost["conn_events ring"] = s.stack->ringbuf_reserve_failures;
        if (s.stack->conn_insert_failures) c.lost["conn_table"] = s.stack->conn_insert_failures;
    }
    c.tcp_out = s.protocols[NP_DIR_EGRESS][NP_PROTO_TCP].packets;
    for (const auto& i : s.icmp)
        if ((i.key.family == 4 && i.key.type == 3 && i.key.code == 4) || (i.key.family == 6 && i.key.type == 2))
            c.frag_needed += i.counter.packets;
    if (s.netstat) {
        auto get = [&](const char* k) {
            auto it = s.netstat->find(k);
            return it == s.netstat->end() ? std::uint64_t{0} : it->second;
        };
        c.listen_overflows = get("TcpExt.ListenOverflows");
        c.listen_drops = get("TcpExt.ListenDrops");
    }
    for (int i = 0; i < NP_MAP_ID_MAX; ++i)
        if (s.map_errors[static_cast<std::size_t>(i)]) c.lost[ebpf::mapName(i)] = s.map_errors[static_cast<std::size_t>(i)];
    if (s.l7) {  // the L7 capture's kernel side (--l7=on)
        const auto& k = s.l7->kernel;
        if (k[NP_L7_CNT_RING_FULL]) c.lost["l7_events ring"] = k[NP_L7_CNT_RING_FULL];
        if (k[NP_L7_CNT_ARGS_FULL]) c.lost["l7_tls_calls"] = k[NP_L7_CNT_ARGS_FULL];
        if (k[NP_L7_CNT_CONNS_FULL]) c.lost["l7_conns"] = k[NP_L7_CNT_CONNS_FULL];
    }
    if (s.names && s.names->counters.queue_dropped) c.lost["name_capture queue"] = s.names->counters.queue_dropped;
    if (s.link_counters)
        for (const auto& l : s.link_counters->links) c.links[l.ifindex] = l;
    return c;
}

void Diagnosis::run(const collector::Snapshot& s, Views& views) {
    Counters cur = countersOf(s);
    if (views.flows) cur.flows_evicted = views.flows->health.evicted_total;
    if (prev_) {
        Interval iv;
        iv.at = s.mono;
        iv.seconds = std::chrono::duration<double>(s.mono - prev_at_).count();
        for (const auto& [k, v] : cur.drops) {
            auto p = prev_->drops.find(k);
            if (auto d = since(v, p == prev_->drops.end() ? 0 : p->second)) iv.delta.drops[k] = d;
        }
        for (const auto& [k, v] : cur.lost) {
            auto p = prev_->lost.find(k);
            if (auto d = since(v, p == prev_->lost.end() ? 0 : p->second)) iv.delta.lost[k] = d;
        }
        iv.delta.failed = since(cur.failed, prev_->failed);
        iv.delta.retransmits = since(cur.retransmits, prev_->retransmits);
        iv.delta.resets_received = since(cur.resets_received, prev_->resets_received);
        iv.delta.tcp_out = since(cur.tcp_out, prev_->tcp_out);
        iv.delta.listen_overflows = since(cur.listen_overflows, prev_->listen_overflows);
        iv.delta.listen_drops = since(cur.listen_drops, prev_->listen_drops);
        iv.delta.frag_needed = since(cur.frag_needed, prev_->frag_needed);
        iv.delta.flows_evicted = since(cur.flows_evicted, prev_->flows_evicted);
        // A link's counters from its second reading on (a link seen for the first time,
        // or attached later, brings its history since creation: not this window's).
        for (const auto& [idx, l] : cur.links) {
            auto p = prev_->links.find(idx);
            if (p == prev_->links.end()) continue;
            ebpf::LinkCounters d;
            d.ifindex = idx;
            bool any = false;
            for (const auto& c : ebpf::kLinkErrorCounters)
                if ((d.*(c.field) = since(l.*(c.field), p->second.*(c.field)))) any = true;
            d.rx_packets = since(l.rx_packets, p->second.rx_packets);
            d.tx_packets = since(l.tx_packets, p->second.tx_packets);
            if (any || d.rx_packets || d.tx_packets) iv.delta.links[idx] = d;
        }
        if (s.full_listeners) iv.full_listeners = *s.full_listeners;
        window_.push_back(std::move(iv));
    }
    prev_ = cur;
    prev_at_ = s.mono;
    while (!window_.empty() && s.mono - window_.front().at >= options_.window) window_.pop_front();

    Counters sum;
    double secs = 0;
    for (const auto& iv : window_) {
        secs += iv.seconds;
        for (const auto& [k, v] : iv.delta.drops) sum.drops[k] += v;
        for (const auto& [k, v] : iv.delta.lost) sum.lost[k] += v;
        sum.failed += iv.delta.failed;
        sum.retransmits += iv.delta.retransmits;
        sum.resets_received += iv.delta.resets_received;
        sum.tcp_out += iv.delta.tcp_out;
        sum.listen_overflows += iv.delta.listen_overflows;
        sum.listen_drops += iv.delta.listen_drops;
        sum.frag_needed += iv.delta.frag_needed;
        sum.flows_evicted += iv.delta.flows_evicted;
        for (const auto& [idx, d] : iv.delta.links) {
            auto& t = sum.links[idx];
            t.ifindex = idx;
            for (const auto& c : ebpf::kLinkErrorCounters) t.*(c.field) += d.*(c.field);
            t.rx_packets += d.rx_packets;
            t.tx_packets += d.tx_packets;
        }
    }
    const std::string window = std::to_string(static_cast<long>(options_.window.count())) + "s";
    std::vector<Finding> out;

    // Listen-queue overflows (the kernel's own counters of the agent's namespace).
    if (sum.listen_overflows >= options_.listen_overflows_min) {
        const auto a = dropAdvice("TCP_LISTEN_OVERFLOW");
        Finding f;
        f.rule = "listen_overflow";
        f.subject = "tcp";
        f.severity = "critical";
        f.title = a.title;
        f.evidence = {{"overflows", static_cast<double>(sum.listen_overflows), "connections"},
                      {"listen_drops", static_cast<double>(sum.listen_drops), "packets"},
                      {"rate", secs > 0 ? sum.listen_overflows / secs : 0, "overflows/s"}};
        f.cause = a.cause;
        f.fix = a.fix;
        // The listeners found with a full accept queue when the counter moved: the ports
        // whose backlog to raise (the fullest queue each, at most 5).
        std::map<std::pair<util::Addr16, std::uint16_t>, collector::FullListener> full;
        for (const auto& iv : window_)
            for (const auto& l : iv.full_listeners) {
                auto [it, fresh] = full.try_emplace({l.addr, l.port}, l);
                if (!fresh && l.queued > it->second.queued) it->second = l;
            }
        std::vector<collector::FullListener> ports;
        for (const auto& [k, l] : full) ports.push_back(l);
        std::sort(ports.begin(), ports.end(), [](const auto& x, const auto& y) { return x.queued > y.queued; });
        if (ports.size() > 5) ports.resize(5);
        std::vector<std::string> raise;
        for (const auto& l : ports) {
            const std::string ep = util::formatEndpoint(l.addr, l.port);
            f.evidence.push_back({"accept queue of " + ep, static_cast<double>(l.queued),
                                  "connections (backlog " + std::to_string(l.backlog) + ")"});
            raise.push_back("raise the listen backlog of " + ep + " (now " + std::to_string(l.backlog) +
                            "; the kernel caps it at net.core.somaxconn) or accept() faster there");
        }
        if (!ports.empty()) {
            f.title += " on :" + std::to_string(ports.front().port);
            f.fix.insert(f.fix.begin(), raise.begin(), raise.end());
        }
        f.query = "nstat -az TcpExtListenOverflows TcpExtListenDrops; ss -ltn";
        out.push_back(std::move(f));
    }

    // Path MTU: routers (or this host) answering packets too big for a link.
    if (sum.frag_needed >= options_.frag_needed_min) {
        Finding f;
        f.rule = "path_mtu";
        f.subject = "icmp";
        const bool lossy = sum.retransmits >= options_.retransmits_min;
        f.severity = lossy ? "critical" : "warning";
        f.title = lossy ? "Packets too big for the path, with TCP retransmitting: a likely MTU black hole"
                        : "Packets too big for the path (ICMP fragmentation needed / packet too big)";
        f.evidence = {{"frag_needed", static_cast<double>(sum.frag_needed), "messages"},
                      {"retransmits", static_cast<double>(sum.retransmits), "segments"}};
        f.cause = "A link on the path has a smaller MTU than the senders assume (an overlay, a tunnel, a veth with "
                  "a different MTU): packets with DF set are dropped and answered with ICMP. Where those ICMP "
                  "messages are filtered, TCP connections stall after the handshake (a black hole).";
        f.fix = {"ip route get DST; tracepath DST   # the path MTU and where it drops",
                 "ip link set dev IFACE mtu 1450   # give the pods/tunnel the smaller MTU",
                 "nft add rule inet filter forward tcp flags syn tcp option maxseg size set rt mtu   # MSS clamping",
                 "allow ICMP type 3 code 4 / ICMPv6 type 2 through every firewall on the path"};
        f.query = "netprobe_icmp_messages_total{family=\"ipv4\",type=\"3\",code=\"4\"}; netprobe_icmp_messages_total{family=\"ipv6\",type=\"2\"}";
        out.push_back(std::move(f));
    }

    // Packet drops by kernel reason.
    for (const auto& [reason, n] : sum.drops) {
        if (n < options_.drops_min) continue;
        const auto a = dropAdvice(reason);
        if (a.benign) continue;
        Finding f;
        f.rule = "packet_drops";
        f.subject = reason;
        f.severity = a.severity;
        f.title = a.title;
        f.evidence = {{"drops", static_cast<double>(n), "packets"}, {"rate", secs > 0 ? n / secs : 0, "packets/s"}};
        f.cause = a.cause;
        f.fix = a.fix;
        f.query = "netprobe top drops; increase(netprobe_packet_drops_total{reason=\"" + reason + "\"}[" + window + "])";
        out.push_back(std::move(f));
    }

    // Connection attempts that failed, by destination (the closed connection records).
    if (sum.failed >= options_.failed_connections_min && s.stack) {
        std::map<std::pair<util::Addr16, std::uint16_t>, std::uint64_t> by_dst;
        const auto horizon = s.taken_at - options_.window;
        for (const auto& c : s.stack->connections)
            if (!c.open && c.failed && c.origin == NP_CONN_ACTIVE && c.end >= horizon) ++by_dst[{c.dst_ip, c.dst_port}];
        std::vector<std::pair<std::uint64_t, std::pair<util::Addr16, std::uint16_t>>> top;
        for (const auto& [k, n] : by_dst) top.emplace_back(n, k);
        std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        Finding f;
        f.rule = "connection_failures";
        f.severity = "warning";
        f.subject = top.empty() ? "" : util::formatEndpoint(top.front().second.first, top.front().second.second);
        f.title = "Connection attempts failing" + (f.subject.empty() ? std::string() : " to " + f.subject);
        f.evidence = {{"failed_connections", static_cast<double>(sum.failed), "connections"},
                      {"resets_received", static_cast<double>(sum.resets_received), "segments"}};
        for (std::size_t i = 0; i < top.size() && i < 3; ++i)
            f.evidence.push_back({"failed_to " + util::formatEndpoint(top[i].second.first, top[i].second.second),
                                  static_cast<double>(top[i].first), "connections"});
        f.cause = sum.resets_received > 0
                      ? "The destination answers SYN with RST: nothing listens on that port (the service is down, "
                        "not ready, or the client uses the wrong port)."
                      : "Connection attempts time out: the destination or the path drops SYNs (firewall, routing, a "
                        "dead host).";
        f.fix = {"ss -ltn 'sport = :PORT'   # on the destination: is the service listening?",
                 "kubectl get endpoints -A | grep SERVICE   # a Service without ready endpoints",
                 "netprobe connections --state closed -o wide"};
        f.query = "netprobe connections --state closed; increase(netprobe_tcp_connections_failed_total[" + window + "])";
        out.push_back(std::move(f));
    }

    // TCP retransmissions.
    if (sum.retransmits >= options_.retransmits_min && sum.tcp_out > 0) {
        const double ratio = static_cast<double>(sum.retransmits) / static_cast<double>(sum.tcp_out);
        if (ratio >= options_.retransmit_ratio_min) {
            Finding f;
            f.rule = "tcp_retransmits";
            f.subject = "tcp";
            f.severity = ratio >= 0.1 ? "critical" : "warning";
            f.title = "TCP retransmissions at " + fmt(ratio * 100) + "% of segments sent";
            f.evidence = {{"retransmitted", static_cast<double>(sum.retransmits), "segments"},
                          {"sent", static_cast<double>(sum.tcp_out), "packets"},
                          {"ratio", ratio, "ratio"}};
            f.cause = "Segments are lost on the path (congestion, a lossy link, drops in a queue or a firewall) or "
                      "delayed past the retransmission timeout.";
            f.fix = {"netprobe top retransmits   # which connections", "netprobe top drops   # drops on this host",
                     "ethtool -S IFACE | grep -iE 'drop|err'; tc -s qdisc"};
            f.query = "netprobe top retransmits; rate(netprobe_tcp_retransmits_total[" + window + "])";
            out.push_back(std::move(f));
        }
    }

    // Application layer (with --l7=on): DNS servers failing or answering NXDOMAIN in bulk,
    // HTTP services answering 5xx. Per server, from the clients' side when this node has
    // the clients (what they experienced), else from the server's.
    if (views.l7) {
        struct Agg {
            std::uint64_t requests = 0, errors = 0, client_errors = 0;
            std::map<std::string, std::uint64_t> by_route;  // errors (or NXDOMAINs) by route
        };
        std::map<std::pair<std::string, std::string>, std::map<std::string, Agg>> by;  // (protocol, service) -> side -> agg
        for (const auto& e : views.l7->endpoints) {
            auto& a = by[{e.protocol, e.service}][e.side];
            a.requests += e.requests;
            a.errors += e.errors;
            a.client_errors += e.client_errors;
            if (e.errors || (e.protocol == "dns" && e.client_errors))
                a.by_route[e.route] += e.errors + (e.protocol == "dns" ? e.client_errors : 0);
        }
        for (const auto& [key, sides] : by) {
            const auto& [protocol, service] = key;
            const auto side = sides.contains("client") ? "client" : "server";
            const Agg& a = sides.at(side);
            if (a.requests == 0) continue;
            std::vector<std::pair<std::uint64_t, std::string>> routes;
            for (const auto& [r, n] : a.by_route) routes.emplace_back(n, r);
            std::sort(routes.rbegin(), routes.rend());
            auto addRoutes = [&](Finding& f, const char* what) {
                for (std::size_t i = 0; i < routes.size() && i < 3; ++i)
                    f.evidence.push_back({std::string(what) + " " + routes[i].second, static_cast<double>(routes[i].first),
                                          "requests"});
            };
            const double err = static_cast<double>(a.errors) / static_cast<double>(a.requests);
            if (protocol == "dns" && a.errors >= options_.dns_errors_min) {
                Finding f;
                f.rule = "dns_failures";
                f.subject = service;
                f.severity = err >= 0.5 ? "critical" : "warning";
                f.title = "DNS server " + service + " failing " + fmt(err * 100) + "% of queries (SERVFAIL/REFUSED)";
                f.evidence = {{"queries", static_cast<double>(a.requests), "queries"},
                              {"failed", static_cast<double>(a.errors), "queries"},
                              {"ratio", err, "ratio"}};
                addRoutes(f, "failed_name");
                f.cause = "The resolver answers with a server failure: its upstream is unreachable or slow "
                          "(SERVFAIL), DNSSEC validation fails (SERVFAIL), or it refuses the client (REFUSED: "
                          "access control, a resolver that is not recursive for these names).";
                f.fix = {"dig @" + service.substr(0, service.rfind(':')) + " NAME   # reproduce; +trace for the chain",
                         "kubectl -n kube-system logs -l k8s-app=kube-dns --tail=100   # CoreDNS errors",
                         "kubectl -n kube-system get configmap coredns -o yaml   # forward/upstream settings"};
                f.query = "curl -s 'localhost:8081/api/v1/l7/requests?protocol=dns&service=" + service +
                          "'; increase(netprobe_l7_requests_total{protocol=\"dns\",service=\"" + service +
                          "\",status_class=~\"SERVFAIL|REFUSED|FORMERR|NOTIMP\"}[" + window + "])";
                out.push_back(std::move(f));
            }
            const double nx = static_cast<double>(a.client_errors) / static_cast<double>(a.requests);
            if (protocol == "dns" && a.client_errors >= options_.nxdomain_min && nx >= options_.nxdomain_ratio_min) {
                Finding f;
                f.rule = "dns_nxdomain";
                f.subject = service;
                f.severity = "warning";
                f.title = fmt(nx * 100) + "% of DNS queries to " + service + " answered NXDOMAIN";
                f.evidence = {{"queries", static_cast<double>(a.requests), "queries"},
                              {"nxdomain", static_cast<double>(a.client_errors), "queries"},
                              {"ratio", nx, "ratio"}};
                addRoutes(f, "name");
                f.cause = "Clients ask for names that do not exist: a typo or a removed service, or (in Kubernetes) "
                          "short names expanded through the search domains (ndots:5 turns one lookup of an external "
                          "name into several NXDOMAINs first).";
                f.fix = {"cat /etc/resolv.conf   # in the pod: search domains and ndots",
                         "use fully qualified names (a trailing dot) for external hosts, or dnsConfig.options ndots: 2",
                         "kubectl get svc -A | grep NAME   # a Service that no longer exists"};
                f.query = "curl -s 'localhost:8081/api/v1/l7/requests?protocol=dns&status=NXDOMAIN&service=" + service + "'";
                out.push_back(std::move(f));
            }
            if (protocol == "http" && a.errors >= options_.http_errors_min && err >= options_.http_error_ratio_min) {
                Finding f;
                f.rule = "http_errors";
                f.subject = service;
                f.severity = err >= 0.5 ? "critical" : "warning";
                f.title = "HTTP service " + service + " answering 5xx to " + fmt(err * 100) + "% of requests";
                f.evidence = {{"requests", static_cast<double>(a.requests), "requests"},
                              {"errors_5xx", static_cast<double>(a.errors), "requests"},
                              {"ratio", err, "ratio"}};
                addRoutes(f, "failing_route");
                f.cause = "The service (or a proxy in front of it: 502/503/504) fails requests: crashes, overload, "
                          "an unavailable dependency, or no ready backend.";
                f.fix = {"curl -s 'localhost:8081/api/v1/l7/requests?service=" + service + "&status=5xx'   # which requests",
                         "kubectl logs deploy/WORKLOAD --tail=100; kubectl get endpoints SERVICE"};
                f.query = "sum by (status_class) (rate(netprobe_l7_requests_total{service=\"" + service + "\",side=\"" +
                          side + "\"}[" + window + "]))";
                out.push_back(std::move(f));
            }
        }
    }

    // DNS servers that do not answer at all (stopped, unreachable, or the answers lost):
    // queries the L7 tracker saw leave (or arrive) without a response before the client
    // gave up (closed its socket, retried the same id) or dns_timeout passed. Per server,
    // the clients' side when this node has it.
    if (views.l7) {
        std::map<std::string, std::map<std::string, const l7::DnsTimeoutSummary*>> by;  // service -> side
        std::map<std::pair<std::string, std::string>, std::uint64_t> answered;        // (service, side)
        for (const auto& t : views.l7->dns_timeouts) by[t.service][t.side] = &t;
        for (const auto& e : views.l7->endpoints)
            if (e.protocol == "dns") answered[{e.service, e.side}] += e.requests;
        for (const auto& [service, sides] : by) {
            const std::string side = sides.contains("client") ? "client" : "server";
            const auto& t = *sides.at(side);
            if (t.timeouts < options_.dns_timeouts_min) continue;
            const auto it = answered.find({service, side});
            const std::uint64_t ok = it == answered.end() ? 0 : it->second;
            const double ratio = static_cast<double>(t.timeouts) / static_cast<double>(t.timeouts + ok);
            Finding f;
            f.rule = "dns_timeouts";
            f.subject = service;
            f.severity = ok == 0 || ratio >= 0.5 ? "critical" : "warning";
            f.title = "DNS server " + service + " not answering: " + std::to_string(t.timeouts) + " queries (" +
                      fmt(ratio * 100) + "%) got no response";
            f.evidence = {{"timeouts", static_cast<double>(t.timeouts), "queries"},
                          {"answered", static_cast<double>(ok), "queries"},
                          {"ratio", ratio, "ratio"},
                          {"max_wait", t.max_wait_seconds, "seconds"}};
            for (const auto& [n, c] : t.names) f.evidence.push_back({"name " + n, static_cast<double>(c), "queries"});
            const std::string addr = service.substr(0, service.rfind(':'));
            f.cause = side == "client"
                          ? "Clients on this node send queries to " + service +
                                " and get nothing back before they give up: the server is down or not listening "
                                "(an ICMP port unreachable is not an answer), a firewall or NetworkPolicy drops "
                                "the queries or the answers, the route to it is broken, or it is overloaded and "
                                "drops queries."
                          : "The server on this node receives queries and sends no answer before the client gives up: "
                            "it is overloaded, stuck on a slow or unreachable upstream, or exited with queries pending.";
            f.fix = {"dig @" + addr + " +time=2 +tries=1 NAME   # \"connection timed out; no servers could be reached\"",
                     "ss -lunp 'sport = :53'   # on the server: is it listening",
                     "nft list ruleset | grep -iE 'drop|reject'; ip route get " + addr + "   # filtered or unroutable",
                     "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide; kubectl -n kube-system get endpoints "
                     "kube-dns   # CoreDNS pods running and ready",
                     "add a second nameserver (resolv.conf) or NodeLocal DNSCache so one server's outage is not every "
                     "lookup's"};
            f.query = "curl -s localhost:8081/api/v1/diagnosis; netprobe requests --protocol dns   # answered queries "
                      "of " + service;
            out.push_back(std::move(f));
        }
    }

    // Interface errors and drops: the devices' own counters, of the interfaces NetProbe
    // watches (a link of the namespace it does not watch is not its business).
    if (s.link_counters) {
        std::vector<InterfaceWindow> ifs;
        for (const auto& i : s.interfaces) {
            auto it = sum.links.find(i.index);
            if (it == sum.links.end()) continue;
            InterfaceWindow w;
            w.name = i.name;
            w.delta = it->second;
            w.seconds = secs;
            if (s.links)
                for (const auto& l : s.links->links)
                    if (l.index == i.index) w.kind = l.kind;
            ifs.push_back(std::move(w));
        }
        for (auto& f : interfaceErrorFindings(ifs, options_)) out.push_back(std::move(f));
    }

    // One-way flows: not while flow records are being lost (a missing reverse direction
    // could be a record the kernel or the table had no room for).
    if (views.flows && sum.flows_evicted == 0 && !sum.lost.contains("flow_stats")) {
        const auto* fv = views.flows.get();
        for (auto& f : oneWayFlowFindings(fv->records, s.monoNs(), options_,
                                          [fv](std::uint32_t i) { return fv->interfaceName(i); }))
            out.push_back(std::move(f));
    }

    // Data NetProbe itself lost (full maps, rings).
    for (const auto& [what, n] : sum.lost) {
        Finding f;
        f.rule = "netprobe_data_loss";
        f.subject = what;
        f.severity = "warning";
        f.title = "NetProbe is losing data: " + what + " full";
        const bool records = what.ends_with(" ring") || what.ends_with(" queue");
        f.evidence = {{"lost", static_cast<double>(n), records ? "records" : "updates"}};
        f.cause = what.starts_with("l7_")
                      ? "The L7 capture had no room for captured messages, so requests on the affected connections "
                        "are missing from the L7 metrics and endpoints (every lost message is counted)."
                      : "A kernel map or ring of NetProbe is full, so some packets or events are not counted in detail "
                        "(totals per interface stay exact).";
        if (what == "flow_stats")
            f.fix = {"--flow-table-size=262144 (default 65536)", "--collect-interval=1s (idle entries are removed sooner)"};
        else if (what == "conn_table")
            f.fix = {"more TCP connections than the kernel table holds (65536): they are still counted in the totals"};
        else if (what == "l7_events ring")
            f.fix = {"--l7-ring-size=32MiB (default 8MiB): room for the messages of a burst until the agent reads them",
                     "netprobe-agent --doctor   # map fill and errors"};
        else
            f.fix = {"netprobe-agent --doctor   # map fill and errors"};
        f.query = what.starts_with("l7_") ? "increase(netprobe_l7_capture_lost_total[" + window + "])"
                  : what == "name_capture queue"
                      ? "increase(netprobe_name_capture_dropped_total[" + window + "])"
                      : "increase(netprobe_map_update_errors_total[" + window + "]); netprobe_map_fill_ratio";
        out.push_back(std::move(f));
    }

    // Security events in progress.
    if (options_.security) {
        if (auto sv = options_.security(); sv) {
            for (const auto& e : sv->events) {
                if (e->ended_at) continue;
                Finding f;
                f.rule = "security_event";
                f.subject = std::string(security::toString(e->type)) + "#" + std::to_string(e->id);
                f.severity = e->severity == security::Severity::Critical || e->severity == security::Severity::High
                                 ? "critical"
                                 : "warning";
                f.title = "Security event in progress: " + std::string(security::toString(e->type)) +
                          (e->src ? " from " + util::formatAddr(*e->src) : std::string()) +
                          (e->dst ? " to " + util::formatAddr(*e->dst) : std::string());
                f.evidence = {{"targets", static_cast<double>(e->targets.size()), "addresses"}};
                // The event's own figures (a scan's ports probed and refused, a flood's peak
                // rate, ...), as /api/v1/events has them; its words go to the title.
                std::string kind;
                for (const auto& [k, v] : e->evidence) {
                    if (const auto* i = std::get_if<std::int64_t>(&v)) f.evidence.push_back({k, static_cast<double>(*i), ""});
                    else if (const auto* d = std::get_if<double>(&v)) f.evidence.push_back({k, *d, ""});
                    else if (const auto* str = std::get_if<std::string>(&v);
                             str && (k == "scan_type" || k == "mode" || k == "flood_type" || k == "kind"))
                        kind += (kind.empty() ? "" : ", ") + k + " " + *str;
                }
                if (!kind.empty()) f.title += " (" + kind + ")";
                f.cause = "NetProbe's security analytics detected it (docs/security.md).";
                f.fix = {"netprobe events -o wide", "--mitigate=on blocks the source at XDP/TC (docs/security.md)"};
                if (e->type == security::EventType::ThreatIntelMatch) {
                    auto text = [&](const char* k) {
                        auto it = e->evidence.find(k);
                        const std::string* v = it == e->evidence.end() ? nullptr : std::get_if<std::string>(&it->second);
                        return v ? *v : std::string("?");
                    };
                    const bool inbound = text("direction") == "inbound";
                    const auto local = inbound ? e->dst : e->src;
                    const auto remote = inbound ? e->src : e->dst;
                    f.title = std::string("Traffic ") + (inbound ? "from " : "to ") + text("indicator") + " (feed " +
                              text("feed") + ")" + (local ? (inbound ? " reaching " : " from ") + util::formatAddr(*local) : "");
                    f.cause = "An address listed by the threat-intel feed " + text("feed") + " (" + text("action") +
                              ") is talking to this node (docs/intel.md).";
                    f.fix = {remote ? "netprobe connections --ip " + util::formatAddr(*remote) + "   # which process"
                                    : "netprobe connections",
                             "feed action: block with --mitigate=on drops it at TC (docs/intel.md)"};
                }
                f.query = "netprobe events --type " + std::string(security::toString(e->type));
                f.since = e->detected_at;
                out.push_back(std::move(f));
            }
        }
    }

    // The bottleneck stage's findings that are faults, under their own names (docs/bottlenecks.md
    // has the thresholds): a full or filling conntrack table, a saturated link, qdisc drops or
    // a standing queue, socket buffers overflowing, an edge's RTT or retransmissions. Not the
    // informational top talkers, nor its listen overflows (the rule above, from the same
    // counters).
    if (views.bottlenecks) {
        for (const auto& b : views.bottlenecks->findings) {
            if (b.kind == BottleneckKind::TopTalker || b.kind == BottleneckKind::ListenOverflow || b.severity == "info")
                continue;
            Finding f;
            f.rule = toString(b.kind);
            f.subject = b.subject;
            f.severity = b.severity;
            f.title = b.title;
            f.evidence = b.evidence;
            f.cause = b.explanation;
            f.fix = b.fix;
            f.query = b.query + "; netprobe bottlenecks (GET /api/v1/bottlenecks?kind=" + f.rule + ")";
            f.since = b.since;
            out.push_back(std::move(f));
        }
    }

    // RTT or retransmission jumps on an edge: the anomaly models' open events on an edge's
    // median handshake RTT or loss ratio, above the range its own history predicts (the
    // edge's baseline, not a fixed threshold; a drop below it is no fault).
    if (views.anomaly) {
        for (const auto& ev : views.anomaly->events) {
            if (!ev.open || ev.kind != "metric" || ev.scope != "edge" || ev.features.empty()) continue;
            const bool rtt = ev.subject.ends_with("/rtt_ms"), loss = ev.subject.ends_with("/loss_ratio");
            const auto& x = ev.features.front();
            if ((!rtt && !loss) || x.observed <= x.expected_hi) continue;
            // "edge/<client>-><server>:<port>/tcp/rtt_ms" -> "<client>-><server>:<port>/tcp"
            std::string edge = ev.subject.substr(5, ev.subject.rfind('/') - 5);
            Finding f;
            f.rule = rtt ? "rtt_jump" : "retransmit_jump";
            f.subject = edge;
            const double ratio = x.expected_hi > 0 ? x.observed / x.expected_hi : 0;
            f.severity = (rtt ? ratio >= 3 : x.observed >= 0.1) ? "critical" : "warning";
            if (rtt) {
                f.title = "Round trip on " + edge + " jumped to " + fmt(x.observed) + " ms (expected " +
                          fmt(x.expected_lo) + "-" + fmt(x.expected_hi) + " ms)";
                f.evidence = {{"rtt_p50", x.observed / 1000, "seconds"},
                              {"expected_high", x.expected_hi / 1000, "seconds"},
                              {"expected_low", x.expected_lo / 1000, "seconds"}};
                f.cause = "The edge's median handshake RTT left the range its own history predicts: a longer or "
                          "congested path, a standing queue (bufferbloat), or a server answering SYNs late (a full "
                          "accept queue, CPU).";
                f.fix = {"netprobe qos --window 5m -o wide   # the edge's RTT, its server and client sides",
                         "mtr -n -c 20 SERVER   # where along the path the delay grows",
                         "tc -s qdisc show   # standing queues (backlog) on this node's interfaces"};
            } else {
                f.title = "Retransmissions on " + edge + " jumped to " + fmt(x.observed * 100) + "% of its packets "
                          "(expected at most " + fmt(x.expected_hi * 100) + "%)";
                f.evidence = {{"loss_ratio", x.observed, "ratio"}, {"expected_high", x.expected_hi, "ratio"},
                              {"expected_low", x.expected_lo, "ratio"}};
                f.cause = "The edge retransmits more than its own history predicts: loss on its path (congestion, a "
                          "lossy link, a queue or firewall dropping) that began recently.";
                f.fix = {"netprobe top retransmits   # which connections", "netprobe top drops   # drops on this host",
                         "ethtool -S IFACE | grep -iE 'drop|err'; tc -s qdisc"};
            }
            f.evidence.push_back({"intervals", static_cast<double>(ev.intervals), "intervals"});
            f.evidence.push_back({"score", ev.score, ""});
            f.query = "GET /api/v1/anomalies?scope=edge&open=true   # event " + std::to_string(ev.id) + ": " + ev.subject;
            out.push_back(std::move(f));
        }
    }

    // Tuning and capacity ahead of time: the forecasts' findings (a link reaching its
    // capacity threshold, the flow or conntrack table filling, retransmissions trending up)
    // with the lead time at the current trend.
    if (views.forecast) {
        for (const auto& ff : views.forecast->findings) {
            Finding f;
            f.rule = "capacity_forecast";
            f.subject = ff.kind + ":" + ff.subject;
            f.severity = ff.severity.empty() ? "info" : ff.severity;
            f.title = ff.message;
            const bool capacity = ff.kind == "capacity";
            f.evidence = {{"lead_time", ff.lead_seconds / 3600.0, "hours"},
                          {"current", ff.current, capacity ? "bytes/s" : ""},
                          {"threshold", ff.threshold, capacity ? "bytes/s" : ""}};
            // (a capacity finding is the forecast's bound reaching the threshold: no straight-line slope)
            if (!capacity) f.evidence.push_back({"slope", ff.slope_per_hour, "per hour"});
            if (capacity) {
                f.cause = "The link's traffic trend reaches the capacity threshold (--capacity-threshold) of its speed "
                          "within the lead time.";
                f.fix = {"netprobe top talkers   # who grows", "plan more capacity (a faster link, a bond, more nodes) "
                                                                  "before the lead time; --link-speed if the speed is wrong"};
            } else if (ff.kind == "flow_table_fill") {
                f.cause = "NetProbe's flow table fills at the current trend: flows beyond it are counted only in totals.";
                f.fix = {"--flow-table-size=262144 (default 65536)"};
            } else if (ff.kind == "conntrack_fill") {
                f.cause = "The conntrack table fills at the current trend: new connections will be dropped when it is full.";
                f.fix = {"sysctl -w net.netfilter.nf_conntrack_max=2xMAX (the initial namespace's)",
                         "shorter conntrack timeouts, notrack for stateless high-volume traffic"};
            } else {
                f.cause = "The retransmission ratio trends up: loss on a path is growing.";
                f.fix = {"netprobe top retransmits", "netprobe bottlenecks   # retransmit_hotspot edges"};
            }
            f.query = "GET /api/v1/forecast?series=" + ff.subject;
            out.push_back(std::move(f));
        }
    }

    // Keep each finding's first time while it holds.
    std::map<std::string, collector::WallTime> still;
    for (auto& f : out) {
        const std::string key = f.rule + "/" + f.subject;
        auto it = since_.find(key);
        const auto first = it != since_.end() ? it->second : (f.since != collector::WallTime{} ? f.since : s.taken_at);
        f.since = first;
        still[key] = first;
    }
    since_ = std::move(still);
    std::sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) {
        return std::tuple(rank(a.severity), a.rule, a.subject) < std::tuple(rank(b.severity), b.rule, b.subject);
    });
    auto v = std::make_shared<DiagnosisView>();
    v->findings = std::move(out);
    v->window_seconds = secs;
    v->evaluated_at = s.taken_at;
    views.diagnosis = std::move(v);
}

}  // namespace netprobe::analysis
