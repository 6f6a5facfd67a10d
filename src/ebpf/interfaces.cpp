#include "netprobe/ebpf/interfaces.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
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

std::vector<LinkEvent> decodeLinkMessages(std::span<const std::byte> data) {
    std::vector<LinkEvent> events;
    // Walk the messages by hand: every length is checked against what is left, so a
    // truncated or lying header never makes us read past the buffer.
    std::size_t off = 0;
    while (data.size() - off >= sizeof(nlmsghdr)) {
        nlmsghdr h;
        std::memcpy(&h, data.data() + off, sizeof h);
        if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > data.size() - off) break;
        const std::byte* msg = data.data() + off;
        const std::size_t msg_len = h.nlmsg_len;
        off += std::min<std::size_t>(NLMSG_ALIGN(h.nlmsg_len), data.size() - off);
        if (h.nlmsg_type != RTM_NEWLINK && h.nlmsg_type != RTM_DELLINK) continue;
        if (msg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) continue;  // too short to be a link message
        ifinfomsg ifi;
        std::memcpy(&ifi, msg + NLMSG_HDRLEN, sizeof ifi);
        LinkEvent ev;
        ev.kind = h.nlmsg_type == RTM_DELLINK ? LinkEvent::Kind::Removed : LinkEvent::Kind::Changed;
        ev.iface.index = static_cast<std::uint32_t>(ifi.ifi_index);
        ev.iface.up = (ifi.ifi_flags & IFF_UP) != 0;
        ev.iface.loopback = (ifi.ifi_flags & IFF_LOOPBACK) != 0;
        // Attributes: rtattr headers, each length checked the same way.
        std::size_t a = NLMSG_LENGTH(sizeof(ifinfomsg));
        a = std::min(NLMSG_ALIGN(a), msg_len);
        while (msg_len - a >= sizeof(rtattr)) {
            rtattr ra;
            std::memcpy(&ra, msg + a, sizeof ra);
            if (ra.rta_len < sizeof(rtattr) || ra.rta_len > msg_len - a) break;
            if (ra.rta_type == IFLA_IFNAME) {
                const char* p = reinterpret_cast<const char*>(msg + a + RTA_LENGTH(0));
                const std::size_t plen = ra.rta_len - RTA_LENGTH(0);
                ev.iface.name.assign(p, strnlen(p, plen));
            } else if (ra.rta_type == IFLA_LINKINFO) {
                // nested: IFLA_INFO_KIND, the link's type name; the same length checks
                const std::byte* nest = msg + a + RTA_LENGTH(0);
                const std::size_t nlen = ra.rta_len - RTA_LENGTH(0);
                std::size_t b = 0;
                while (nlen - b >= sizeof(rtattr)) {
                    rtattr na;
                    std::memcpy(&na, nest + b, sizeof na);
                    if (na.rta_len < sizeof(rtattr) || na.rta_len > nlen - b) break;
                    if (na.rta_type == IFLA_INFO_KIND) {
                        const char* p = reinterpret_cast<const char*>(nest + b + RTA_LENGTH(0));
                        ev.iface.kind.assign(p, strnlen(p, std::min<std::size_t>(na.rta_len - RTA_LENGTH(0), 32)));
                    }
                    b += std::min<std::size_t>(RTA_ALIGN(na.rta_len), nlen - b);
                }
            }
            a += std::min<std::size_t>(RTA_ALIGN(ra.rta_len), msg_len - a);
        }
        events.push_back(std::move(ev));
    }
    return events;
}

Result<std::vector<InterfaceInfo>> dumpLinks() {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) return std::unexpected(errnoError(errno, "netlink socket"));
    struct {
        nlmsghdr h;
        ifinfomsg i;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.i.ifi_family = AF_UNSPEC;
    if (::send(fd.get(), &req, sizeof req, 0) < 0) return std::unexpected(errnoError(errno, "netlink link dump"));
    std::vector<InterfaceInfo> out;
    std::vector<std::byte> buf(1 << 16);
    for (;;) {
        const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::unexpected(errnoError(errno, "netlink link dump"));
        }
        const std::span<const std::byte> data(buf.data(), static_cast<std::size_t>(n));
        for (auto& ev : decodeLinkMessages(data))
            if (ev.kind == LinkEvent::Kind::Changed) out.push_back(std::move(ev.iface));
        // the dump ends with NLMSG_DONE (or an error) in the last message of a read
        bool done = n == 0;
        for (std::size_t off = 0; !done && data.size() - off >= sizeof(nlmsghdr);) {
            nlmsghdr h;
            std::memcpy(&h, data.data() + off, sizeof h);
            if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > data.size() - off) break;
            if (h.nlmsg_type == NLMSG_DONE) done = true;
            if (h.nlmsg_type == NLMSG_ERROR) return std::unexpected(makeError("netlink link dump: error answer"));
            off += std::min<std::size_t>(NLMSG_ALIGN(h.nlmsg_len), data.size() - off);
        }
        if (done) return out;
    }
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
        auto batch = decodeLinkMessages(std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf),
                                                                   static_cast<std::size_t>(n)));
        events.insert(events.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    }
    return events;
}

}  // namespace netprobe::ebpf
