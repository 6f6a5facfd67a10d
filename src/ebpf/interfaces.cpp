#include "netprobe/ebpf/interfaces.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "netprobe/util/fd.hpp"

namespace netprobe::ebpf {

using util::UniqueFd;

Result<std::vector<InterfaceInfo>> listInterfaces() {
    struct if_nameindex* list = if_nameindex();
    if (!list) return std::unexpected(errnoError(errno, "list interfaces"));
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) {
        if_freenameindex(list);
        return std::unexpected(errnoError(errno, "socket"));
    }
    std::vector<InterfaceInfo> out;
    for (auto* p = list; p->if_index != 0; ++p) {
        InterfaceInfo i;
        i.name = p->if_name;
        i.index = p->if_index;
        ifreq req{};
        std::strncpy(req.ifr_name, p->if_name, IFNAMSIZ - 1);
        if (ioctl(sock.get(), SIOCGIFFLAGS, &req) == 0) {
            i.up = (req.ifr_flags & IFF_UP) != 0;
            i.loopback = (req.ifr_flags & IFF_LOOPBACK) != 0;
        }
        out.push_back(std::move(i));
    }
    if_freenameindex(list);
    return out;
}

Result<LinkWatcher> LinkWatcher::open() {
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0) return std::unexpected(errnoError(errno, "netlink socket"));
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        int e = errno;
        ::close(fd);
        return std::unexpected(errnoError(e, "bind netlink socket"));
    }
    LinkWatcher w;
    w.fd_ = fd;
    return w;
}

LinkWatcher::LinkWatcher(LinkWatcher&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
LinkWatcher& LinkWatcher::operator=(LinkWatcher&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
}
LinkWatcher::~LinkWatcher() {
    if (fd_ >= 0) ::close(fd_);
}

Result<std::vector<LinkEvent>> LinkWatcher::poll(std::chrono::milliseconds timeout) {
    std::vector<LinkEvent> events;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r < 0) {
        if (errno == EINTR) return events;
        return std::unexpected(errnoError(errno, "poll netlink"));
    }
    if (r == 0) return events;
    alignas(nlmsghdr) char buf[16384];
    for (;;) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            if (errno == ENOBUFS) {
                // Overrun: the caller must resynchronise; report it as an error.
                return std::unexpected(errnoError(errno, "netlink overrun"));
            }
            return std::unexpected(errnoError(errno, "recv netlink"));
        }
        int len = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(len));
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) continue;
            auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
            LinkEvent ev;
            ev.kind = h->nlmsg_type == RTM_DELLINK ? LinkEvent::Kind::Removed : LinkEvent::Kind::Changed;
            ev.iface.index = static_cast<std::uint32_t>(ifi->ifi_index);
            ev.iface.up = (ifi->ifi_flags & IFF_UP) != 0;
            ev.iface.loopback = (ifi->ifi_flags & IFF_LOOPBACK) != 0;
            int alen = static_cast<int>(IFLA_PAYLOAD(h));
            for (auto* a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
                if (a->rta_type == IFLA_IFNAME)
                    ev.iface.name.assign(static_cast<const char*>(RTA_DATA(a)),
                                         strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
            }
            events.push_back(std::move(ev));
        }
    }
    return events;
}

}  // namespace netprobe::ebpf
