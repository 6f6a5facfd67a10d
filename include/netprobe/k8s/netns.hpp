// Network namespaces seen from the host: the host-side ends of veth pairs (and any link
// whose peer lives in another namespace), the peer's namespace id, index, name and
// addresses, read over rtnetlink without entering the namespaces
// (IFLA_LINK_NETNSID, IFLA_TARGET_NETNSID, IFA_TARGET_NETNSID), and the namespace's
// inode (what the socket-layer records carry) through RTM_GETNSID on the namespace
// files this process can see (/run/netns/*, /proc/<pid>/ns/net).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::k8s {

// Links of the calling thread's namespace with IFLA_LINK_NETNSID set (peer elsewhere),
// with their peer's name and addresses filled in when the peer namespace can be dumped.
// Pod fields are left empty.
[[nodiscard]] Result<std::vector<analysis::InterfaceLink>> listPeerLinks();

struct NetnsFile {
    std::uint32_t inode = 0;
    std::string path;  // a file that opens it (/run/netns/NAME or /proc/PID/ns/net)
    std::string name;  // NAME for /run/netns files, else empty
};
// Namespace id (as this namespace numbers its peers) -> the namespace behind it, for
// the namespaces that have an id here and a visible file. The caller's own is left out.
[[nodiscard]] std::map<std::int32_t, NetnsFile> netnsIds();

// The peer links with their netns inode/name resolved (listPeerLinks + netnsIds).
[[nodiscard]] Result<std::vector<analysis::InterfaceLink>> listPeerLinksResolved();

}  // namespace netprobe::k8s
