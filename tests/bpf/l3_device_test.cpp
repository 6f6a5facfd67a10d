// The layer-3 TC programs (netprobe_tc_in_l3, netprobe_tc_eg_l3) on a real TUN device,
// loaded as the agent loads them: a second object (datapath_l3) sharing the maps of
// the datapath object (ebpf::shareMaps), whose maps these cases read.
//
// layer-3 devices (tun, WireGuard, ipip, GRE, sit, PPP) hand the stack packets with
// no link-layer header and skb->protocol set by the device. BPF_PROG_TEST_RUN cannot
// build such an skb (it always pushes an Ethernet header for SCHED_CLS), so these
// cases write packets into a TUN device whose packet-information header (struct
// tun_pi) sets skb->protocol, exactly as ipip or WireGuard would, and read what the
// programs counted. Egress: datagrams the stack routes into the TUN, read back from
// its fd (what the kernel really emitted is the oracle for the bytes).
//
// Everything lives in a network namespace of this test process (unshare; the
// original namespace is restored at the end), so the device, its qdisc and filters
// vanish with the process even if it crashes.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "datapath_support.hpp"  // netprobe/abi.h first: the skeletons name its structs
#include "datapath_l3.skel.h"
#include "ebpf/datapath.hpp"

namespace {

using namespace netprobe::datapath_test;
using namespace std::chrono_literals;

constexpr const char* kTun = "nptun0";
constexpr const char* kLocal4 = "198.18.7.1";
constexpr const char* kPeer4 = "198.18.7.2";

struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

bool writeFile(const std::string& path, const std::string& value)
{
    std::ofstream f(path);
    f << value;
    return static_cast<bool>(f.flush());
}

Bytes withoutEthernet(const Bytes& frame) { return Bytes(frame.begin() + 14, frame.end()); }

class L3Device : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        if (geteuid() != 0)
            return;
        orig_ns_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (orig_ns_ < 0 || ::unshare(CLONE_NEWNET) != 0) {
            setup_error_ = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
            return;
        }
        // No IPv6 autoconfiguration noise (router solicitations) on the device.
        writeFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
        int err = 0;
        skel_ = loadSkeleton({}, err);
        if (!skel_) {
            setup_error_ = std::string("datapath skeleton: ") + std::strerror(-err);
            return;
        }
        l3_.reset(datapath_l3_bpf__open());
        if (!l3_) {
            setup_error_ = std::string("datapath_l3 open: ") + std::strerror(errno);
            return;
        }
        // the constants as loadSkeleton({}) left them: the source's defaults
        if (auto r = netprobe::ebpf::shareMaps(skel_->obj, l3_->obj); !r) {
            setup_error_ = r.error().what();
            return;
        }
        bpf_program__set_autoload(l3_->progs.netprobe_tc_in_l3_block, false);
        if (int e = datapath_l3_bpf__load(l3_.get()); e) {
            setup_error_ = std::string("datapath_l3 load: ") + std::strerror(-e);
            return;
        }
        tun_ = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (tun_ < 0) {
            setup_error_ = std::string("/dev/net/tun: ") + std::strerror(errno);
            return;
        }
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, kTun, IFNAMSIZ - 1);
        ifr.ifr_flags = IFF_TUN;  // with the tun_pi header: we choose skb->protocol
        if (::ioctl(tun_, TUNSETIFF, &ifr) != 0) {
            setup_error_ = std::string("TUNSETIFF: ") + std::strerror(errno);
            return;
        }
        ifindex_ = if_nametoindex(kTun);
        const std::string cmd = std::string("ip link set lo up && ip link set ") + kTun + " up && ip addr add " + kLocal4 +
                                " peer " + kPeer4 + "/32 dev " + kTun;
        if (std::system(cmd.c_str()) != 0) {
            setup_error_ = "ip: " + cmd + " failed";
            return;
        }
        bpf_tc_hook hook{};
        hook.sz = sizeof(hook);
        hook.ifindex = static_cast<int>(ifindex_);
        hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
        if (int e = bpf_tc_hook_create(&hook); e) {
            setup_error_ = std::string("clsact: ") + std::strerror(-e);
            return;
        }
        for (auto [where, prog] : {std::pair{BPF_TC_INGRESS, l3_->progs.netprobe_tc_in_l3},
                                   std::pair{BPF_TC_EGRESS, l3_->progs.netprobe_tc_eg_l3}}) {
            bpf_tc_hook h = hook;
            h.attach_point = where;
            bpf_tc_opts o{};
            o.sz = sizeof(o);
            o.prog_fd = bpf_program__fd(prog);
            if (int e = bpf_tc_attach(&h, &o); e) {
                setup_error_ = std::string("attach: ") + std::strerror(-e);
                return;
            }
        }
        ready_ = true;
    }

    static void TearDownTestSuite()
    {
        if (tun_ >= 0)
            ::close(tun_);  // the device (not persistent) goes with its fd; its qdisc with it
        tun_ = -1;
        l3_.reset();
        skel_.reset();
        if (orig_ns_ >= 0) {
            ::setns(orig_ns_, CLONE_NEWNET);
            ::close(orig_ns_);
            orig_ns_ = -1;
        }
    }

    void SetUp() override
    {
        if (geteuid() != 0)
            GTEST_SKIP() << "needs root (a TUN device and BPF programs)";
        ASSERT_TRUE(ready_) << setup_error_;
        drain();
        resetMaps(skel_.get());
    }

    // Reads (and drops) whatever the stack sent into the device.
    static std::vector<Bytes> drain(std::chrono::milliseconds wait = 0ms)
    {
        std::vector<Bytes> out;
        for (;;) {
            pollfd p{tun_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0)
                return out;
            Bytes b(65536 + 4);
            ssize_t n = ::read(tun_, b.data(), b.size());
            if (n <= 4)
                return out;
            out.emplace_back(b.begin() + 4, b.begin() + n);  // without the tun_pi header
            wait = 0ms;
        }
    }

    // Writes one packet into the device with the given skb->protocol (EtherType).
    static void inject(std::uint16_t ethertype, const Bytes& packet)
    {
        Bytes b(4 + packet.size());
        b[0] = b[1] = 0;  // tun_pi.flags
        b[2] = static_cast<std::uint8_t>(ethertype >> 8);
        b[3] = static_cast<std::uint8_t>(ethertype);
        std::copy(packet.begin(), packet.end(), b.begin() + 4);
        ASSERT_EQ(::write(tun_, b.data(), b.size()), static_cast<ssize_t>(b.size())) << std::strerror(errno);
    }

    // The device counter for one direction, once it reached at least `packets`
    // (the stack may run the program from a softirq right after write() returns).
    static Counter waitDevice(std::uint32_t dir, std::uint64_t packets)
    {
        Counter c;
        for (int i = 0; i < 200; i++) {
            c = devCounter(skel_.get(), false, ifindex_, dir);
            if (c.packets >= packets)
                break;
            std::this_thread::sleep_for(5ms);
        }
        return c;
    }

    static Counter classCounter(std::uint32_t dir, np_proto_class c)
    {
        std::uint32_t idx = dir * NP_PROTO_MAX + c;
        return sumCounter(skel_->maps.packet_stats, &idx);
    }

    // The exact set of classes counted in `dir`, each with (1, len).
    static void expectClasses(std::uint32_t dir, std::initializer_list<np_proto_class> want, std::uint64_t len)
    {
        for (std::uint32_t c = 0; c < NP_PROTO_MAX; c++) {
            bool wanted = std::find(want.begin(), want.end(), static_cast<np_proto_class>(c)) != want.end();
            Counter got = classCounter(dir, static_cast<np_proto_class>(c));
            const Counter expected = wanted ? Counter{1, len} : Counter{};
            EXPECT_EQ(got, expected) << "class " << c << " direction " << dir;
        }
    }

    static std::uint64_t malformed(std::uint32_t dir, np_malformed_reason r)
    {
        return sumU64(skel_->maps.malformed_stats, dir * NP_MAL_REASON_MAX + r);
    }

    struct L3Deleter {
        void operator()(datapath_l3_bpf* s) const { datapath_l3_bpf__destroy(s); }
    };
    static inline Skel skel_;
    static inline std::unique_ptr<datapath_l3_bpf, L3Deleter> l3_;
    static inline int tun_ = -1;
    static inline int orig_ns_ = -1;
    static inline std::uint32_t ifindex_ = 0;
    static inline bool ready_ = false;
    static inline std::string setup_error_ = "not set up";
};

TEST_F(L3Device, Ipv4UdpIngressCountsFromTheNetworkHeader)
{
    Bytes p = withoutEthernet(eth().ipv4(kPeer4, kLocal4).udp(40000, 53).payload(30).build());
    inject(0x0800, p);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, p.size()}));
    expectClasses(NP_DIR_INGRESS, {cls::IPV4, cls::UDP}, p.size());
    // Ingress only: the stack answers with an ICMP port unreachable (an egress flow).
    auto flows = readFlows(skel_->maps.flow_stats);
    std::erase_if(flows, [](const Flow& f) { return f.key.direction != NP_DIR_INGRESS; });
    ASSERT_EQ(flows.size(), 1u) << flowsToString(flows);
    flow_key want = key4(kPeer4, kLocal4, 40000, 53, ipproto::UDP);
    want.ifindex = ifindex_;
    want.direction = NP_DIR_INGRESS;
    EXPECT_TRUE(sameKey(flows[0].key, want)) << keyToString(flows[0].key) << " want " << keyToString(want);
    EXPECT_EQ((Counter{flows[0].packets, flows[0].bytes}), (Counter{1, p.size()}));
}

TEST_F(L3Device, Ipv6TcpSynIngress)
{
    Bytes p = withoutEthernet(eth().ipv6(A6, B6).tcp(40001, 443, tcp_flags::SYN).build());
    inject(0x86DD, p);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, p.size()}));
    expectClasses(NP_DIR_INGRESS, {cls::IPV6, cls::TCP}, p.size());
    auto flows = readFlows(skel_->maps.flow_stats);
    ASSERT_EQ(flows.size(), 1u) << flowsToString(flows);
    EXPECT_EQ(flows[0].tcp_flags, tcp_flags::SYN);
    EXPECT_EQ(flows[0].key.src_port, 40001);
    EXPECT_EQ(flows[0].key.family, 6);
}

TEST_F(L3Device, Ipv4IcmpEchoIngress)
{
    Bytes p = withoutEthernet(eth().ipv4(kPeer4, kLocal4).icmp(icmp_type::ECHO_REQUEST, 0, 7, 1).payload(56).build());
    inject(0x0800, p);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, p.size()}));
    expectClasses(NP_DIR_INGRESS, {cls::IPV4, cls::ICMP}, p.size());
    const np_icmp_key k{NP_DIR_INGRESS, 4, icmp_type::ECHO_REQUEST, 0};
    const Counter icmp = sumCounter(skel_->maps.icmp_stats, &k);
    EXPECT_EQ(icmp, (Counter{1, p.size()}));
}

TEST_F(L3Device, MplsOverLayer3)
{
    Bytes p = withoutEthernet(eth().mpls(100).ipv4(kPeer4, kLocal4).udp(1, 2).payload(8).build());
    inject(0x8847, p);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, p.size()}));
    expectClasses(NP_DIR_INGRESS, {cls::MPLS, cls::IPV4, cls::UDP}, p.size());
}

TEST_F(L3Device, ArpAndOtherProtocolsAreLayer3Classes)
{
    Bytes arp(28, 0);
    inject(0x0806, arp);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, arp.size()}));
    expectClasses(NP_DIR_INGRESS, {cls::ARP}, arp.size());
    resetMaps(skel_.get());
    Bytes other(40, 0x5a);
    inject(0x88B5, other);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, other.size()}));
    expectClasses(NP_DIR_INGRESS, {cls::OTHER_L3}, other.size());
    EXPECT_TRUE(readFlows(skel_->maps.flow_stats).empty());
}

TEST_F(L3Device, TruncatedAndMislabelledPacketsAreMalformed)
{
    // 15 bytes of IPv4 header
    Bytes p = withoutEthernet(eth().ipv4(kPeer4, kLocal4).udp(1, 2).build());
    p.resize(15);
    inject(0x0800, p);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, 15}));
    expectClasses(NP_DIR_INGRESS, {}, 15);
    EXPECT_EQ(malformed(NP_DIR_INGRESS, NP_MAL_TRUNCATED_IPV4), 1u);
    resetMaps(skel_.get());
    // an IPv4 packet the device labels IPv6
    Bytes q = withoutEthernet(eth().ipv4(kPeer4, kLocal4).udp(1, 2).payload(40).build());
    inject(0x86DD, q);
    EXPECT_EQ(waitDevice(NP_DIR_INGRESS, 1), (Counter{1, q.size()}));
    EXPECT_EQ(malformed(NP_DIR_INGRESS, NP_MAL_IPV6_BAD_VERSION), 1u);
    EXPECT_TRUE(readFlows(skel_->maps.flow_stats).empty());
}

TEST_F(L3Device, EgressDatagramsMatchWhatTheDeviceEmitted)
{
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    Fd sock(s);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(5353);
    ::inet_pton(AF_INET, kPeer4, &to.sin_addr);
    constexpr int kDatagrams = 5;
    for (int i = 0; i < kDatagrams; i++) {
        std::string msg(100 + i * 10, 'x');
        ASSERT_EQ(::sendto(s, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)),
                  static_cast<ssize_t>(msg.size()));
    }
    std::vector<Bytes> sent;
    for (int i = 0; i < 50 && sent.size() < kDatagrams; i++) {
        auto got = drain(20ms);
        sent.insert(sent.end(), got.begin(), got.end());
    }
    ASSERT_EQ(sent.size(), static_cast<std::size_t>(kDatagrams));
    std::uint64_t bytes = 0;
    for (const auto& b : sent)
        bytes += b.size();
    EXPECT_EQ(waitDevice(NP_DIR_EGRESS, kDatagrams), (Counter{kDatagrams, bytes}));
    EXPECT_EQ(classCounter(NP_DIR_EGRESS, cls::IPV4), (Counter{kDatagrams, bytes}));
    EXPECT_EQ(classCounter(NP_DIR_EGRESS, cls::UDP), (Counter{kDatagrams, bytes}));
    auto flows = readFlows(skel_->maps.flow_stats);
    ASSERT_EQ(flows.size(), 1u) << flowsToString(flows);
    EXPECT_EQ(flows[0].key.dst_port, 5353);
    EXPECT_EQ(flows[0].key.direction, NP_DIR_EGRESS);
    EXPECT_EQ((Counter{flows[0].packets, flows[0].bytes}), (Counter{kDatagrams, bytes}));
    EXPECT_EQ(sumU64(skel_->maps.map_errors, NP_MAP_FLOW_STATS), 0u);
}

}  // namespace
