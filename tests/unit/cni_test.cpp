// analysis::detectCni over link listings shaped like the nodes of each plugin (names and
// kinds as `ip -d link` shows them on such nodes, from the plugins' documentation).
#include <gtest/gtest.h>

#include <netprobe/analysis/cni.hpp>

namespace {

using netprobe::analysis::CniInfo;
using netprobe::analysis::detectCni;
using netprobe::ebpf::InterfaceInfo;

std::vector<InterfaceInfo> links(std::initializer_list<std::pair<const char*, const char*>> l) {
    std::vector<InterfaceInfo> out{{.name = "lo", .index = 1, .up = true, .loopback = true, .kind = ""},
                                   {.name = "eth0", .index = 2, .up = true, .loopback = false, .kind = ""}};
    std::uint32_t i = 3;
    for (auto [n, k] : l) out.push_back({.name = n, .index = i++, .up = true, .loopback = false, .kind = k});
    return out;
}

std::pair<std::string, std::string> of(const std::vector<InterfaceInfo>& l) {
    const auto c = detectCni(l);
    return {c.name, c.overlay};
}

TEST(Cni, EachPluginAndItsOverlay) {
    using P = std::pair<std::string, std::string>;
    EXPECT_EQ(of(links({{"cilium_net", "veth"}, {"cilium_host", "veth"}, {"cilium_vxlan", "vxlan"},
                        {"lxc1a2b3c4d5e6f", "veth"}, {"lxc_health", "veth"}})),
              P("cilium", "vxlan"));
    EXPECT_EQ(of(links({{"cilium_net", "veth"}, {"cilium_host", "veth"}, {"lxc0123", "veth"}})), P("cilium", "none"));
    EXPECT_EQ(of(links({{"cilium_net", "veth"}, {"cilium_host", "veth"}, {"cilium_geneve", "geneve"}})),
              P("cilium", "geneve"));
    EXPECT_EQ(of(links({{"cilium_net", "veth"}, {"cilium_host", "veth"}, {"cilium_wg0", "wireguard"}})),
              P("cilium", "wireguard"));
    EXPECT_EQ(of(links({{"tunl0", "ipip"}, {"cali12ab34cd56e", "veth"}, {"cali9f8e7d6c5b4", "veth"}})),
              P("calico", "ipip"));
    EXPECT_EQ(of(links({{"vxlan.calico", "vxlan"}, {"cali12ab34cd56e", "veth"}})), P("calico", "vxlan"));
    EXPECT_EQ(of(links({{"wireguard.cali", "wireguard"}, {"cali12ab34cd56e", "veth"}})), P("calico", "wireguard"));
    // Calico routing with BGP, no tunnel: pods on cali veths only
    EXPECT_EQ(of(links({{"cali12ab34cd56e", "veth"}})), P("calico", "none"));
    EXPECT_EQ(of(links({{"cni0", "bridge"}, {"flannel.1", "vxlan"}, {"veth1234abcd", "veth"}})), P("flannel", "vxlan"));
    EXPECT_EQ(of(links({{"cni0", "bridge"}, {"flannel-wg", "wireguard"}})), P("flannel", "wireguard"));
    EXPECT_EQ(of(links({{"antrea-gw0", "openvswitch"}, {"antrea-tun0", "geneve"}, {"ovs-system", "openvswitch"}})),
              P("antrea", "geneve"));
    EXPECT_EQ(of(links({{"weave", "bridge"}, {"vethwe-bridge", "veth"}, {"vxlan-6784", "vxlan"}})), P("weave", "vxlan"));
    EXPECT_EQ(of(links({{"kube-bridge", "bridge"}, {"kube-dummy-if", "dummy"}, {"tunl0", "ipip"}})),
              P("kube-router", "ipip"));
    EXPECT_EQ(of(links({{"cni0", "bridge"}, {"veth1234abcd", "veth"}})), P("bridge", "none"));
    EXPECT_EQ(of(links({{"docker0", "bridge"}})), P("none", "none"));
    EXPECT_EQ(of(links({})), P("none", "none"));
}

TEST(Cni, EvidenceAndPodsAreBoundedAndPrefixesNeedVeths) {
    std::vector<std::pair<const char*, const char*>> many;
    std::vector<std::string> names;
    for (int i = 0; i < 50; ++i) names.push_back("cali" + std::to_string(100000 + i));
    std::vector<InterfaceInfo> l = links({{"vxlan.calico", "vxlan"}});
    for (const auto& n : names) l.push_back({.name = n, .index = 0, .up = true, .loopback = false, .kind = "veth"});
    const CniInfo c = detectCni(l);
    EXPECT_EQ(c.name, "calico");
    EXPECT_EQ(c.pod_interfaces, 50u);
    EXPECT_EQ(c.evidence.size(), 8u);
    EXPECT_EQ(c.evidence.front(), "vxlan.calico");
    // a bridge named like a pod prefix (LXC's lxcbr0) is not Cilium; a tunl0 of another
    // kind is not an ipip overlay
    EXPECT_EQ(of(links({{"lxcbr0", "bridge"}})), (std::pair<std::string, std::string>("none", "none")));
    EXPECT_EQ(of(links({{"cali12ab34cd56e", "veth"}, {"tunl0", "dummy"}})),
              (std::pair<std::string, std::string>("calico", "none")));
}

}  // namespace
