// Internal: calibration of the datapath's jiffies clock (bpf/lib/clock.h). Header-only
// (libbpf and libc alone), so the agent, the BPF tests, the packet fuzzer and the
// benchmarks set the programs' clock up the same way.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>

namespace netprobe::ebpf {

// Sets np_clock of a loaded datapath skeleton (any skeleton with the np_clock_probe
// program and the .data.clock / .data.clock_probe sections) so that its programs read
// CLOCK_MONOTONIC at tick resolution from jiffies. tick_ns: the coarse clock's
// resolution (clock_getres(CLOCK_MONOTONIC_COARSE) is the kernel's TICK_NSEC); base_ns:
// the median of coarse_ns - jiffies x tick_ns over a few probe runs (a run can read
// the two across a tick update: one tick off). Returns 0, or -errno with np_clock left
// at tick_ns 0 (the programs then call bpf_ktime_get_coarse_ns()). Call before
// anything is attached.
template <class Skel>
[[nodiscard]] int calibrateClock(Skel& s) noexcept {
    timespec res{};
    if (::clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0) return -errno;
    const std::uint64_t tick =
        static_cast<std::uint64_t>(res.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(res.tv_nsec);
    // HZ between 24 and 10000: anything else is not a tick
    if (tick < 100'000 || tick > 41'666'667) return -ERANGE;
    if (!s.data_clock || !s.data_clock_probe) return -ENOENT;
    const int fd = bpf_program__fd(s.progs.np_clock_probe);
    if (fd < 0) return -EBADF;
    std::array<unsigned char, 64> frame{};
    constexpr std::size_t kRuns = 7;
    std::array<std::uint64_t, kRuns> base{};
    for (auto& b : base) {
        bpf_test_run_opts o{};
        o.sz = sizeof(o);
        o.data_in = frame.data();
        o.data_size_in = static_cast<__u32>(frame.size());
        o.repeat = 1;
        if (int err = bpf_prog_test_run_opts(fd, &o); err) return err < 0 ? err : -EIO;
        const np_clock_sample smp = s.data_clock_probe->np_clock_sample;
        if (smp.coarse_ns == 0) return -EIO;
        b = smp.coarse_ns - smp.jiffies * tick;  // mod 2^64, as the programs compute it
    }
    std::sort(base.begin(), base.end());
    const std::uint64_t median = base[kRuns / 2];
    // most runs agree within a tick (a torn read is one tick off)
    const auto agree = std::count_if(base.begin(), base.end(), [&](std::uint64_t b) {
        const std::uint64_t d = b > median ? b - median : median - b;
        return d <= tick / 2;
    });
    if (agree < static_cast<long>(kRuns / 2 + 1)) return -EAGAIN;
    s.data_clock->np_clock.base_ns = median;
    s.data_clock->np_clock.tick_ns = tick;
    return 0;
}

}  // namespace netprobe::ebpf
