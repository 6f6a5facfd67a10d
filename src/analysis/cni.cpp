#include "netprobe/analysis/cni.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace netprobe::analysis {

namespace {

struct Plugin {
    std::string_view name;
    std::vector<std::string_view> devices;   // exact names that only this plugin creates
    std::vector<std::string_view> pod_prefixes;  // host ends of its pods' veths
};

bool startsWith(std::string_view s, std::string_view p) { return s.size() > p.size() && s.starts_with(p); }

}  // namespace

CniInfo detectCni(std::span<const ebpf::InterfaceInfo> links) {
    // In order of precedence: a node that ran one plugin after another keeps stale links
    // of the old one less often than the new one's own devices (checked first).
    static const std::array<Plugin, 6> kPlugins = {{
        {"cilium", {"cilium_host", "cilium_net", "cilium_vxlan", "cilium_geneve", "cilium_wg0"}, {"lxc"}},
        {"calico", {"vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali"}, {"cali"}},
        {"antrea", {"antrea-gw0", "antrea-tun0", "antrea-egress0"}, {}},
        {"weave", {"weave", "vxlan-6784", "datapath"}, {"vethwe"}},
        {"flannel", {"flannel.1", "flannel-wg", "flannel-v6.1", "flannel.ipip"}, {}},
        {"kube-router", {"kube-bridge", "kube-dummy-if"}, {}},
    }};
    auto has = [&](std::string_view n) {
        return std::any_of(links.begin(), links.end(), [&](const auto& l) { return l.name == n; });
    };
    CniInfo out;
    for (const auto& p : kPlugins) {
        std::vector<std::string> evidence;
        for (auto d : p.devices)
            if (has(d)) evidence.emplace_back(d);
        std::size_t pods = 0;
        for (const auto& l : links)
            for (auto pre : p.pod_prefixes)
                if (startsWith(l.name, pre) && (l.kind.empty() || l.kind == "veth")) {
                    ++pods;
                    if (evidence.size() < 8) evidence.push_back(l.name);
                }
        // a pod prefix alone ("cali...") needs a veth: a physical "lxcbr0" is not Cilium's
        const bool pods_say = std::any_of(links.begin(), links.end(), [&](const auto& l) {
            return l.kind == "veth" &&
                   std::any_of(p.pod_prefixes.begin(), p.pod_prefixes.end(), [&](auto pre) { return startsWith(l.name, pre); });
        });
        if (evidence.empty() || (evidence.size() == pods && !pods_say)) continue;
        out.name = std::string(p.name);
        out.pod_interfaces = pods;
        if (evidence.size() > 8) evidence.resize(8);
        out.evidence = std::move(evidence);
        break;
    }
    if (out.name == "none" && has("cni0")) {
        out.name = "bridge";
        out.evidence = {"cni0"};
    }
    // The overlay: the tunnel device of the plugin found (or any, for the bridge plugin).
    auto kindOf = [&](std::string_view n) -> std::string {
        for (const auto& l : links)
            if (l.name == n) return l.kind;
        return {};
    };
    const std::string& cni = out.name;
    if ((cni == "cilium" && has("cilium_vxlan")) || (cni == "calico" && (has("vxlan.calico") || has("vxlan-v6.calico"))) ||
        (cni == "flannel" && (has("flannel.1") || has("flannel-v6.1"))) || (cni == "weave" && has("vxlan-6784")))
        out.overlay = "vxlan";
    else if ((cni == "cilium" && has("cilium_geneve")) || (cni == "antrea" && has("antrea-tun0")))
        out.overlay = kindOf(cni == "cilium" ? "cilium_geneve" : "antrea-tun0") == "vxlan" ? "vxlan" : "geneve";
    else if ((cni == "calico" || cni == "kube-router") && has("tunl0") && kindOf("tunl0") == "ipip")
        out.overlay = "ipip";
    else if (cni == "flannel" && has("flannel.ipip"))
        out.overlay = "ipip";
    else if ((cni == "cilium" && has("cilium_wg0")) || (cni == "calico" && (has("wireguard.cali") || has("wg-v6.cali"))) ||
             (cni == "flannel" && has("flannel-wg")))
        out.overlay = "wireguard";
    return out;
}

}  // namespace netprobe::analysis
