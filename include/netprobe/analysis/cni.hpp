// netprobe::analysis - which CNI plugin wires this node's pods, told by the links it
// creates (names and kinds, from a netlink dump of the node's network namespace):
//   Cilium:  cilium_host / cilium_net, cilium_vxlan (vxlan) or cilium_geneve, cilium_wg0, pods on lxc*
//   Calico:  pods on cali*, tunl0 (ipip), vxlan.calico / vxlan-v6.calico, wireguard.cali
//   Flannel: flannel.1 (vxlan), flannel-wg (wireguard), flannel.ipip; pods on veths in cni0
//   Antrea:  antrea-gw0, antrea-tun0 (geneve by default); Weave: weave, vethwe*, vxlan-6784
//   kube-router: kube-bridge, kube-dummy-if; the plain bridge plugin: cni0 and nothing above
// Pure: the agent lists the links on its own cadence and publishes the result.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include <netprobe/ebpf/interfaces.hpp>

namespace netprobe::analysis {

struct CniInfo {
    std::string name = "none";     // cilium, calico, flannel, antrea, weave, kube-router, bridge, none
    std::string overlay = "none";  // vxlan, geneve, ipip, wireguard, none (routed, or unknown)
    std::vector<std::string> evidence;  // the links that told (at most 8)
    std::size_t pod_interfaces = 0;    // host ends of pod veths named the CNI's way (lxc*, cali*, ...)
    friend bool operator==(const CniInfo&, const CniInfo&) = default;
};

[[nodiscard]] CniInfo detectCni(std::span<const ebpf::InterfaceInfo> links);

}  // namespace netprobe::analysis
