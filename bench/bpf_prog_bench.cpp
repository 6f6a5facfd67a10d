// ns per packet of the datapath programs (netprobe_xdp, netprobe_tc_in,
// netprobe_tc_eg), measured with BPF_PROG_TEST_RUN next to a reference program of
// the same type (bench/reference.bpf.c: one per-CPU array increment).
//
// Method. The kernel runs a program `repeat` times on the same frame and reports
// the average ns per run (opts.duration). For every case the reference and the
// datapath program run alternately (ref, prog, ref, prog, ...) for several rounds
// on one pinned CPU; the table shows the median of each and the ratio of the
// medians. Cases:
//   steady  the flow already exists (the first run of the warm-up creates it):
//           lookup hit + in-place update. `repeat` runs per measurement.
//   first   the flow does not exist: lookup miss + insert (allocation). The flow
//           is deleted from user space before every run, so each measurement is
//           one run (repeat=1, which adds the kernel's timer overhead to both
//           sides); the reference side does the same (failing) delete syscall
//           so both see the same cache disturbance. The same program is then
//           run once more (flow present, repeat=1): new flow minus that hit is
//           the cost of the insert itself.
// Frames: 64-byte Ethernet/IPv4/TCP (10 bytes of payload) and 84-byte
// Ethernet/IPv6/TCP (10 bytes of payload), built by hand below.
//
// Verdict (steady cases only; "first" rows are informational): ratio <= 5x is
// the floor (PASS), <= 3x the aim. Exit status is non-zero only on errors.
// Lines starting with "RESULT\t" are for bench/run.sh.
#include "bpf_bench_util.hpp"
#include "frame_util.hpp"

#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fcntl.h>

#include <chrono>
#include <fstream>
#include <random>

#include <netprobe/abi.h>
#include <netprobe/ebpf/intel_maps.hpp>

#include "datapath.skel.h"
#include "ebpf/clock.hpp"
#include "reference.skel.h"

namespace {

constexpr double kFloor = 5.0;
constexpr double kAim = 3.0;

using npbench::quietLibbpf;

[[noreturn]] void die(const char* what, int err) { npbench::fail("np_bpf_prog_bench", what, err); }

// Loads a datapath skeleton and sets up its flow clock as the agent does (bpf/lib/clock.h).
void loadCalibrated(datapath_bpf& s, const char* what) {
    if (int err = datapath_bpf__load(&s); err) die(what, -err);
    if (int err = netprobe::ebpf::calibrateClock(s); err) die("calibrate the flow clock", -err);
}

// ------------------------------------------------------------------ frames

using npbench::put16;
using npbench::ipChecksum;

void ethernet(std::vector<std::uint8_t>& f, std::uint16_t type) {
    const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(&f[0], dst, 6);
    std::memcpy(&f[6], src, 6);
    put16(&f[12], type);
}

// TCP header (20 bytes, ACK|PSH) at f[off].
void tcp(std::vector<std::uint8_t>& f, std::size_t off) {
    put16(&f[off + 0], 40000);  // source port
    put16(&f[off + 2], 5201);   // destination port
    f[off + 4] = 0, f[off + 7] = 1;  // seq
    f[off + 12] = 5 << 4;            // data offset 5
    f[off + 13] = 0x18;              // PSH|ACK
    put16(&f[off + 14], 65535);      // window
}

// 64 bytes: Ethernet (14) + IPv4 (20) + TCP (20) + 10 bytes payload.
std::vector<std::uint8_t> ipv4TcpFrame() {
    std::vector<std::uint8_t> f(64, 0);
    ethernet(f, 0x0800);
    std::uint8_t* ip = &f[14];
    ip[0] = 0x45;
    put16(ip + 2, 64 - 14);  // total length
    put16(ip + 4, 0x1234);   // id
    put16(ip + 6, 0x4000);   // DF
    ip[8] = 64;              // ttl
    ip[9] = 6;               // TCP
    const std::uint8_t s[4] = {198, 18, 0, 1}, d[4] = {198, 18, 0, 2};
    std::memcpy(ip + 12, s, 4);
    std::memcpy(ip + 16, d, 4);
    put16(ip + 10, ipChecksum(ip, 20));
    tcp(f, 34);
    return f;
}

// 84 bytes: Ethernet (14) + IPv6 (40) + TCP (20) + 10 bytes payload.
std::vector<std::uint8_t> ipv6TcpFrame() {
    std::vector<std::uint8_t> f(84, 0);
    ethernet(f, 0x86DD);
    std::uint8_t* ip = &f[14];
    ip[0] = 0x60;
    put16(ip + 4, 84 - 14 - 40);  // payload length
    ip[6] = 6;                    // next header TCP
    ip[7] = 64;                   // hop limit
    inet_pton(AF_INET6, "2001:db8::1", ip + 8);
    inet_pton(AF_INET6, "2001:db8::2", ip + 24);
    tcp(f, 54);
    return f;
}

// 64 bytes: Ethernet (14) + IPv4 (20) + UDP (8) + 22 bytes payload (QoS times every UDP
// datagram: one more LRU lookup per packet).
std::vector<std::uint8_t> ipv4UdpFrame() {
    std::vector<std::uint8_t> f(64, 0);
    ethernet(f, 0x0800);
    std::uint8_t* ip = &f[14];
    ip[0] = 0x45;
    put16(ip + 2, 64 - 14);
    put16(ip + 4, 0x1235);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;  // UDP
    const std::uint8_t s[4] = {198, 18, 0, 1}, d[4] = {198, 18, 0, 2};
    std::memcpy(ip + 12, s, 4);
    std::memcpy(ip + 16, d, 4);
    put16(ip + 10, ipChecksum(ip, 20));
    put16(&f[34], 40000);        // source port
    put16(&f[36], 5004);         // destination port
    put16(&f[38], 64 - 34);      // UDP length
    return f;
}

// ------------------------------------------------------------------ running

struct Stats {
    double median = 0, min = 0, max = 0;
};

Stats stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    Stats s;
    s.min = v.front();
    s.max = v.back();
    const std::size_t n = v.size();
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return s;
}

// One BPF_PROG_TEST_RUN; returns the kernel's average ns per run.
std::uint32_t testRun(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t repeat,
                      std::uint32_t expect_retval) {
    std::vector<std::uint8_t> out(frame.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(frame.size()), .data_size_out = static_cast<__u32>(out.size()),
                .repeat = static_cast<int>(repeat));
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) die("BPF_PROG_TEST_RUN", errno);
    if (opts.retval != expect_retval) {
        std::fprintf(stderr, "np_bpf_prog_bench: unexpected return value %u (want %u)\n", opts.retval,
                     expect_retval);
        std::exit(1);
    }
    return opts.duration;
}

struct ProgInfo {
    std::uint32_t xlated_insns = 0;
    std::uint32_t jited_bytes = 0;
};

ProgInfo progInfo(int fd) {
    bpf_prog_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) die("BPF_OBJ_GET_INFO_BY_FD", errno);
    return {info.xlated_prog_len / 8, info.jited_prog_len};
}

enum class Mode { Steady, First };

struct Case {
    std::string prog;
    std::string frame_name;
    Mode mode;
    int prog_fd;
    int ref_fd;
    std::uint32_t retval;
    const std::vector<std::uint8_t>* frame;
    bool has_flow;  // the program creates a flow (tc); xdp does not
    int flow_fd;    // the flow table of the program's skeleton
};

struct Row {
    Case c;
    Stats ref, prog;
    Stats hit1;  // first mode: the same program right after, flow present, repeat=1
    double ratio = 0;
    const char* verdict = "";
};

// Threat intel at scale: 1M IPv4 prefixes (70% /32, 30% /24) and 100k IPv6 /64s, none
// containing the bench frames' addresses (the lookups walk the trie and miss, the
// common case), installed the way the agent does (ebpf::IntelMaps).
struct IntelScale {
    double install_seconds = 0;
    std::size_t entries = 0;
    bool batched = false;
    std::uint64_t trie_bytes = 0;  // the kernel's memlock figure of the trie
};

std::uint64_t memlockOf(int fd) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string k;
    std::uint64_t v = 0;
    while (in >> k) {
        if (k == "memlock:" && in >> v) return v;
        in.ignore(1 << 16, '\n');
    }
    return 0;
}

IntelScale installIntel(datapath_bpf& s, std::size_t v4, std::size_t v6) {
    auto dup = [](int fd) { return netprobe::util::UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); };
    auto maps = netprobe::ebpf::IntelMaps::adopt(dup(bpf_map__fd(s.maps.intel_ips)), dup(bpf_map__fd(s.maps.intel_state)),
                                                 dup(bpf_map__fd(s.maps.intel_stats)));
    std::mt19937_64 rng(42);
    std::vector<netprobe::ebpf::IntelEntry> e;
    e.reserve(v4 + v6);
    while (e.size() < v4) {
        const std::uint32_t a = static_cast<std::uint32_t>(rng());
        if ((a >> 24) == 198) continue;  // keep the frames' 198.18.0.0/15 out
        netprobe::ebpf::IntelEntry x;
        x.addr[10] = x.addr[11] = 0xff;
        const bool net = rng() % 10 < 3;
        const std::uint32_t m = net ? (a & 0xffffff00u) : a;
        x.addr[12] = static_cast<std::uint8_t>(m >> 24);
        x.addr[13] = static_cast<std::uint8_t>(m >> 16);
        x.addr[14] = static_cast<std::uint8_t>(m >> 8);
        x.addr[15] = static_cast<std::uint8_t>(m);
        x.prefix = net ? 96 + 24 : 128;
        x.value.feed = static_cast<std::uint16_t>(e.size() % 4);
        x.value.confidence = 90;
        e.push_back(x);
    }
    while (e.size() < v4 + v6) {
        netprobe::ebpf::IntelEntry x;
        const std::uint64_t hi = rng();
        x.addr[0] = 0x24;  // 2400::/8, away from the frames' 2001:db8::
        for (int i = 1; i < 8; ++i) x.addr[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(hi >> (i * 8));
        x.prefix = 64;
        e.push_back(x);
    }
    // duplicates (random /24s and /32s can collide) would be replaced, not added: drop them
    std::sort(e.begin(), e.end(), [](const auto& a, const auto& b) {
        return std::tie(a.addr, a.prefix) < std::tie(b.addr, b.prefix);
    });
    e.erase(std::unique(e.begin(), e.end(),
                        [](const auto& a, const auto& b) { return a.addr == b.addr && a.prefix == b.prefix; }),
            e.end());
    auto r = maps->install(e);
    if (!r) {
        std::fprintf(stderr, "np_bpf_prog_bench: intel install: %s\n", r.error().what().c_str());
        std::exit(1);
    }
    IntelScale out{r->seconds, r->entries, r->batched, 0};
    const __u32 zero = 0;
    __u32 inner_id = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(s.maps.intel_ips), &zero, &inner_id) == 0) {
        netprobe::util::UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
        if (inner) out.trie_bytes = memlockOf(inner.get());
    }
    return out;
}

void clearMap(int fd, std::size_t key_size) {
    std::vector<std::uint8_t> key(key_size);
    while (bpf_map_get_next_key(fd, nullptr, key.data()) == 0) bpf_map_delete_elem(fd, key.data());
}

}  // namespace

int main(int argc, char** argv) {
    std::uint32_t rounds = 15, repeat = 200000, first_runs = 1000;
    std::string only;  // run only the cases whose "program frame case" contains this (for perf)
    bool decap = true; // --decap=off: every skeleton loaded without overlay decapsulation (np_enable_decap 0)
    // --trace=armed: packet path tracing on in the first skeleton with one trace of another
    // flow (the match is tried, nothing matches); --trace=match: a trace of the frames'
    // flow (every packet counted at its stage). Default off: the one load and branch.
    std::string trace = "off";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&](const char* p) -> long {
            return std::strtol(a.c_str() + std::strlen(p), nullptr, 10);
        };
        if (a.rfind("--rounds=", 0) == 0) rounds = static_cast<std::uint32_t>(val("--rounds="));
        else if (a.rfind("--repeat=", 0) == 0) repeat = static_cast<std::uint32_t>(val("--repeat="));
        else if (a.rfind("--first-runs=", 0) == 0) first_runs = static_cast<std::uint32_t>(val("--first-runs="));
        else if (a.rfind("--only=", 0) == 0) only = a.substr(7);
        else if (a == "--decap=off" || a == "--decap=on") decap = a == "--decap=on";
        else if (a == "--trace=off" || a == "--trace=armed" || a == "--trace=match") trace = a.substr(8);
        else {
            std::fprintf(stderr,
                         "usage: %s [--rounds=N] [--repeat=N] [--first-runs=N] [--only=SUBSTRING] [--decap=on|off] "
                         "[--trace=off|armed|match]\n",
                         argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || repeat < 1 || first_runs < 1) {
        std::fprintf(stderr, "np_bpf_prog_bench: counts must be >= 1\n");
        return 2;
    }
    libbpf_set_print(quietLibbpf);

    // Pin to one CPU: per-CPU maps, caches and the kernel's timing all stay on it.
    const int cpu = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)) - 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity", errno);

    std::unique_ptr<datapath_bpf, void (*)(datapath_bpf*)> dp(datapath_bpf__open(), datapath_bpf__destroy);
    if (!dp) die("open datapath skeleton", errno);
    dp->rodata->np_enable_decap = decap;
    dp->rodata->np_enable_handshakes = 1;  // the agent's default (--qos=on)
    dp->rodata->np_enable_udp_timing = 1;  // --qos-udp-jitter=on: only the UDP frame's row pays it
    loadCalibrated(*dp, "load datapath skeleton");
    if (trace != "off") {
        // the frames' flow is TCP (and UDP) between 198.18.0.0/15 test addresses: "armed" traces
        // 203.0.113.1 (never in a frame), "match" any packet of family 4
        np_trace_spec spec{};
        spec.family = 4;
        spec.expires_ns = ~0ull;
        if (trace == "armed") {
            spec.daddr.v4m.pad[2] = htonl(0x0000ffff);
            spec.daddr.v4m.v4 = htonl(0xcb007101);
        }
        const std::uint32_t slot = 0;
        if (bpf_map_update_elem(bpf_map__fd(dp->maps.trace_specs), &slot, &spec, BPF_ANY) != 0)
            die("write the trace spec", errno);
        dp->data_trace->np_trace_on = 1;
    }
    std::unique_ptr<reference_bpf, void (*)(reference_bpf*)> ref(reference_bpf__open_and_load(),
                                                                  reference_bpf__destroy);
    if (!ref) die("load reference skeleton", errno);

    // The same programs loaded as the agent runs them by default: security analytics
    // on (host_stats per packet, a ring record per new flow) and, to measure its
    // worst case, mitigation on (an LPM lookup per XDP packet; the blocklist is empty).
    std::unique_ptr<datapath_bpf, void (*)(datapath_bpf*)> sec(datapath_bpf__open(), datapath_bpf__destroy);
    if (!sec) die("open datapath skeleton", errno);
    sec->rodata->np_enable_security = 1;
    sec->rodata->np_mitigate = NP_MITIGATE_ON;
    sec->rodata->np_enable_decap = decap;
    sec->rodata->np_enable_handshakes = 1;  // the agent's default (--qos=on)
    loadCalibrated(*sec, "load datapath skeleton (security on)");
    const npbench::RingPtr sec_ring = npbench::discardingRing("np_bpf_prog_bench", bpf_map__fd(sec->maps.sec_events));
    const int xdp_s = bpf_program__fd(sec->progs.netprobe_xdp);
    const int tc_in_s = bpf_program__fd(sec->progs.netprobe_tc_in);
    const int tc_eg_s = bpf_program__fd(sec->progs.netprobe_tc_eg);
    const int flow_s = bpf_map__fd(sec->maps.flow_stats);

    // Security on and threat intel with 1.1M prefixes (alert feeds: nothing dropped).
    std::unique_ptr<datapath_bpf, void (*)(datapath_bpf*)> intel(datapath_bpf__open(), datapath_bpf__destroy);
    if (!intel) die("open datapath skeleton", errno);
    intel->rodata->np_enable_security = 1;
    intel->rodata->np_enable_intel = 1;
    intel->rodata->np_enable_decap = decap;
    intel->rodata->np_enable_handshakes = 1;  // the agent's default (--qos=on)
    loadCalibrated(*intel, "load datapath skeleton (intel on)");
    const IntelScale scale = installIntel(*intel, 1000000, 100000);
    std::printf("intel: %zu prefixes installed in %.2f s (%s), trie %.1f MiB (memlock)\n", scale.entries,
                scale.install_seconds, scale.batched ? "batched" : "one by one",
                static_cast<double>(scale.trie_bytes) / (1 << 20));
    const npbench::RingPtr intel_ring = npbench::discardingRing("np_bpf_prog_bench", bpf_map__fd(intel->maps.sec_events));
    const int tc_in_i = bpf_program__fd(intel->progs.netprobe_tc_in);
    const int flow_i = bpf_map__fd(intel->maps.flow_stats);

    // Security on and name capture on (domain indicators without --l7): a TCP frame
    // without payload, so what is measured is the check every packet pays.
    std::unique_ptr<datapath_bpf, void (*)(datapath_bpf*)> names(datapath_bpf__open(), datapath_bpf__destroy);
    if (!names) die("open datapath skeleton", errno);
    names->rodata->np_enable_security = 1;
    names->rodata->np_enable_names = 1;
    names->rodata->np_enable_decap = decap;
    names->rodata->np_enable_handshakes = 1;  // the agent's default (--qos=on)
    loadCalibrated(*names, "load datapath skeleton (names on)");
    const npbench::RingPtr names_ring = npbench::discardingRing("np_bpf_prog_bench", bpf_map__fd(names->maps.sec_events));
    const int tc_in_n = bpf_program__fd(names->progs.netprobe_tc_in);
    const int flow_n = bpf_map__fd(names->maps.flow_stats);

    const int xdp = bpf_program__fd(dp->progs.netprobe_xdp);
    const int tc_in = bpf_program__fd(dp->progs.netprobe_tc_in);
    const int tc_eg = bpf_program__fd(dp->progs.netprobe_tc_eg);
    const int ref_tc = bpf_program__fd(ref->progs.np_bench_ref_tc);
    const int ref_xdp = bpf_program__fd(ref->progs.np_bench_ref_xdp);
    const int flow_fd = bpf_map__fd(dp->maps.flow_stats);
    const int err_fd = bpf_map__fd(dp->maps.map_errors);

    const auto v4 = ipv4TcpFrame();
    const auto v6 = ipv6TcpFrame();
    const auto u4 = ipv4UdpFrame();
    constexpr std::uint32_t kTcUnspec = 0xffffffffu, kXdpPass = 2;

    std::vector<Case> cases = {
        {"netprobe_xdp", "ipv4/tcp 64B", Mode::Steady, xdp, ref_xdp, kXdpPass, &v4, false, flow_fd},
        {"netprobe_tc_in", "ipv4/tcp 64B", Mode::Steady, tc_in, ref_tc, kTcUnspec, &v4, true, flow_fd},
        {"netprobe_tc_eg", "ipv4/tcp 64B", Mode::Steady, tc_eg, ref_tc, kTcUnspec, &v4, true, flow_fd},
        {"netprobe_tc_in", "ipv6/tcp 84B", Mode::Steady, tc_in, ref_tc, kTcUnspec, &v6, true, flow_fd},
        {"netprobe_tc_eg", "ipv6/tcp 84B", Mode::Steady, tc_eg, ref_tc, kTcUnspec, &v6, true, flow_fd},
        {"netprobe_tc_in", "ipv4/tcp 64B", Mode::First, tc_in, ref_tc, kTcUnspec, &v4, true, flow_fd},
        {"netprobe_tc_in+udp", "ipv4/udp 64B", Mode::Steady, tc_in, ref_tc, kTcUnspec, &u4, true, flow_fd},
        {"netprobe_tc_eg", "ipv4/tcp 64B", Mode::First, tc_eg, ref_tc, kTcUnspec, &v4, true, flow_fd},
        {"netprobe_tc_in", "ipv6/tcp 84B", Mode::First, tc_in, ref_tc, kTcUnspec, &v6, true, flow_fd},
        {"netprobe_xdp+sec", "ipv4/tcp 64B", Mode::Steady, xdp_s, ref_xdp, kXdpPass, &v4, false, flow_s},
        {"netprobe_tc_in+sec", "ipv4/tcp 64B", Mode::Steady, tc_in_s, ref_tc, kTcUnspec, &v4, true, flow_s},
        {"netprobe_tc_eg+sec", "ipv4/tcp 64B", Mode::Steady, tc_eg_s, ref_tc, kTcUnspec, &v4, true, flow_s},
        {"netprobe_tc_in+sec", "ipv6/tcp 84B", Mode::Steady, tc_in_s, ref_tc, kTcUnspec, &v6, true, flow_s},
        {"netprobe_tc_in+sec", "ipv4/tcp 64B", Mode::First, tc_in_s, ref_tc, kTcUnspec, &v4, true, flow_s},
        {"netprobe_tc_in+intel", "ipv4/tcp 64B", Mode::Steady, tc_in_i, ref_tc, kTcUnspec, &v4, true, flow_i},
        {"netprobe_tc_in+intel", "ipv6/tcp 84B", Mode::Steady, tc_in_i, ref_tc, kTcUnspec, &v6, true, flow_i},
        {"netprobe_tc_in+intel", "ipv4/tcp 64B", Mode::First, tc_in_i, ref_tc, kTcUnspec, &v4, true, flow_i},
        {"netprobe_tc_in+intel", "ipv6/tcp 84B", Mode::First, tc_in_i, ref_tc, kTcUnspec, &v6, true, flow_i},
        {"netprobe_tc_in+sec+names", "ipv4/tcp 64B", Mode::Steady, tc_in_n, ref_tc, kTcUnspec, &v4, true, flow_n},
        {"netprobe_tc_in+sec+names", "ipv4/tcp 64B", Mode::First, tc_in_n, ref_tc, kTcUnspec, &v4, true, flow_n},
    };

    std::printf("BPF_PROG_TEST_RUN on CPU %d: %u rounds, steady repeat=%u, first-packet runs/round=%u\n", cpu,
                rounds, repeat, first_runs);
    std::vector<Row> rows;
    int errors = 0;
    for (const auto& c : cases) {
        const std::string label = c.prog + " " + c.frame_name + (c.mode == Mode::Steady ? " steady" : " first");
        if (!only.empty() && label.find(only) == std::string::npos) continue;
        const int flow_fd = c.flow_fd;
        clearMap(flow_fd, sizeof(flow_key));
        std::vector<double> r_ns, p_ns, h_ns;
        if (c.mode == Mode::Steady) {
            // Warm-up: creates the flow and device entries, faults in the JIT image.
            testRun(c.prog_fd, *c.frame, 1000, c.retval);
            testRun(c.ref_fd, *c.frame, 1000, c.retval);
            for (std::uint32_t r = 0; r < rounds; ++r) {
                r_ns.push_back(testRun(c.ref_fd, *c.frame, repeat, c.retval));
                p_ns.push_back(testRun(c.prog_fd, *c.frame, repeat, c.retval));
            }
        } else {
            // Learn the flow key the program creates, then delete it before every run.
            testRun(c.prog_fd, *c.frame, 1, c.retval);
            flow_key key{};
            if (bpf_map_get_next_key(flow_fd, nullptr, &key) != 0) {
                std::fprintf(stderr, "np_bpf_prog_bench: %s created no flow\n", c.prog.c_str());
                return 1;
            }
            flow_key absent = key;
            absent.src_port ^= 0xffff;
            for (std::uint32_t r = 0; r < rounds; ++r) {
                // Per round, the median of first_runs single runs on each side, alternating.
                std::vector<double> rr, pp, hh;
                rr.reserve(first_runs);
                pp.reserve(first_runs);
                hh.reserve(first_runs);
                for (std::uint32_t i = 0; i < first_runs; ++i) {
                    bpf_map_delete_elem(flow_fd, &absent);  // ENOENT: same syscall as the prog side
                    rr.push_back(testRun(c.ref_fd, *c.frame, 1, c.retval));
                    if (bpf_map_delete_elem(flow_fd, &key) != 0) die("delete flow", errno);
                    pp.push_back(testRun(c.prog_fd, *c.frame, 1, c.retval));
                    hh.push_back(testRun(c.prog_fd, *c.frame, 1, c.retval));  // now a hit
                }
                ring_buffer__consume(sec_ring.get());  // the +sec insert sends a record per run
                ring_buffer__consume(names_ring.get());
                ring_buffer__consume(intel_ring.get());
                r_ns.push_back(stats(rr).median);
                p_ns.push_back(stats(pp).median);
                h_ns.push_back(stats(hh).median);
            }
        }
        // Sanity: exactly one flow with the frame's family, no map errors.
        if (c.has_flow) {
            flow_key k{}, next{};
            int n = 0;
            const flow_key* prev = nullptr;
            while (bpf_map_get_next_key(flow_fd, prev, &next) == 0) {
                ++n;
                k = next;
                prev = &k;
            }
            const int fam = c.frame == &v6 ? 6 : 4;
            const bool udp = c.frame == &u4;
            if (n != 1 || k.family != fam || k.proto != (udp ? 17 : 6) || k.src_port != 40000 ||
                k.dst_port != (udp ? 5004 : 5201)) {
                std::fprintf(stderr, "np_bpf_prog_bench: %s/%s: unexpected flow table (%d entries)\n",
                             c.prog.c_str(), c.frame_name.c_str(), n);
                ++errors;
            }
        }
        Row row{c, stats(r_ns), stats(p_ns), h_ns.empty() ? Stats{} : stats(h_ns)};
        row.ratio = row.ref.median > 0 ? row.prog.median / row.ref.median : 0;
        if (c.mode == Mode::First) row.verdict = "info";
        else row.verdict = row.ratio <= kAim ? "PASS" : row.ratio <= kFloor ? "PASS(floor)" : "MISS";
        rows.push_back(row);
    }
    // map_errors must be all zero (a failed insert would make the numbers meaningless).
    for (int efd : {err_fd, bpf_map__fd(sec->maps.map_errors), bpf_map__fd(intel->maps.map_errors)})
    for (std::uint32_t i = 0; i < NP_MAP_ID_MAX; ++i) {
        std::vector<std::uint64_t> v(static_cast<std::size_t>(libbpf_num_possible_cpus()));
        if (bpf_map_lookup_elem(efd, &i, v.data()) != 0) die("read map_errors", errno);
        for (auto x : v)
            if (x) {
                std::fprintf(stderr, "np_bpf_prog_bench: map_errors[%u] = %llu\n", i,
                             static_cast<unsigned long long>(x));
                ++errors;
                break;
            }
    }

    std::printf("\n%-15s %-13s %-7s %10s %10s %7s %10s  %s\n", "program", "frame", "case", "ref ns", "prog ns",
                "ratio", "prog-ref", "verdict (floor <=5x, aim <=3x)");
    for (const auto& r : rows) {
        std::printf("%-19s %-13s %-7s %10.1f %10.1f %6.2fx %10.1f  %s   [prog min/max %.0f/%.0f]\n",
                    r.c.prog.c_str(), r.c.frame_name.c_str(), r.c.mode == Mode::Steady ? "steady" : "first",
                    r.ref.median, r.prog.median, r.ratio, r.prog.median - r.ref.median, r.verdict, r.prog.min,
                    r.prog.max);
    }
    for (const auto& r : rows)
        if (r.c.mode == Mode::First)
            std::printf("%s %s first: the insert adds %.0f ns over a lookup hit measured the same way "
                        "(repeat=1: hit %.0f ns, new flow %.0f ns)\n",
                        r.c.prog.c_str(), r.c.frame_name.c_str(), r.prog.median - r.hit1.median, r.hit1.median,
                        r.prog.median);
    std::printf("\nprogram sizes:");
    for (auto [name, fd] : {std::pair{"netprobe_xdp", xdp}, {"netprobe_tc_in", tc_in}, {"netprobe_tc_eg", tc_eg},
                            {"np_bench_ref_tc", ref_tc}, {"np_bench_ref_xdp", ref_xdp}}) {
        auto pi = progInfo(fd);
        std::printf("  %s %u insns/%u B jited;", name, pi.xlated_insns, pi.jited_bytes);
    }
    std::printf("\n");
    for (const auto& r : rows) {
        std::string frame = r.c.frame_name.substr(0, 4);
        std::printf("RESULT\t%s %s %s\t%.1f\t%.1f\t%.2f\t%s\n", r.c.prog.c_str(), frame.c_str(),
                    r.c.mode == Mode::Steady ? "steady" : "first", r.ref.median, r.prog.median, r.ratio, r.verdict);
        if (r.c.mode == Mode::First)
            std::printf("RESULT\t%s %s insert_extra\t%.0f\n", r.c.prog.c_str(), frame.c_str(),
                        r.prog.median - r.hit1.median);
    }
    std::printf("RESULT\tintel_install\t%zu\t%.2f\t%.1f\n", scale.entries, scale.install_seconds,
                static_cast<double>(scale.trie_bytes) / (1 << 20));
    if (errors) std::fprintf(stderr, "np_bpf_prog_bench: %d error(s)\n", errors);
    return errors ? 1 : 0;
}
