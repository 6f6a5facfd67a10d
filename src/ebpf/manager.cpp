#include "netprobe/ebpf/manager.hpp"

#include <net/if.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "ebpf/attach.hpp"
#include "ebpf/datapath.hpp"
#include "netprobe/util/logging.hpp"

namespace netprobe::ebpf {

const char* toString(XdpMode m) {
    switch (m) {
        case XdpMode::Auto: return "auto";
        case XdpMode::Native: return "native";
        case XdpMode::Generic: return "generic";
        case XdpMode::Off: return "off";
    }
    return "?";
}

const char* toString(TcMode m) {
    switch (m) {
        case TcMode::Auto: return "auto";
        case TcMode::Tcx: return "tcx";
        case TcMode::Clsact: return "clsact";
    }
    return "?";
}

const char* protoClassName(int cls) {
    static constexpr const char* names[NP_PROTO_MAX] = {
        "ipv4", "ipv6", "arp", "other_l3", "tcp", "udp", "icmp", "icmpv6", "other_l4", "vlan", "mpls", "fragment",
    };
    return cls >= 0 && cls < NP_PROTO_MAX ? names[cls] : "unknown";
}

const char* malformedReasonName(int reason) {
    static constexpr const char* names[NP_MAL_REASON_MAX] = {
        "none",
        "truncated_ethernet",
        "truncated_vlan",
        "too_many_vlan_tags",
        "truncated_mpls",
        "mpls_stack_too_deep",
        "mpls_unknown_payload",
        "truncated_ipv4",
        "ipv4_bad_ihl",
        "ipv4_bad_length",
        "ipv4_bad_version",
        "truncated_ipv6",
        "ipv6_bad_length",
        "ipv6_bad_version",
        "truncated_ipv6_ext",
        "ipv6_ext_chain_too_long",
        "truncated_tcp",
        "tcp_bad_data_offset",
        "truncated_udp",
        "udp_bad_length",
        "truncated_icmp",
    };
    return reason >= 0 && reason < NP_MAL_REASON_MAX ? names[reason] : "unknown";
}

const char* mapName(int map_id) {
    static constexpr const char* names[NP_MAP_ID_MAX] = {"tc_device_stats", "flow_stats", "frag_track",
                                                         "xdp_device_stats", "icmp_stats", "security_events", "host_stats",
                                                         "security_flow_seen", "name_events",
                                                         "tcp_handshakes", "handshake_events", "udp_timing"};
    return map_id >= 0 && map_id < NP_MAP_ID_MAX ? names[map_id] : "unknown";
}

const char* directionName(int dir) { return dir == NP_DIR_EGRESS ? "egress" : "ingress"; }

namespace {
constexpr const char* kEncapNames[NP_ENCAP_MAX] = {"none", "vxlan", "geneve", "ipip", "ip6ip6", "6in4", "4in6", "gre"};
}  // namespace

const char* encapName(int encap) { return encap >= 0 && encap < NP_ENCAP_MAX ? kEncapNames[encap] : "unknown"; }

std::optional<std::uint8_t> parseEncap(std::string_view name) {
    for (int e = 0; e < NP_ENCAP_MAX; ++e)
        if (name == kEncapNames[e]) return static_cast<std::uint8_t>(e);
    return std::nullopt;
}

namespace {
// Feature state discovered on first use: the kernel either has tcx or not.
enum class Tri { Unknown, Yes, No };

// Physical devices have a "device" link in sysfs; veth, bridges, macvlan... do not.
bool isVirtualDevice(const std::string& name) {
    std::error_code ec;
    return !std::filesystem::exists("/sys/class/net/" + name + "/device", ec);
}

enum class Framing { Ethernet, Layer3 };

// How the device's packets start, from its link type (include/uapi/linux/if_arp.h).
// Ethernet (and loopback, which carries a zeroed Ethernet header): the datapath
// parses from the Ethernet header. Layer-3 devices hand the stack bare IP packets
// with skb->protocol set: tun, WireGuard and other ARPHRD_NONE devices, ipip, ip6tnl,
// sit, GRE (layer-3 mode), PPP and raw-IP modems; they get the layer-3 TC programs.
// Anything else (InfiniBand, CAN, 802.11 monitor...) is refused.
Result<Framing> linkFraming(const std::string& name) {
    std::ifstream f("/sys/class/net/" + name + "/type");
    int type = -1;
    if (!(f >> type)) return std::unexpected(makeError("cannot read link type of \"" + name + "\""));
    switch (type) {
        case 1:    // ARPHRD_ETHER
        case 772:  // ARPHRD_LOOPBACK
            return Framing::Ethernet;
        case 65534:  // ARPHRD_NONE: tun, WireGuard
        case 768:    // ARPHRD_TUNNEL: ipip
        case 769:    // ARPHRD_TUNNEL6: ip6tnl
        case 776:    // ARPHRD_SIT
        case 778:    // ARPHRD_IPGRE
        case 823:    // ARPHRD_IP6GRE
        case 512:    // ARPHRD_PPP
        case 519:    // ARPHRD_RAWIP
            return Framing::Layer3;
        default:
            return std::unexpected(makeError("interface \"" + name + "\" has link type " + std::to_string(type) +
                                             ": neither Ethernet nor a layer-3 (IP) device; not monitored"));
    }
}
}  // namespace

struct Manager::Impl {
    struct Iface {
        AttachInfo info;
        std::optional<ClsactQdisc> qdisc;  // clsact mode only; destroyed after the filters
        std::optional<XdpAttachment> xdp;
        TcAttachment tc_in;
        TcAttachment tc_eg;
    };

    ManagerOptions opts;
    Datapath dp;
    mutable std::mutex mu;
    std::map<std::uint32_t, Iface> ifaces;
    Tri tcx_supported = Tri::Unknown;
    // Interfaces whose device counters could not be reset on detach: retried before
    // every read (a reused ifindex must not inherit them); guarded by mu.
    mutable std::set<std::uint32_t> forget_pending;
    mutable std::uint64_t forget_failures = 0;

    // Resets the interface's counters; a failure is logged (once per interface),
    // counted, and retried by retryForget().
    void forget(std::uint32_t ifindex) const {
        if (auto r = dp.forgetDevice(ifindex); !r) {
            ++forget_failures;
            if (forget_pending.insert(ifindex).second)
                spdlog::warn("ifindex {}: reset of its counters failed, retrying: {}", ifindex, r.error().what());
            return;
        }
        forget_pending.erase(ifindex);
    }
    void retryForget() const {
        for (auto idx : std::vector<std::uint32_t>(forget_pending.begin(), forget_pending.end()))
            if (!ifaces.contains(idx)) forget(idx);
    }

    // block: no XDP program on the interface: the ingress program enforces the blocklist.
    Result<Iface> attachTc(std::uint32_t ifindex, Iface iface, bool l3, bool block) {
        if (l3)
            if (auto r = dp.loadLayer3(); !r) return std::unexpected(r.error());
        TcMode mode = opts.tc_mode;
        if (mode == TcMode::Auto && tcx_supported != Tri::No) {
            auto in = TcAttachment::attach(dp.tcIngressProg(l3, block), ifindex, true, TcMode::Tcx);
            if (in) {
                auto eg = TcAttachment::attach(dp.tcEgressProg(l3), ifindex, false, TcMode::Tcx);
                if (!eg) return std::unexpected(eg.error());
                tcx_supported = Tri::Yes;
                iface.tc_in = std::move(*in);
                iface.tc_eg = std::move(*eg);
                iface.info.tc = "tcx";
                return iface;
            }
            if (in.error().code != EINVAL && in.error().code != EOPNOTSUPP) return std::unexpected(in.error());
            tcx_supported = Tri::No;
            spdlog::info("tcx links not supported by this kernel ({}); using clsact", in.error().what());
        }
        if (mode == TcMode::Tcx) {
            auto in = TcAttachment::attach(dp.tcIngressProg(l3, block), ifindex, true, TcMode::Tcx);
            if (!in) return std::unexpected(in.error());
            auto eg = TcAttachment::attach(dp.tcEgressProg(l3), ifindex, false, TcMode::Tcx);
            if (!eg) return std::unexpected(eg.error());
            iface.tc_in = std::move(*in);
            iface.tc_eg = std::move(*eg);
            iface.info.tc = "tcx";
            return iface;
        }
        auto q = ClsactQdisc::ensure(ifindex);
        if (!q) return std::unexpected(q.error());
        iface.qdisc.emplace(std::move(*q));
        auto in = TcAttachment::attach(dp.tcIngressProg(l3, block), ifindex, true, TcMode::Clsact);
        if (!in) return std::unexpected(in.error());
        auto eg = TcAttachment::attach(dp.tcEgressProg(l3), ifindex, false, TcMode::Clsact);
        if (!eg) return std::unexpected(eg.error());
        iface.tc_in = std::move(*in);
        iface.tc_eg = std::move(*eg);
        iface.info.tc = "clsact";
        return iface;
    }

    void attachXdp(std::uint32_t ifindex, Iface& iface) {
        if (opts.xdp_mode == XdpMode::Off) {
            iface.info.xdp = "off";
            return;
        }
        std::vector<XdpMode> tries;
        if (opts.xdp_mode == XdpMode::Auto) {
            // Auto: native XDP where a physical device's driver has it; elsewhere TC alone
            // (it sees the same packets; its ingress program enforces the blocklist). On a
            // veth, native XDP turns the peer's TSO off (TCP over it fell to 0.30x), and
            // generic XDP copies every non-linear skb into a linear one: a bare XDP_PASS
            // program in generic mode costs 10-15% of TCP throughput (docs/benchmarks.md).
            if (isVirtualDevice(iface.info.ifname)) {
                iface.info.xdp = "off";
                return;
            }
            tries = {XdpMode::Native};
        } else {
            tries = {opts.xdp_mode};
        }
        std::string why;
        for (auto m : tries) {
            auto a = XdpAttachment::attach(dp.xdpProg(), ifindex, m);
            if (a) {
                iface.xdp.emplace(std::move(*a));
                iface.info.xdp = toString(m);
                return;
            }
            if (!why.empty()) why += "; ";
            why += a.error().what();
        }
        // XDP is an extra vantage point; TC still counts everything, so go on.
        if (opts.xdp_mode == XdpMode::Auto) {
            iface.info.xdp = "off";
            spdlog::info("{}: no native XDP ({}); TC only", iface.info.ifname, why);
            return;
        }
        iface.info.xdp = "failed: " + why;
        spdlog::warn("{}: XDP not attached ({}); TC counters unaffected", iface.info.ifname, why);
    }
};

Manager::Manager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Manager::~Manager() { detachAll(); }

Result<std::unique_ptr<Manager>> Manager::create(ManagerOptions options) {
    util::routeLibbpfLogs();  // libbpf speaks through the one logger
    auto impl = std::make_unique<Impl>();
    impl->opts = options;
    auto dp = Datapath::load(
        {options.flow_table_size, options.enable_flows, options.enable_security, options.mitigate, options.enable_intel,
         options.enable_names, options.enable_decap, options.enable_handshakes, options.enable_udp_timing});
    if (!dp) return std::unexpected(dp.error());
    impl->dp = std::move(*dp);
    return std::unique_ptr<Manager>(new Manager(std::move(impl)));
}

Result<AttachInfo> Manager::attachNetworkMonitor(std::string_view ifname) {
    std::string name(ifname);
    unsigned idx = if_nametoindex(name.c_str());
    if (idx == 0) return std::unexpected(makeError("unknown interface \"" + name + "\""));
    std::lock_guard lock(impl_->mu);
    if (auto it = impl_->ifaces.find(idx); it != impl_->ifaces.end()) return it->second.info;
    auto framing = linkFraming(name);
    if (!framing) return std::unexpected(framing.error());
    const bool l3 = *framing == Framing::Layer3;

    if (int n = removeLeftovers(idx); n > 0)
        spdlog::info("{}: removed {} program(s) left by a previous agent", name, n);

    Impl::Iface iface;
    iface.info.ifname = name;
    iface.info.ifindex = idx;
    iface.info.layer3 = l3;
    if (l3) {
        // XDP (receive counters, the blocklist) parses Ethernet frames: TC alone here.
        iface.info.xdp = "off";
    } else {
        impl_->attachXdp(idx, iface);
    }
    const bool tc_blocks = !iface.xdp.has_value();
    auto tc = impl_->attachTc(idx, std::move(iface), l3, tc_blocks);
    if (!tc) return std::unexpected(makeError("attach TC to " + name + ": " + tc.error().what()));
    spdlog::info("{} (ifindex {}): attached tc={} xdp={}{}", name, idx, tc->info.tc, tc->info.xdp,
                 l3 ? " (layer-3 device: no link-layer header, XDP not used)" : "");
    auto info = tc->info;
    impl_->ifaces.emplace(idx, std::move(*tc));
    return info;
}

Result<void> Manager::detachNetworkMonitor(std::string_view ifname) {
    std::lock_guard lock(impl_->mu);
    for (auto it = impl_->ifaces.begin(); it != impl_->ifaces.end(); ++it) {
        if (it->second.info.ifname == ifname) {
            auto idx = it->first;
            impl_->ifaces.erase(it);
            impl_->forget(idx);
            spdlog::info("{} (ifindex {}): detached", std::string(ifname), idx);
            return {};
        }
    }
    return std::unexpected(makeError("interface \"" + std::string(ifname) + "\" is not monitored"));
}

void Manager::forgetInterface(std::uint32_t ifindex) {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->ifaces.find(ifindex);
    if (it == impl_->ifaces.end()) return;
    spdlog::info("{} (ifindex {}): gone, forgetting it", it->second.info.ifname, ifindex);
    impl_->ifaces.erase(it);
    impl_->forget(ifindex);
}

void Manager::detachAll() {
    if (!impl_) return;
    std::lock_guard lock(impl_->mu);
    for (auto& [idx, _] : impl_->ifaces) impl_->forget(idx);
    impl_->ifaces.clear();
}

std::vector<AttachInfo> Manager::attachments() const {
    std::lock_guard lock(impl_->mu);
    std::vector<AttachInfo> out;
    for (const auto& [_, i] : impl_->ifaces) out.push_back(i.info);
    return out;
}

bool Manager::isAttached(std::uint32_t ifindex) const {
    std::lock_guard lock(impl_->mu);
    return impl_->ifaces.contains(ifindex);
}

Result<NetworkStats> Manager::getNetworkStats() const {
    std::uint64_t failures = 0;
    {
        std::lock_guard lock(impl_->mu);
        impl_->retryForget();
        failures = impl_->forget_failures;
    }
    auto s = impl_->dp.readStats();
    if (s) s->device_reset_failures = failures;
    return s;
}

Result<std::size_t> Manager::drainHandshakes(std::vector<HandshakeSample>& out) {
    return impl_->dp.drainHandshakes(out);
}

Result<std::size_t> Manager::readUdpTimings(std::vector<UdpTimingSample>& out, std::uint64_t since_ns) const {
    return impl_->dp.readUdpTimings(out, since_ns);
}

Result<std::size_t> Manager::readFlows(std::vector<FlowEntry>& out) const { return impl_->dp.readFlows(out); }

Result<std::size_t> Manager::forEachFlow(const std::function<void(const FlowEntry&)>& fn) const {
    return ebpf::forEachFlow(impl_->dp.flowMap(), fn);
}

Result<RemovedFlow> Manager::removeFlow(const flow_key& key) { return impl_->dp.removeFlow(key); }

void Manager::setFlowPressure(bool on) { impl_->dp.setFlowPressure(on); }
std::uint32_t Manager::flowTableCapacity() const { return impl_->dp.flowCapacity(); }

Result<UniqueFd> Manager::mapFd(DatapathMap which) const { return impl_->dp.mapFd(which); }

const ManagerOptions& Manager::options() const { return impl_->opts; }

}  // namespace netprobe::ebpf
