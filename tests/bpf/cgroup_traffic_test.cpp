// The per-cgroup traffic programs (netprobe_cg_in, netprobe_cg_eg; cgroup_skb) through
// BPF_PROG_TEST_RUN. The kernel's test skb starts at the network header for cgroup_skb
// (the Ethernet header is pulled by eth_type_trans and not pushed back) and carries a
// dummy socket created by the test process, so bpf_skb_cgroup_id() is this process's
// cgroup v2 id: the inode of its directory (/proc/self/cgroup "0::" line under the
// cgroup2 mount). Every case asserts the return value (1: allow, never drop) and the
// exact cgroup_traffic / cgroup_errors contents.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <unistd.h>

#include <netprobe/abi.h>
#include <netprobe/ebpf/cgroup_traffic.hpp>
#include <netprobe/util/cgroup.hpp>
#include <netprobe/util/scheduler.hpp>

#include "cgroup_traffic.skel.h"
#include "support/packet_builder.hpp"

namespace {

using namespace netprobe::test;

struct SkelDeleter {
    void operator()(cgroup_traffic_bpf* s) const { cgroup_traffic_bpf__destroy(s); }
};
using Skel = std::unique_ptr<cgroup_traffic_bpf, SkelDeleter>;

int quiet(enum libbpf_print_level, const char*, va_list) { return 0; }

// (cgroup id, direction, proto) -> {packets, bytes}
using Counts = std::map<std::tuple<std::uint64_t, int, int>, std::pair<std::uint64_t, std::uint64_t>>;

class CgroupTrafficProg : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF)";
        libbpf_set_print(quiet);
        load(16384);
    }
    void load(std::uint32_t entries) {
        skel_.reset(cgroup_traffic_bpf__open());
        ASSERT_TRUE(skel_) << std::strerror(errno);
        bpf_map__set_max_entries(skel_->maps.cgroup_traffic, entries);
        ASSERT_EQ(cgroup_traffic_bpf__load(skel_.get()), 0);
    }
    int run(bool egress, const Bytes& frame, std::uint32_t gso_segs = 0) {
        const bpf_program* prog = egress ? skel_->progs.netprobe_cg_eg : skel_->progs.netprobe_cg_in;
        bpf_test_run_opts opts{};
        opts.sz = sizeof(opts);
        opts.data_in = frame.data();
        opts.data_size_in = static_cast<std::uint32_t>(frame.size());
        opts.repeat = 1;
        __sk_buff ctx{};
        if (gso_segs) {
            ctx.gso_segs = gso_segs;
            ctx.gso_size = 1000;
            opts.ctx_in = &ctx;
            opts.ctx_size_in = sizeof(ctx);
        }
        int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
        EXPECT_EQ(err, 0) << std::strerror(-err);
        EXPECT_EQ(opts.retval, 1u) << "cgroup_skb programs must always allow";
        return err;
    }
    Counts counts() const {
        Counts out;
        const int fd = bpf_map__fd(skel_->maps.cgroup_traffic);
        const int ncpu = libbpf_num_possible_cpus();
        std::vector<np_counter> vals(static_cast<std::size_t>(ncpu));
        np_cgroup_key k{}, next{};
        bool first = true;
        while (bpf_map_get_next_key(fd, first ? nullptr : &k, &next) == 0) {
            first = false;
            k = next;
            if (bpf_map_lookup_elem(fd, &k, vals.data()) != 0) continue;
            auto& c = out[{k.cgroup_id, k.direction, k.proto}];
            for (const auto& v : vals) {
                c.first += v.packets;
                c.second += v.bytes;
            }
        }
        return out;
    }
    std::uint64_t insertErrors() const {
        const int ncpu = libbpf_num_possible_cpus();
        std::vector<std::uint64_t> vals(static_cast<std::size_t>(ncpu));
        std::uint32_t idx = NP_CG_ERR_INSERT;
        EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.cgroup_errors), &idx, vals.data()), 0);
        std::uint64_t sum = 0;
        for (auto v : vals) sum += v;
        return sum;
    }
    Skel skel_;
};

// This process's cgroup v2 id (0 when there is no cgroup2 mount).
std::uint64_t ownCgroupId() {
    std::ifstream mounts("/proc/mounts");
    std::string line, mnt;
    while (std::getline(mounts, line)) {
        std::istringstream ls(line);
        std::string dev, m, type;
        if (ls >> dev >> m >> type && type == "cgroup2") {
            mnt = m;
            break;
        }
    }
    std::ifstream cg("/proc/self/cgroup");
    std::string rel;
    while (std::getline(cg, line))
        if (line.rfind("0::", 0) == 0) rel = line.substr(3);
    if (mnt.empty()) return 0;
    struct stat st {};
    if (::stat((mnt + rel).c_str(), &st) != 0) return 0;
    return st.st_ino;
}

TEST_F(CgroupTrafficProg, ProtocolClassesDirectionsAndIpBytes) {
    const auto cg = ownCgroupId();
    ASSERT_NE(cg, 0u) << "no cgroup v2 mount";
    // ingress: UDP 100-byte payload, TCP 10 bytes (20-byte header), ICMP echo (8 + 56)
    run(false, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").udp(1000, 53).payload(100).build());
    run(false, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").udp(1000, 53).payload(100).build());
    run(false, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(1000, 80).payload(10).build());
    run(false, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").icmp(icmp_type::ECHO_REPLY).payload(56).build());
    // egress: ICMPv6 behind a hop-by-hop header (8), UDP behind a fragment header (8), ARP (other)
    run(true, PacketBuilder().eth().ipv6("fd6e:7072::1", "fd6e:7072::2").ipv6Ext(ipproto::HOPOPTS)
                  .icmpv6(icmp_type::V6_ECHO_REQUEST).payload(16).build());
    run(true, PacketBuilder().eth().ipv6("fd6e:7072::1", "fd6e:7072::2").ipv6Frag(7, 0, true)
                  .udp(5000, 5001).payload(40).build());
    run(true, PacketBuilder().eth().arp(ip4("198.18.0.1"), ip4("198.18.0.2")).build());
    // IPv4 with 8 bytes of options: still UDP, bytes = the whole IP packet
    Ipv4Options o;
    o.options = Bytes(8, 1);
    run(true, PacketBuilder().eth().ipv4(ip4("198.18.0.1"), ip4("198.18.0.2"), std::nullopt, o).udp(1, 2).payload(4).build());

    const Counts want = {
        {{cg, NP_DIR_INGRESS, NP_CG_PROTO_UDP}, {2, 2 * (20 + 8 + 100)}},
        {{cg, NP_DIR_INGRESS, NP_CG_PROTO_TCP}, {1, 20 + 20 + 10}},
        {{cg, NP_DIR_INGRESS, NP_CG_PROTO_ICMP}, {1, 20 + 8 + 56}},
        {{cg, NP_DIR_EGRESS, NP_CG_PROTO_ICMP}, {1, 40 + 8 + 8 + 16}},
        {{cg, NP_DIR_EGRESS, NP_CG_PROTO_UDP}, {2, (40 + 8 + 8 + 40) + (28 + 8 + 4)}},
        {{cg, NP_DIR_EGRESS, NP_CG_PROTO_OTHER}, {1, 28}},
    };
    EXPECT_EQ(counts(), want);
    EXPECT_EQ(insertErrors(), 0u);
}

TEST_F(CgroupTrafficProg, FullTableCountsInsertFailuresAndStillAllows) {
    load(1);
    const auto udp = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).payload(1).build();
    const auto tcp = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).build();
    run(false, udp);
    run(false, tcp);  // a second key: the table (1 entry) is full
    run(false, tcp);
    run(false, udp);  // the existing key still counts
    const auto c = counts();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c.begin()->second, (std::pair<std::uint64_t, std::uint64_t>{2, 2 * 29}));
    EXPECT_EQ(insertErrors(), 2u);
}

// A GSO/GRO skb counts its segments, each with its own IP + L4 headers.
TEST_F(CgroupTrafficProg, GsoSkbCountsSegmentsAndTheirHeaders) {
    const auto cg = ownCgroupId();
    ASSERT_NE(cg, 0u);
    run(true, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).payload(3000).build(), 4);  // test frames stay within a page
    run(false, PacketBuilder().eth().ipv6("fd6e:7072::1", "fd6e:7072::2").udp(1, 2).payload(3000).build(), 3);
    const Counts want = {
        {{cg, NP_DIR_EGRESS, NP_CG_PROTO_TCP}, {4, 20 + 20 + 3000 + 3 * 40}},
        {{cg, NP_DIR_INGRESS, NP_CG_PROTO_UDP}, {3, 40 + 8 + 3000 + 2 * 48}},
    };
    EXPECT_EQ(counts(), want);
}

}  // namespace

// ---- the user-space monitor on a real cgroup subtree (needs root and cgroup v2) ----

namespace {

std::string cgroup2Mount() {
    auto m = netprobe::util::cgroup2Mount();
    return m ? *m : std::string();
}

// The monitor attached to a test subtree (its "root"): a process in a child cgroup sends
// UDP datagrams; read() reports them under the child's id; after rmdir the background
// sweep deletes the entries and counts the removal (read() itself never walks).
TEST(CgroupTrafficMonitor, CountsAChildCgroupAndForgetsItWhenRemoved) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    const auto mnt = cgroup2Mount();
    ASSERT_FALSE(mnt.empty()) << "no cgroup v2 mount";
    const std::string top = mnt + "/npbt" + std::to_string(getpid());
    const std::string child = top + "/app";
    ASSERT_EQ(::mkdir(top.c_str(), 0755), 0) << std::strerror(errno);
    struct Cleanup {
        std::string top, child;
        ~Cleanup() {
            ::rmdir(child.c_str());
            ::rmdir(top.c_str());
        }
    } cleanup{top, child};
    ASSERT_EQ(::mkdir(child.c_str(), 0755), 0) << std::strerror(errno);
    struct stat st {};
    ASSERT_EQ(::stat(child.c_str(), &st), 0);
    const std::uint64_t child_id = st.st_ino;

    netprobe::ebpf::CgroupTrafficOptions o;
    o.cgroup_root = top;
    o.max_entries = 64;
    o.sweep_interval = std::chrono::milliseconds(100);
    netprobe::util::Scheduler background;
    auto m = netprobe::ebpf::CgroupTrafficMonitor::create(o, &background);
    ASSERT_TRUE(m) << m.error().what();
    background.start();

    constexpr int kDatagrams = 3, kPayload = 50;
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::ofstream(child + "/cgroup.procs") << ::getpid() << std::endl;
        int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(9);
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        char buf[kPayload] = {};
        for (int i = 0; i < kDatagrams; ++i)
            if (::sendto(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) != kPayload) ::_exit(1);
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    auto r = (*m)->read();
    ASSERT_TRUE(r) << r.error().what();
    const netprobe::ebpf::CgroupTraffic* t = nullptr;
    for (const auto& c : r->cgroups)
        if (c.cgroup_id == child_id) t = &c;
    ASSERT_NE(t, nullptr) << "no entry for the child cgroup";
    EXPECT_EQ(t->counters[NP_DIR_EGRESS][NP_CG_PROTO_UDP].packets, std::uint64_t{kDatagrams});
    EXPECT_EQ(t->counters[NP_DIR_EGRESS][NP_CG_PROTO_UDP].bytes, std::uint64_t{kDatagrams * (20 + 8 + kPayload)});
    EXPECT_EQ(t->total(NP_DIR_EGRESS).packets, std::uint64_t{kDatagrams});
    EXPECT_EQ(r->insert_failures, 0u);
    EXPECT_EQ(r->capacity, 64u);
    EXPECT_EQ(r->removed_total, 0u);

    // A sweep after the traffic has seen the entry; then the cgroup goes.
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    ASSERT_EQ(::rmdir(child.c_str()), 0) << std::strerror(errno);
    auto gone = [&] {
        auto a = (*m)->read();
        if (!a || a->removed_total != 1) return false;
        for (const auto& c : a->cgroups)
            if (c.cgroup_id == child_id) return false;
        return true;
    };
    bool removed = false;
    for (int i = 0; i < 50 && !removed; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        removed = gone();
    }
    EXPECT_TRUE(removed) << "the entries of the removed cgroup are still there after 5 s";
}

}  // namespace
