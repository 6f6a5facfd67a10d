#include "netprobe/ebpf/interfaces.hpp"

#include <fcntl.h>
#include <linux/gen_stats.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <functional>
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

namespace {

// The netlink messages of data: (type, message, its length) for each whose header is
// well-formed; every length is checked against what is left, so a truncated or lying
// header ends the walk and never makes us read past the buffer.
template <typename F>
void eachMessage(std::span<const std::byte> data, F&& fn) {
    std::size_t off = 0;
    while (data.size() - off >= sizeof(nlmsghdr)) {
        nlmsghdr h;
        std::memcpy(&h, data.data() + off, sizeof h);
        if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > data.size() - off) break;
        const std::byte* msg = data.data() + off;
        off += std::min<std::size_t>(NLMSG_ALIGN(h.nlmsg_len), data.size() - off);
        fn(h.nlmsg_type, msg, static_cast<std::size_t>(h.nlmsg_len));
    }
}

// The attributes of [begin, begin + len): (type, payload) for each well-formed one; a
// lying length ends the walk.
template <typename F>
void eachAttr(const std::byte* begin, std::size_t len, F&& fn) {
    std::size_t a = 0;
    while (len - a >= sizeof(rtattr)) {
        rtattr ra;
        std::memcpy(&ra, begin + a, sizeof ra);
        if (ra.rta_len < sizeof(rtattr) || ra.rta_len > len - a) break;
        fn(static_cast<unsigned>(ra.rta_type & NLA_TYPE_MASK),
           std::span<const std::byte>(begin + a + RTA_LENGTH(0), ra.rta_len - RTA_LENGTH(0)));
        a += std::min<std::size_t>(RTA_ALIGN(ra.rta_len), len - a);
    }
}

std::string attrString(std::span<const std::byte> p, std::size_t max) {
    const char* c = reinterpret_cast<const char*>(p.data());
    return std::string(c, strnlen(c, std::min(p.size(), max)));
}

}  // namespace

std::vector<LinkEvent> decodeLinkMessages(std::span<const std::byte> data) {
    std::vector<LinkEvent> events;
    eachMessage(data, [&](std::uint16_t type, const std::byte* msg, std::size_t msg_len) {
        if (type != RTM_NEWLINK && type != RTM_DELLINK) return;
        if (msg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;  // too short to be a link message
        ifinfomsg ifi;
        std::memcpy(&ifi, msg + NLMSG_HDRLEN, sizeof ifi);
        LinkEvent ev;
        ev.kind = type == RTM_DELLINK ? LinkEvent::Kind::Removed : LinkEvent::Kind::Changed;
        ev.iface.index = static_cast<std::uint32_t>(ifi.ifi_index);
        ev.iface.up = (ifi.ifi_flags & IFF_UP) != 0;
        ev.iface.loopback = (ifi.ifi_flags & IFF_LOOPBACK) != 0;
        const std::size_t a = std::min<std::size_t>(NLMSG_ALIGN(NLMSG_LENGTH(sizeof(ifinfomsg))), msg_len);
        eachAttr(msg + a, msg_len - a, [&](unsigned t, std::span<const std::byte> p) {
            if (t == IFLA_IFNAME) {
                ev.iface.name = attrString(p, p.size());
            } else if (t == IFLA_LINKINFO) {  // nested: IFLA_INFO_KIND, the link's type name
                eachAttr(p.data(), p.size(), [&](unsigned nt, std::span<const std::byte> np) {
                    if (nt == IFLA_INFO_KIND) ev.iface.kind = attrString(np, 32);
                });
            }
        });
        events.push_back(std::move(ev));
    });
    return events;
}

namespace {

// One rtnetlink dump: sends the request, hands every buffer read to `each` until the
// kernel's NLMSG_DONE; an NLMSG_ERROR answer is the dump's error.
Result<void> netlinkDump(const void* request, std::size_t len, const char* what,
                         const std::function<void(std::span<const std::byte>)>& each) {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) return std::unexpected(errnoError(errno, "netlink socket"));
    if (::send(fd.get(), request, len, 0) < 0) return std::unexpected(errnoError(errno, what));
    std::vector<std::byte> buf(1 << 16);
    for (;;) {
        const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::unexpected(errnoError(errno, what));
        }
        const std::span<const std::byte> data(buf.data(), static_cast<std::size_t>(n));
        each(data);
        // the dump ends with NLMSG_DONE (or an error) in the last message of a read
        bool done = n == 0;
        std::optional<Error> error;
        eachMessage(data, [&](std::uint16_t type, const std::byte* msg, std::size_t msg_len) {
            if (done || error) return;
            if (type == NLMSG_DONE) done = true;
            if (type == NLMSG_ERROR) {
                int err = 0;
                if (msg_len >= NLMSG_LENGTH(sizeof(nlmsgerr))) std::memcpy(&err, msg + NLMSG_HDRLEN, sizeof err);
                error = err < 0 ? errnoError(-err, what) : makeError(std::string(what) + ": error answer");
            }
        });
        if (error) return std::unexpected(*error);
        if (done) return {};
    }
}

}  // namespace

Result<std::vector<InterfaceInfo>> dumpLinks() {
    struct {
        nlmsghdr h;
        ifinfomsg i;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.i.ifi_family = AF_UNSPEC;
    std::vector<InterfaceInfo> out;
    auto r = netlinkDump(&req, sizeof req, "netlink link dump", [&](std::span<const std::byte> data) {
        for (auto& ev : decodeLinkMessages(data))
            if (ev.kind == LinkEvent::Kind::Changed) out.push_back(std::move(ev.iface));
    });
    if (!r) return std::unexpected(r.error());
    return out;
}

std::vector<QdiscInfo> decodeQdiscMessages(std::span<const std::byte> data) {
    std::vector<QdiscInfo> out;
    eachMessage(data, [&](std::uint16_t type, const std::byte* msg, std::size_t msg_len) {
        if (type != RTM_NEWQDISC || msg_len < NLMSG_LENGTH(sizeof(tcmsg))) return;
        tcmsg tc;
        std::memcpy(&tc, msg + NLMSG_HDRLEN, sizeof tc);
        QdiscInfo q;
        q.ifindex = static_cast<std::uint32_t>(tc.tcm_ifindex);
        q.handle = tc.tcm_handle;
        q.parent = tc.tcm_parent;
        const std::size_t a = std::min<std::size_t>(NLMSG_ALIGN(NLMSG_LENGTH(sizeof(tcmsg))), msg_len);
        bool stats2 = false;
        eachAttr(msg + a, msg_len - a, [&](unsigned type, std::span<const std::byte> p) {
            if (type == TCA_KIND) {
                q.kind = attrString(p, 32);
            } else if (type == TCA_STATS2) {
                stats2 = q.stats = true;
                bool pkt64 = false;
                eachAttr(p.data(), p.size(), [&](unsigned t, std::span<const std::byte> v) {
                    if (t == TCA_STATS_BASIC && v.size() >= sizeof(gnet_stats_basic)) {
                        gnet_stats_basic b;
                        std::memcpy(&b, v.data(), sizeof b);
                        q.bytes = b.bytes;
                        if (!pkt64) q.packets = b.packets;
                    } else if (t == TCA_STATS_PKT64 && v.size() >= sizeof(std::uint64_t)) {
                        std::memcpy(&q.packets, v.data(), sizeof q.packets);
                        pkt64 = true;
                    } else if (t == TCA_STATS_QUEUE && v.size() >= sizeof(gnet_stats_queue)) {
                        gnet_stats_queue s;
                        std::memcpy(&s, v.data(), sizeof s);
                        q.backlog_packets = s.qlen;
                        q.backlog_bytes = s.backlog;
                        q.drops = s.drops;
                        q.requeues = s.requeues;
                        q.overlimits = s.overlimits;
                    }
                });
            } else if (type == TCA_STATS && !stats2 && p.size() >= sizeof(tc_stats)) {
                // the older structure, for kernels that answer without TCA_STATS2
                tc_stats s;
                std::memcpy(&s, p.data(), sizeof s);
                q.stats = true;
                q.bytes = s.bytes;
                q.packets = s.packets;
                q.drops = s.drops;
                q.overlimits = s.overlimits;
                q.backlog_packets = s.qlen;
                q.backlog_bytes = s.backlog;
            }
        });
        out.push_back(std::move(q));
    });
    return out;
}

Result<std::vector<QdiscInfo>> dumpQdiscs() {
    struct {
        nlmsghdr h;
        tcmsg t;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETQDISC;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.t.tcm_family = AF_UNSPEC;
    std::vector<QdiscInfo> out;
    auto r = netlinkDump(&req, sizeof req, "netlink qdisc dump", [&](std::span<const std::byte> data) {
        auto batch = decodeQdiscMessages(data);
        out.insert(out.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    });
    if (!r) return std::unexpected(r.error());
    return out;
}

std::vector<LinkCounters> decodeLinkStatsMessages(std::span<const std::byte> data) {
    std::vector<LinkCounters> out;
    eachMessage(data, [&](std::uint16_t type, const std::byte* msg, std::size_t msg_len) {
        if (type != RTM_NEWSTATS || msg_len < NLMSG_LENGTH(sizeof(if_stats_msg))) return;
        if_stats_msg ism;
        std::memcpy(&ism, msg + NLMSG_HDRLEN, sizeof ism);
        LinkCounters c;
        c.ifindex = ism.ifindex;
        bool found = false;
        const std::size_t a = std::min<std::size_t>(NLMSG_ALIGN(NLMSG_LENGTH(sizeof(if_stats_msg))), msg_len);
        eachAttr(msg + a, msg_len - a, [&](unsigned t, std::span<const std::byte> p) {
            if (t != IFLA_STATS_LINK_64) return;
            rtnl_link_stats64 st{};
            std::memcpy(&st, p.data(), std::min(p.size(), sizeof st));
            c.rx_packets = st.rx_packets;
            c.tx_packets = st.tx_packets;
            c.rx_bytes = st.rx_bytes;
            c.tx_bytes = st.tx_bytes;
            c.rx_errors = st.rx_errors;
            c.tx_errors = st.tx_errors;
            c.rx_dropped = st.rx_dropped;
            c.tx_dropped = st.tx_dropped;
            c.multicast = st.multicast;
            c.collisions = st.collisions;
            c.rx_length_errors = st.rx_length_errors;
            c.rx_over_errors = st.rx_over_errors;
            c.rx_crc_errors = st.rx_crc_errors;
            c.rx_frame_errors = st.rx_frame_errors;
            c.rx_fifo_errors = st.rx_fifo_errors;
            c.rx_missed_errors = st.rx_missed_errors;
            c.tx_aborted_errors = st.tx_aborted_errors;
            c.tx_carrier_errors = st.tx_carrier_errors;
            c.tx_fifo_errors = st.tx_fifo_errors;
            c.tx_heartbeat_errors = st.tx_heartbeat_errors;
            c.tx_window_errors = st.tx_window_errors;
            c.rx_nohandler = st.rx_nohandler;
            found = true;
        });
        if (found) out.push_back(c);
    });
    return out;
}

Result<std::vector<LinkCounters>> dumpLinkCounters() {
    struct {
        nlmsghdr h;
        if_stats_msg s;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETSTATS;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.s.family = AF_UNSPEC;
    req.s.filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
    std::vector<LinkCounters> out;
    auto r = netlinkDump(&req, sizeof req, "netlink stats dump", [&](std::span<const std::byte> data) {
        auto batch = decodeLinkStatsMessages(data);
        out.insert(out.end(), batch.begin(), batch.end());
    });
    if (!r) return std::unexpected(r.error());
    std::sort(out.begin(), out.end(), [](const LinkCounters& a, const LinkCounters& b) { return a.ifindex < b.ifindex; });
    return out;
}

std::optional<std::uint32_t> readLinkSpeed(const std::string& name) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") return std::nullopt;
    const std::string path = "/sys/class/net/" + name + "/speed";
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    char buf[32];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);  // EINVAL when the device has no speed
    if (n <= 0) return std::nullopt;
    long v = 0;
    auto [p, ec] = std::from_chars(buf, buf + n, v);
    if (ec != std::errc() || v <= 0 || v > 100'000'000) return std::nullopt;  // -1: unknown
    return static_cast<std::uint32_t>(v);
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

std::vector<NetPrefix> decodePrefixMessages(std::span<const std::byte> data) {
    std::vector<NetPrefix> out;
    auto setAddr = [](NetPrefix& p, int family, std::span<const std::byte> a) {
        if (family == AF_INET && a.size() >= 4) {
            p.addr[10] = p.addr[11] = 0xff;
            std::memcpy(p.addr.data() + 12, a.data(), 4);
            return true;
        }
        if (family == AF_INET6 && a.size() >= 16) {
            std::memcpy(p.addr.data(), a.data(), 16);
            return true;
        }
        return false;
    };
    eachMessage(data, [&](std::uint16_t type, const std::byte* msg, std::size_t msg_len) {
        if (type == RTM_NEWADDR) {
            if (msg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
            ifaddrmsg ifa;
            std::memcpy(&ifa, msg + NLMSG_HDRLEN, sizeof ifa);
            NetPrefix p;
            p.len = ifa.ifa_prefixlen;
            p.ifindex = ifa.ifa_index;
            bool local = false, address = false;
            const std::size_t a = std::min<std::size_t>(NLMSG_ALIGN(NLMSG_LENGTH(sizeof(ifaddrmsg))), msg_len);
            NetPrefix from_address = p;
            eachAttr(msg + a, msg_len - a, [&](unsigned t, std::span<const std::byte> v) {
                // IFA_LOCAL is the interface's own address (IFA_ADDRESS: the peer's on a point-to-point link)
                if (t == IFA_LOCAL) local = setAddr(p, ifa.ifa_family, v);
                else if (t == IFA_ADDRESS) address = setAddr(from_address, ifa.ifa_family, v);
            });
            if (local) out.push_back(p);
            else if (address) out.push_back(from_address);
        } else if (type == RTM_NEWROUTE) {
            if (msg_len < NLMSG_LENGTH(sizeof(rtmsg))) return;
            rtmsg rt;
            std::memcpy(&rt, msg + NLMSG_HDRLEN, sizeof rt);
            if (rt.rtm_type != RTN_UNICAST || rt.rtm_dst_len == 0) return;
            NetPrefix p;
            p.route = true;
            p.len = rt.rtm_dst_len;
            std::uint32_t table = rt.rtm_table;
            bool dst = false;
            const std::size_t a = std::min<std::size_t>(NLMSG_ALIGN(NLMSG_LENGTH(sizeof(rtmsg))), msg_len);
            eachAttr(msg + a, msg_len - a, [&](unsigned t, std::span<const std::byte> v) {
                if (t == RTA_DST) dst = setAddr(p, rt.rtm_family, v);
                else if (t == RTA_OIF && v.size() >= 4) std::memcpy(&p.ifindex, v.data(), 4);
                else if (t == RTA_TABLE && v.size() >= 4) std::memcpy(&table, v.data(), 4);
            });
            if (dst && table == RT_TABLE_MAIN) out.push_back(p);
        }
    });
    return out;
}

Result<std::vector<NetPrefix>> dumpPrefixes() {
    std::vector<NetPrefix> out;
    auto each = [&](std::span<const std::byte> data) {
        auto batch = decodePrefixMessages(data);
        out.insert(out.end(), batch.begin(), batch.end());
    };
    struct {
        nlmsghdr h;
        ifaddrmsg a;
    } areq{};
    areq.h.nlmsg_len = sizeof areq;
    areq.h.nlmsg_type = RTM_GETADDR;
    areq.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    areq.h.nlmsg_seq = 1;
    areq.a.ifa_family = AF_UNSPEC;
    if (auto r = netlinkDump(&areq, sizeof areq, "netlink address dump", each); !r) return std::unexpected(r.error());
    struct {
        nlmsghdr h;
        rtmsg r;
    } rreq{};
    rreq.h.nlmsg_len = sizeof rreq;
    rreq.h.nlmsg_type = RTM_GETROUTE;
    rreq.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    rreq.h.nlmsg_seq = 2;
    rreq.r.rtm_family = AF_UNSPEC;
    if (auto r = netlinkDump(&rreq, sizeof rreq, "netlink route dump", each); !r) return std::unexpected(r.error());
    return out;
}

}  // namespace netprobe::ebpf
