// ns per packet of netprobe_tc_in under a random-source-port SYN flood (every packet a
// new flow), measured with BPF_PROG_TEST_RUN: where a flood's per-packet cost goes in
// the datapath, configuration by configuration.
//
// Method. 65,536 distinct IPv4 SYN frames (source port 1024.., source address varied
// over 200 hosts) run through netprobe_tc_in once each (repeat=1), in rounds of 256
// (NP_ROUND overrides); after every round user space does what the agent does between
// collections: it drains the security ring and empties flow_stats with batched
// lookup-and-delete. (Rounds of thousands leave more than the ring's 64 KiB wake-up
// mark waiting, and from then on every record forces a wake-up: ~4 us per packet, a
// state the agent's reader, woken by the first of them, does not let last.) The
// per-frame time is the kernel's duration (includes the test-run timer's overhead, the
// same for every row: the reference program measured the same way is the first row).
// Configurations: the agent's defaults (flows, security, handshake timing), then with
// each of them off, so the differences are what each feature costs per flood packet; and
// the defaults with the flow table under pressure (np_flow_pressure: what the agent sets
// in a sustained flood), the attempts counted in an aggregate entry and announced by one
// record per tick.
// Output: a table; lines starting with "RESULT\t" are for bench/run.sh.
#include "bpf_bench_util.hpp"
#include "frame_util.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/abi.h>

#include "datapath.skel.h"
#include "ebpf/clock.hpp"
#include "reference.skel.h"

namespace {

constexpr std::size_t kFrames = 65536;
const std::size_t kRound = std::clamp<std::size_t>(
    std::getenv("NP_ROUND") ? std::strtoul(std::getenv("NP_ROUND"), nullptr, 10) : 256, 1, kFrames);

using npbench::quietLibbpf;

[[noreturn]] void die(const char* what, int err) { npbench::fail("np_bpf_flood_bench", what, err); }

// 64 bytes: Ethernet + IPv4 + TCP SYN to 198.18.0.2:80 from 198.18.(1 + i / 256 % 256).(i % 256):(1024 + i).
std::vector<std::uint8_t> synFrame(std::size_t i) {
    using npbench::put16;
    std::vector<std::uint8_t> f(64, 0);
    const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(&f[0], dst, 6);
    std::memcpy(&f[6], src, 6);
    put16(&f[12], 0x0800);
    std::uint8_t* ip = &f[14];
    ip[0] = 0x45;
    put16(ip + 2, 64 - 14);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 6;
    const std::uint8_t s[4] = {198, 18, static_cast<std::uint8_t>(1 + (i / 256) % 200), static_cast<std::uint8_t>(i % 256)};
    const std::uint8_t d[4] = {198, 18, 0, 2};
    std::memcpy(ip + 12, s, 4);
    std::memcpy(ip + 16, d, 4);
    put16(ip + 10, npbench::ipChecksum(ip, 20));
    std::uint8_t* tcp = &f[34];
    put16(tcp + 0, static_cast<std::uint16_t>(1024 + i % 60000));
    put16(tcp + 2, 80);
    tcp[7] = 1;
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;  // SYN
    put16(tcp + 14, 65535);
    return f;
}

double runFrames(int prog_fd, const std::vector<std::vector<std::uint8_t>>& frames, std::size_t from, std::size_t n) {
    std::vector<std::uint8_t> out(256);
    std::uint64_t total = 0;
    for (std::size_t i = from; i < from + n; ++i) {
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frames[i].data(), .data_out = out.data(),
                    .data_size_in = static_cast<__u32>(frames[i].size()),
                    .data_size_out = static_cast<__u32>(out.size()), .repeat = 1);
        if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) die("BPF_PROG_TEST_RUN", errno);
        total += opts.duration;
    }
    return static_cast<double>(total) / static_cast<double>(n);
}

// Empties flow_stats as the agent's collection does (batched lookup-and-delete).
void drainFlows(int fd) {
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<flow_key> keys(1024);
    std::vector<std::uint8_t> vals(1024 * sizeof(np_flow_stats) * static_cast<std::size_t>(ncpu));
    __u32 batch = 0;
    bool first = true;
    for (;;) {
        __u32 count = 1024;
        LIBBPF_OPTS(bpf_map_batch_opts, o);
        int err = bpf_map_lookup_and_delete_batch(fd, first ? nullptr : &batch, &batch, keys.data(), vals.data(),
                                                  &count, &o);
        first = false;
        if (err && errno != ENOENT) die("lookup_and_delete_batch", errno);
        if (err) break;
    }
}

struct Config {
    const char* name;
    bool flows, security, handshakes;
    bool pressure = false;  // np_flow_pressure: the attempts share an aggregate entry
};

}  // namespace

int main() {
    libbpf_set_print(quietLibbpf);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof set, &set);

    std::vector<std::vector<std::uint8_t>> frames;
    frames.reserve(kFrames);
    for (std::size_t i = 0; i < kFrames; ++i) frames.push_back(synFrame(i));

    std::unique_ptr<reference_bpf, void (*)(reference_bpf*)> ref(reference_bpf__open_and_load(),
                                                                  reference_bpf__destroy);
    if (!ref) die("load reference skeleton", errno);
    const double ref_ns = runFrames(bpf_program__fd(ref->progs.np_bench_ref_tc), frames, 0, kFrames);

    const Config configs[] = {
        {"defaults (flows, security, handshakes)", true, true, true},
        {"handshakes off", true, true, false},
        {"security off", true, false, true},
        {"security and handshakes off", true, false, false},
        // the agent's state in a sustained flood: the table under pressure, each round's
        // attempts in one aggregate entry, announced by a record per tick (the rest folded)
        {"defaults, table under pressure", true, true, true, true},
        {"under pressure, security off", true, false, true, true},
    };
    std::printf("%-42s %10s %10s\n", "netprobe_tc_in, SYN flood", "ns/packet", "minus ref");
    std::printf("%-42s %10.1f %10s\n", "reference (one per-CPU increment)", ref_ns, "-");
    std::printf("RESULT\tflood_tc_in reference\t%.1f\n", ref_ns);
    for (const auto& c : configs) {
        std::unique_ptr<datapath_bpf, void (*)(datapath_bpf*)> dp(datapath_bpf__open(), datapath_bpf__destroy);
        if (!dp) die("open datapath skeleton", errno);
        dp->rodata->np_enable_flows = c.flows;
        dp->rodata->np_enable_security = c.security;
        dp->rodata->np_enable_handshakes = c.handshakes;
        if (int err = datapath_bpf__load(dp.get()); err) die("load datapath skeleton", -err);
        if (int err = netprobe::ebpf::calibrateClock(*dp); err) die("calibrate the flow clock", -err);
        dp->data_pressure->np_flow_pressure = c.pressure ? 1 : 0;
        const npbench::RingPtr ring = npbench::discardingRing("np_bpf_flood_bench", bpf_map__fd(dp->maps.sec_events));
        const int prog = bpf_program__fd(dp->progs.netprobe_tc_in);
        const int flows = bpf_map__fd(dp->maps.flow_stats);
        double sum = 0;
        for (std::size_t r = 0; r < kFrames / kRound; ++r) {
            sum += runFrames(prog, frames, r * kRound, kRound);
            ring_buffer__consume(ring.get());
            drainFlows(flows);
        }
        const double ns = sum / static_cast<double>(kFrames / kRound);
        std::printf("%-42s %10.1f %10.1f\n", c.name, ns, ns - ref_ns);
        std::printf("RESULT\tflood_tc_in %s\t%.1f\n", c.name, ns);
    }
    return 0;
}
