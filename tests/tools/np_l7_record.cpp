// np_l7_record - writes what the L7 capture delivers for one TCP port (either end) as a
// recording (tests/support/l7_recording.hpp), until SIGINT/SIGTERM. Needs root. Used by
// tests/data/l7/record.py to make the unit tests' message tables from real servers.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <netprobe/ebpf/l7_capture.hpp>

#include "support/l7_recording.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: np_l7_record PORT OUTPUT\n");
        return 2;
    }
    const long port = std::strtol(argv[1], nullptr, 10);
    if (port <= 0 || port > 65535) {
        std::fprintf(stderr, "np_l7_record: bad port %s\n", argv[1]);
        return 2;
    }
    std::ofstream out(argv[2]);
    if (!out) {
        std::fprintf(stderr, "np_l7_record: cannot write %s\n", argv[2]);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before the capture's thread starts: it inherits the mask
    std::mutex mu;
    std::uint64_t t0 = 0;
    netprobe::ebpf::L7CaptureOptions opts;
    opts.tls = false;
    auto cap = netprobe::ebpf::L7Capture::create(opts, [&](const netprobe::ebpf::L7Message& m) {
        if (m.local_port != port && m.remote_port != port) return;
        std::lock_guard g(mu);
        if (!t0) t0 = m.ts_ns;
        netprobe::testing::writeL7Message(out, m, t0);
    });
    if (!cap) {
        std::fprintf(stderr, "np_l7_record: %s\n", cap.error().what().c_str());
        return 1;
    }
    std::fprintf(stderr, "np_l7_record: recording port %ld\n", port);
    int sig = 0;
    sigwait(&set, &sig);
    cap->reset();  // drains and stops the capture
    std::lock_guard g(mu);
    out.flush();
    return out ? 0 : 1;
}
