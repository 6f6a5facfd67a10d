#include <netprobe/k8s/netns.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <unordered_map>

namespace netprobe::k8s {

namespace {

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif
#ifndef IFA_TARGET_NETNSID
#define IFA_TARGET_NETNSID 10
#endif
#ifndef IFLA_TARGET_NETNSID
#define IFLA_TARGET_NETNSID IFLA_IF_NETNSID
#endif

class NlSocket {
public:
    NlSocket() {
        fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd_ < 0) return;
        int one = 1;
        // strict checking: dump requests may carry a target namespace (IFA_TARGET_NETNSID)
        ::setsockopt(fd_, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
        timeval tv{2, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~NlSocket() {
        if (fd_ >= 0) ::close(fd_);
    }
    NlSocket(const NlSocket&) = delete;
    NlSocket& operator=(const NlSocket&) = delete;
    [[nodiscard]] bool ok() const { return fd_ >= 0; }

    // Sends one request and calls on_msg for every answer until NLMSG_DONE (dumps) or
    // the first answer (plain requests). Returns 0 or a positive errno.
    int request(std::vector<char>& req, const std::function<void(const nlmsghdr*)>& on_msg) {
        auto* h = reinterpret_cast<nlmsghdr*>(req.data());
        h->nlmsg_len = static_cast<std::uint32_t>(req.size());
        h->nlmsg_seq = ++seq_;
        const bool dump = (h->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
        sockaddr_nl sa{};
        sa.nl_family = AF_NETLINK;
        if (::sendto(fd_, req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) return errno;
        std::vector<char> buf(64 * 1024);
        for (;;) {
            ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno;
            }
            auto len = static_cast<std::uint32_t>(n);
            for (auto* m = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
                if (m->nlmsg_seq != seq_) continue;
                if (m->nlmsg_type == NLMSG_DONE) return 0;
                if (m->nlmsg_type == NLMSG_ERROR) {
                    auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(m));
                    if (e->error == 0 && !dump) return 0;
                    return e->error ? -e->error : 0;
                }
                on_msg(m);
                if (!dump) return 0;
            }
        }
    }

private:
    int fd_ = -1;
    std::uint32_t seq_ = 0;
};

template <class T>
std::vector<char> message(std::uint16_t type, std::uint16_t flags, const T& body) {
    std::vector<char> req(NLMSG_SPACE(sizeof(T)), 0);
    auto* h = reinterpret_cast<nlmsghdr*>(req.data());
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
    std::memcpy(NLMSG_DATA(h), &body, sizeof(T));
    return req;
}

void addAttr(std::vector<char>& req, std::uint16_t type, const void* data, std::size_t len) {
    const std::size_t off = NLMSG_ALIGN(req.size());
    req.resize(off + RTA_SPACE(len), 0);
    auto* rta = reinterpret_cast<rtattr*>(req.data() + off);
    rta->rta_type = type;
    rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
}

// Attributes of a message body starting at `start`.
std::unordered_map<std::uint16_t, const rtattr*> attrs(const rtattr* start, int len) {
    std::unordered_map<std::uint16_t, const rtattr*> out;
    for (auto* a = start; RTA_OK(a, len); a = RTA_NEXT(a, len)) out.emplace(a->rta_type & NLA_TYPE_MASK, a);
    return out;
}

template <class T>
T attrValue(const rtattr* a) {
    T v{};
    std::memcpy(&v, RTA_DATA(a), std::min<std::size_t>(sizeof v, RTA_PAYLOAD(a)));
    return v;
}

std::string attrString(const rtattr* a) {
    const char* p = static_cast<const char*>(RTA_DATA(a));
    return std::string(p, strnlen(p, RTA_PAYLOAD(a)));
}

struct LinkRow {
    std::uint32_t index = 0;
    std::string name, kind;
    std::int32_t link_netnsid = -1;
    std::uint32_t link = 0;
};

// RTM_GETLINK dump of our namespace, or of the namespace with id target (>= 0).
int dumpLinks(NlSocket& nl, std::int32_t target, std::vector<LinkRow>& out) {
    ifinfomsg ifi{};
    auto req = message(RTM_GETLINK, NLM_F_DUMP, ifi);
    if (target >= 0) addAttr(req, IFLA_TARGET_NETNSID, &target, sizeof target);
    return nl.request(req, [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWLINK) return;
        auto* ifm = static_cast<const ifinfomsg*>(NLMSG_DATA(m));
        auto a = attrs(IFLA_RTA(ifm), static_cast<int>(IFLA_PAYLOAD(m)));
        LinkRow r;
        r.index = static_cast<std::uint32_t>(ifm->ifi_index);
        if (auto it = a.find(IFLA_IFNAME); it != a.end()) r.name = attrString(it->second);
        if (auto it = a.find(IFLA_LINK_NETNSID); it != a.end()) r.link_netnsid = attrValue<std::int32_t>(it->second);
        if (auto it = a.find(IFLA_LINK); it != a.end()) r.link = attrValue<std::uint32_t>(it->second);
        if (auto it = a.find(IFLA_LINKINFO); it != a.end()) {
            auto info = attrs(static_cast<const rtattr*>(RTA_DATA(it->second)), static_cast<int>(RTA_PAYLOAD(it->second)));
            if (auto k = info.find(IFLA_INFO_KIND); k != info.end()) r.kind = attrString(k->second);
        }
        out.push_back(std::move(r));
    });
}

// RTM_GETADDR dump of the namespace with id target: ifindex -> addresses (IPv4 IPv4-mapped).
int dumpAddresses(NlSocket& nl, std::int32_t target, std::map<std::uint32_t, std::vector<util::Addr16>>& out) {
    ifaddrmsg ifa{};
    auto req = message(RTM_GETADDR, NLM_F_DUMP, ifa);
    addAttr(req, IFA_TARGET_NETNSID, &target, sizeof target);
    return nl.request(req, [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWADDR) return;
        auto* am = static_cast<const ifaddrmsg*>(NLMSG_DATA(m));
        auto a = attrs(IFA_RTA(am), static_cast<int>(IFA_PAYLOAD(m)));
        auto it = a.find(IFA_LOCAL);
        if (it == a.end()) it = a.find(IFA_ADDRESS);
        if (it == a.end()) return;
        util::Addr16 addr{};
        if (am->ifa_family == AF_INET && RTA_PAYLOAD(it->second) == 4) {
            addr[10] = addr[11] = 0xff;
            std::memcpy(addr.data() + 12, RTA_DATA(it->second), 4);
        } else if (am->ifa_family == AF_INET6 && RTA_PAYLOAD(it->second) == 16) {
            std::memcpy(addr.data(), RTA_DATA(it->second), 16);
        } else {
            return;
        }
        out[am->ifa_index].push_back(addr);
    });
}

// The id our namespace gives the namespace behind fd; -1 when none is assigned.
std::int32_t nsidOfFd(NlSocket& nl, int fd) {
    rtgenmsg g{};
    g.rtgen_family = AF_UNSPEC;
    auto req = message(RTM_GETNSID, 0, g);
    std::uint32_t ufd = static_cast<std::uint32_t>(fd);
    addAttr(req, NETNSA_FD, &ufd, sizeof ufd);
    std::int32_t id = -1;
    nl.request(req, [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWNSID) return;
        const auto* g2 = static_cast<const rtgenmsg*>(NLMSG_DATA(m));
        const auto* start = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(g2) + NLMSG_ALIGN(sizeof(rtgenmsg)));
        int len = static_cast<int>(m->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(rtgenmsg))));
        auto a = attrs(start, len);
        if (auto it = a.find(NETNSA_NSID); it != a.end()) id = attrValue<std::int32_t>(it->second);
    });
    return id;
}

std::uint32_t inodeOf(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return static_cast<std::uint32_t>(st.st_ino);
}

}  // namespace

Result<std::vector<analysis::InterfaceLink>> listPeerLinks() {
    NlSocket nl;
    if (!nl.ok()) return std::unexpected(errnoError(errno, "netlink socket"));
    std::vector<LinkRow> rows;
    if (int e = dumpLinks(nl, -1, rows); e) return std::unexpected(errnoError(e, "dump links"));
    std::vector<analysis::InterfaceLink> out;
    std::set<std::int32_t> ids;
    for (const auto& r : rows) {
        if (r.link_netnsid < 0) continue;
        analysis::InterfaceLink l;
        l.ifindex = r.index;
        l.name = r.name;
        l.kind = r.kind;
        l.link_netnsid = r.link_netnsid;
        l.peer_ifindex = r.link;
        out.push_back(std::move(l));
        ids.insert(r.link_netnsid);
    }
    // One dump per peer namespace: names and addresses of its links.
    for (auto id : ids) {
        std::vector<LinkRow> peers;
        std::map<std::uint32_t, std::vector<util::Addr16>> addrs;
        const bool links_ok = dumpLinks(nl, id, peers) == 0;
        const bool addrs_ok = dumpAddresses(nl, id, addrs) == 0;
        for (auto& l : out) {
            if (l.link_netnsid != id) continue;
            if (links_ok)
                for (const auto& p : peers)
                    if (p.index == l.peer_ifindex) l.peer_name = p.name;
            if (addrs_ok)
                if (auto it = addrs.find(l.peer_ifindex); it != addrs.end()) l.peer_addresses = it->second;
        }
    }
    return out;
}

std::map<std::int32_t, NetnsFile> netnsIds() {
    std::map<std::int32_t, NetnsFile> out;
    NlSocket nl;
    if (!nl.ok()) return out;
    const std::uint32_t self = inodeOf("/proc/self/ns/net");
    std::map<std::uint32_t, NetnsFile> files;  // by inode: named files first
    for (const char* dir : {"/run/netns", "/var/run/netns"}) {
        if (DIR* d = ::opendir(dir)) {
            while (auto* e = ::readdir(d)) {
                if (e->d_name[0] == '.') continue;
                std::string path = std::string(dir) + "/" + e->d_name;
                if (auto ino = inodeOf(path); ino && ino != self) files.emplace(ino, NetnsFile{ino, path, e->d_name});
            }
            ::closedir(d);
        }
    }
    if (DIR* d = ::opendir("/proc")) {
        while (auto* e = ::readdir(d)) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
            std::string path = std::string("/proc/") + e->d_name + "/ns/net";
            if (auto ino = inodeOf(path); ino && ino != self) files.emplace(ino, NetnsFile{ino, path, ""});
        }
        ::closedir(d);
    }
    for (const auto& [ino, f] : files) {
        int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        // open() may have raced with the namespace's end or a pid's reuse: check again
        struct stat st{};
        const bool same = ::fstat(fd, &st) == 0 && static_cast<std::uint32_t>(st.st_ino) == ino;
        std::int32_t id = same ? nsidOfFd(nl, fd) : -1;
        ::close(fd);
        if (id >= 0) out.emplace(id, f);
    }
    return out;
}

Result<std::vector<analysis::InterfaceLink>> listPeerLinksResolved() {
    auto links = listPeerLinks();
    if (!links || links->empty()) return links;
    auto ids = netnsIds();
    for (auto& l : *links) {
        if (auto it = ids.find(l.link_netnsid); it != ids.end()) {
            l.peer_netns_inode = it->second.inode;
            l.peer_netns_name = it->second.name;
        }
    }
    return links;
}

}  // namespace netprobe::k8s
