// Bounded flow generator for bench/rss_agent.sh: sends exactly one UDP packet per
// flow, N distinct flows, out of one interface (AF_PACKET, so nothing is routed),
// paced to a packet rate so the receiving veth does not drop. Flow i is
//   SRC:(1024 + i % 60000) -> DST:(20000 + i / 60000), UDP, 60-byte frame.
// Usage: np_flowgen --dev IF --dst-mac MAC --src IP --dst IP --flows N [--pps N]
// Meant to be run inside a network namespace the benchmark created.
#include "frame_util.hpp"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "np_flowgen: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

bool parseMac(const std::string& s, std::uint8_t out[6]) {
    unsigned v[6];
    if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
    for (int i = 0; i < 6; ++i) out[i] = static_cast<std::uint8_t>(v[i]);
    return true;
}

using npbench::put16;
using npbench::ipChecksum;

}  // namespace

int main(int argc, char** argv) {
    std::string dev, dst_mac_s, src_s, dst_s;
    long flows = 0, pps = 50000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--dev") dev = v;
        else if (k == "--dst-mac") dst_mac_s = v;
        else if (k == "--src") src_s = v;
        else if (k == "--dst") dst_s = v;
        else if (k == "--flows") flows = std::strtol(v.c_str(), nullptr, 10);
        else if (k == "--pps") pps = std::strtol(v.c_str(), nullptr, 10);
        else {
            std::fprintf(stderr, "np_flowgen: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    std::uint8_t dst_mac[6], src_mac[6];
    in_addr src{}, dst{};
    if (dev.empty() || !parseMac(dst_mac_s, dst_mac) || inet_pton(AF_INET, src_s.c_str(), &src) != 1 ||
        inet_pton(AF_INET, dst_s.c_str(), &dst) != 1 || flows < 1 || flows > 60000L * 40000 || pps < 1) {
        std::fprintf(stderr,
                     "usage: np_flowgen --dev IF --dst-mac MAC --src IPv4 --dst IPv4 --flows N [--pps N]\n");
        return 2;
    }

    int fd = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: send only, receive nothing
    if (fd < 0) die("socket(AF_PACKET)");
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev.c_str());
    if (ioctl(fd, SIOCGIFINDEX, &ifr) != 0) die("interface " + dev);
    const int ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) die("hardware address of " + dev);
    std::memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    std::memcpy(sll.sll_addr, dst_mac, 6);

    constexpr std::size_t kFrame = 60, kBatch = 32;
    std::vector<std::uint8_t> frames(kFrame * kBatch);
    std::vector<iovec> iov(kBatch);
    std::vector<mmsghdr> msgs(kBatch);
    for (std::size_t b = 0; b < kBatch; ++b) {
        std::uint8_t* f = &frames[b * kFrame];
        std::memcpy(f, dst_mac, 6);
        std::memcpy(f + 6, src_mac, 6);
        put16(f + 12, 0x0800);
        std::uint8_t* ip = f + 14;
        ip[0] = 0x45;
        put16(ip + 2, kFrame - 14);
        ip[8] = 64;
        ip[9] = 17;
        std::memcpy(ip + 12, &src, 4);
        std::memcpy(ip + 16, &dst, 4);
        put16(f + 14 + 20 + 4, kFrame - 14 - 20);  // UDP length; checksum 0 (none)
        iov[b] = {f, kFrame};
        msgs[b].msg_hdr.msg_name = &sll;
        msgs[b].msg_hdr.msg_namelen = sizeof sll;
        msgs[b].msg_hdr.msg_iov = &iov[b];
        msgs[b].msg_hdr.msg_iovlen = 1;
    }

    timespec next{};
    clock_gettime(CLOCK_MONOTONIC, &next);
    const long batch_ns = static_cast<long>(1e9 * kBatch / static_cast<double>(pps));
    long sent = 0;
    for (long i = 0; i < flows;) {
        std::size_t n = 0;
        for (; n < kBatch && i < flows; ++n, ++i) {
            std::uint8_t* f = &frames[n * kFrame];
            std::uint8_t* ip = f + 14;
            put16(ip + 4, static_cast<std::uint16_t>(i));  // id
            put16(ip + 10, 0);
            put16(ip + 10, ipChecksum(ip, 20));
            put16(ip + 20, static_cast<std::uint16_t>(1024 + i % 60000));
            put16(ip + 22, static_cast<std::uint16_t>(20000 + i / 60000));
        }
        std::size_t done = 0;
        while (done < n) {
            int r = sendmmsg(fd, &msgs[done], static_cast<unsigned>(n - done), 0);
            if (r < 0) {
                if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) {
                    usleep(100);
                    continue;
                }
                die("sendmmsg");
            }
            done += static_cast<std::size_t>(r);
        }
        sent += static_cast<long>(n);
        next.tv_nsec += batch_ns;
        while (next.tv_nsec >= 1'000'000'000L) {
            next.tv_nsec -= 1'000'000'000L;
            ++next.tv_sec;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    }
    std::printf("np_flowgen: sent %ld packets (%ld flows) on %s\n", sent, flows, dev.c_str());
    ::close(fd);
    return 0;
}
