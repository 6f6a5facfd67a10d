// Packet path tracing in the datapath programs (bpf/lib/trace.h) through
// BPF_PROG_TEST_RUN, armed, read and freed by the agent's own ebpf::PacketTracer: a
// trace counts the packets of its flow (either direction) at XDP, TC ingress and TC
// egress and nothing else; nothing is counted with tracing off or after the expiry.
#include "bpf/datapath_support.hpp"

#include <fcntl.h>
#include <time.h>

#include <netprobe/ebpf/trace.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::datapath_test {
namespace {

util::UniqueFd dupFd(const bpf_map* m) { return util::UniqueFd(::fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 0)); }

ebpf::TraceMaps mapsOf(datapath_bpf* s) {
    ebpf::TraceMaps m;
    m.on = dupFd(s->maps.data_trace);
    m.specs = dupFd(s->maps.trace_specs);
    m.counts = dupFd(s->maps.trace_counts);
    m.drops = dupFd(s->maps.trace_drops);
    m.ifaces = dupFd(s->maps.trace_ifaces);
    m.procs = dupFd(s->maps.trace_procs);
    m.errors = dupFd(s->maps.trace_errors);
    return m;
}

std::uint64_t nowNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

ebpf::TraceSpec udpSpec() {
    ebpf::TraceSpec s;
    s.src = *util::parseAddr("198.18.0.1");
    s.dst = *util::parseAddr("198.18.0.2");
    s.dport = 7777;
    s.proto = 17;
    s.family = 4;
    return s;
}

class TraceTest : public ::testing::Test {
protected:
    void SetUp() override {
        int err = 0;
        skel_ = loadSkeleton({}, err);
        ASSERT_TRUE(skel_) << "load datapath: " << err;
        std::vector<ebpf::TraceMaps> objs;
        objs.push_back(mapsOf(skel_.get()));
        tracer_ = std::make_unique<ebpf::PacketTracer>(std::move(objs), [this](bool on) {
            hook_calls_.push_back(on);
            return Result<void>{};
        });
    }
    void run(Prog p, const Bytes& f, int times = 1) {
        for (int i = 0; i < times; ++i) ASSERT_EQ(runFrame(skel_.get(), p, f).err, 0);
    }
    Skel skel_;
    std::unique_ptr<ebpf::PacketTracer> tracer_;
    std::vector<bool> hook_calls_;
    const Bytes fwd_ = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").udp(40000, 7777).payload(100).build();
    const Bytes rev_ = PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.1").udp(7777, 40000).payload(50).build();
    const Bytes other_ = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").udp(40000, 7778).payload(100).build();
    const Bytes tcp_ = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 7777).payload(10).build();
};

TEST_F(TraceTest, CountsItsFlowAtEachStageEitherDirection) {
    ASSERT_TRUE(tracer_->arm(2, udpSpec(), nowNs() + 60'000'000'000ull));
    EXPECT_EQ(hook_calls_, std::vector<bool>{true});
    EXPECT_EQ(skel_->data_trace->np_trace_on, 1u);
    run(Prog::Xdp, fwd_, 3);
    run(Prog::TcIngress, fwd_, 3);
    run(Prog::TcEgress, rev_, 2);
    run(Prog::TcIngress, other_, 5);  // another port
    run(Prog::TcIngress, tcp_, 4);    // another protocol
    auto c = tracer_->read(2);
    ASSERT_TRUE(c) << c.error().what();
    EXPECT_EQ(c->stages[0][NP_TRACE_XDP].packets, 3u);
    EXPECT_EQ(c->stages[0][NP_TRACE_XDP].bytes, 3u * fwd_.size());
    EXPECT_EQ(c->stages[0][NP_TRACE_TC_INGRESS].packets, 3u);
    EXPECT_EQ(c->stages[0][NP_TRACE_TC_EGRESS].packets, 0u);
    EXPECT_EQ(c->stages[1][NP_TRACE_TC_EGRESS].packets, 2u);
    EXPECT_EQ(c->stages[1][NP_TRACE_TC_INGRESS].packets, 0u);
    std::uint64_t total = 0;
    for (const auto& dir : c->stages)
        for (const auto& s : dir) total += s.packets;
    EXPECT_EQ(total, 8u);
    // the devices, by stage and direction
    std::map<std::tuple<int, int, std::uint32_t>, std::uint64_t> devs;
    for (const auto& d : c->devices) devs[{d.dir, d.stage, d.value}] += d.packets;
    EXPECT_EQ(devs, (std::map<std::tuple<int, int, std::uint32_t>, std::uint64_t>{
                        {{0, NP_TRACE_XDP, kIfindex}, 3}, {{0, NP_TRACE_TC_INGRESS, kIfindex}, 3},
                        {{1, NP_TRACE_TC_EGRESS, kIfindex}, 2}}));
    EXPECT_TRUE(c->drops.empty());
    // other slots saw nothing
    auto o = tracer_->read(0);
    ASSERT_TRUE(o);
    for (const auto& dir : o->stages)
        for (const auto& s : dir) EXPECT_EQ(s.packets, 0u);

    ASSERT_TRUE(tracer_->disarm(2));
    EXPECT_EQ(hook_calls_, (std::vector<bool>{true, false}));
    EXPECT_EQ(skel_->data_trace->np_trace_on, 0u);
    run(Prog::TcIngress, fwd_, 4);
    auto after = tracer_->read(2);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->stages[0][NP_TRACE_TC_INGRESS].packets, 3u);  // unchanged: tracing off
}

TEST_F(TraceTest, ReArmingStartsAtZeroAndExpiryStopsCounting) {
    ASSERT_TRUE(tracer_->arm(1, udpSpec(), nowNs() + 60'000'000'000ull));
    run(Prog::TcIngress, fwd_, 5);
    ASSERT_TRUE(tracer_->disarm(1));
    // the slot again, already expired: the switch is on, yet nothing matches
    ASSERT_TRUE(tracer_->arm(1, udpSpec(), nowNs() - 1));
    run(Prog::TcIngress, fwd_, 5);
    auto c = tracer_->read(1);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->stages[0][NP_TRACE_TC_INGRESS].packets, 0u);
    EXPECT_TRUE(c->devices.empty());
    ASSERT_TRUE(tracer_->disarm(1));
}

TEST_F(TraceTest, WildcardsAndSeveralSlots) {
    ebpf::TraceSpec any_to_dst;  // dst only: any source, port, protocol
    any_to_dst.dst = *util::parseAddr("198.18.0.2");
    any_to_dst.family = 4;
    ASSERT_TRUE(tracer_->arm(0, any_to_dst, nowNs() + 60'000'000'000ull));
    ASSERT_TRUE(tracer_->arm(3, udpSpec(), nowNs() + 60'000'000'000ull));
    EXPECT_EQ(hook_calls_, std::vector<bool>{true});  // attached once
    run(Prog::TcIngress, other_, 2);
    run(Prog::TcIngress, tcp_, 1);
    run(Prog::TcIngress, fwd_, 1);
    auto a = tracer_->read(0), b = tracer_->read(3);
    ASSERT_TRUE(a && b);
    // a packet counts in the first slot that matches it
    EXPECT_EQ(a->stages[0][NP_TRACE_TC_INGRESS].packets, 4u);
    EXPECT_EQ(b->stages[0][NP_TRACE_TC_INGRESS].packets, 0u);
    ASSERT_TRUE(tracer_->disarm(0));
    EXPECT_EQ(skel_->data_trace->np_trace_on, 1u);  // slot 3 still in use
    run(Prog::TcIngress, fwd_, 1);
    b = tracer_->read(3);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->stages[0][NP_TRACE_TC_INGRESS].packets, 1u);
    ASSERT_TRUE(tracer_->disarm(3));
    EXPECT_EQ(hook_calls_, (std::vector<bool>{true, false}));
}

}  // namespace
}  // namespace netprobe::datapath_test
