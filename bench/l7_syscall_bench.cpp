// np_l7_syscall_bench: the cost the L7 capture adds to a syscall, and the record rate at
// which its ring starts to lose, measured in this process with the real programs.
//  1. ns per write(2) of 100 bytes: to /dev/null (not a socket), on a loopback TCP
//     connection carrying HTTP requests (captured: a record per syscall), and on one
//     carrying binary data (classified as nothing: skipped) - without the capture
//     loaded, then with it (its programs see this process: exclude_self off). The
//     writing thread drains the server ends itself (no second thread to wake).
//  2. Ring capacity: 4 threads write HTTP requests on their own connections as fast as
//     they can for 2 s while a handler counts records; records/s delivered, and the
//     kernel's ring_full count (lost, counted) over the same time.
// Output: human lines on stderr, RESULT<TAB>name<TAB>value on stdout (bench/run.sh).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <netprobe/ebpf/l7_capture.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
    int client = -1, server = -1;
};

Conn loopbackPair() {
    int l = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(l, 1);
    socklen_t len = sizeof a;
    ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
    Conn c;
    c.client = ::socket(AF_INET, SOCK_STREAM, 0);
    ::connect(c.client, reinterpret_cast<sockaddr*>(&a), sizeof a);
    c.server = ::accept(l, nullptr, nullptr);
    ::close(l);
    int one = 1;
    ::setsockopt(c.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

// ns per write of msg to fd, best of 5 rounds of n writes. With drain_fd (the server end
// of a loopback TCP connection, non-blocking) this thread reads it empty after every 256
// writes (25 KiB, within the receive buffer) and at the end: no second thread, so no
// wakeup and no scheduling of another thread in the figure, which then moves by tens of
// ns between runs instead of microseconds. The drain's reads are in the figure (one read
// per 256 writes, captured too where the connection is).
double nsPerWrite(int fd, const std::string& msg, int n, int drain_fd = -1) {
    std::vector<char> buf(1 << 16);
    auto drain = [&] {
        if (drain_fd < 0) return;
        while (::read(drain_fd, buf.data(), buf.size()) > 0) {
        }
    };
    double best = 1e18;
    for (int round = 0; round < 5; ++round) {
        auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) {
            if (::write(fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) return -1;
            if (i % 256 == 255) drain();
        }
        drain();
        const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n;
        best = std::min(best, ns);
    }
    return best;
}

struct Costs {
    double devnull = 0, http = 0, binary = 0;
};

Costs measure(int n) {
    Costs c;
    int null = ::open("/dev/null", O_WRONLY);
    c.devnull = nsPerWrite(null, std::string(100, 'x'), n);
    ::close(null);
    Conn h = loopbackPair(), b = loopbackPair();
    for (int fd : {h.server, b.server}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    std::string req = "GET /bench HTTP/1.1\r\nHost: x\r\n";
    req += std::string(100 - req.size() - 2, 'a') + "\r\n";
    std::string bin(100, '\x01');
    c.http = nsPerWrite(h.client, req, n, h.server);
    c.binary = nsPerWrite(b.client, bin, n, b.server);
    for (int fd : {h.client, h.server, b.client, b.server}) ::close(fd);
    return c;
}

// A thread that reads and discards everything the server end receives (the ring test).
std::thread drain(int fd, std::atomic<bool>& stop) {
    return std::thread([fd, &stop] {
        std::vector<char> buf(1 << 16);
        while (!stop.load(std::memory_order_relaxed)) {
            if (::read(fd, buf.data(), buf.size()) <= 0) return;
        }
    });
}

}  // namespace

int main() {
    const int n = 100000;
    const Costs off = measure(n);
    std::atomic<std::uint64_t> records{0};
    netprobe::ebpf::L7CaptureOptions o;
    o.exclude_self = false;
    auto cap = netprobe::ebpf::L7Capture::create(o, [&](const netprobe::ebpf::L7Message&) {
        records.fetch_add(1, std::memory_order_relaxed);
    });
    if (!cap) {
        std::fprintf(stderr, "L7 capture: %s\n", cap.error().what().c_str());
        return 1;
    }
    const Costs on = measure(n);
    std::fprintf(stderr, "ns per 100-byte write(2): /dev/null %.0f -> %.0f, HTTP socket %.0f -> %.0f, binary socket %.0f -> %.0f\n",
                 off.devnull, on.devnull, off.http, on.http, off.binary, on.binary);
    std::printf("RESULT\tl7_ns_devnull\t%.0f\n", on.devnull - off.devnull);
    std::printf("RESULT\tl7_ns_http_socket\t%.0f\n", on.http - off.http);
    std::printf("RESULT\tl7_ns_binary_socket\t%.0f\n", on.binary - off.binary);

    // 2. ring capacity
    auto k0 = (*cap)->counters();
    const std::uint64_t r0 = records.load();
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    std::vector<Conn> conns;
    std::vector<std::thread> drains;
    for (int t = 0; t < 4; ++t) conns.push_back(loopbackPair());
    for (auto& c : conns) drains.push_back(drain(c.server, stop));
    const auto t0 = Clock::now();
    for (auto& c : conns)
        writers.emplace_back([&stop, fd = c.client] {
            const std::string req = "GET /load HTTP/1.1\r\nHost: x\r\n\r\n";
            while (!stop.load(std::memory_order_relaxed))
                if (::write(fd, req.data(), req.size()) <= 0) return;
        });
    std::this_thread::sleep_for(std::chrono::seconds(2));
    stop = true;
    for (auto& w : writers) w.join();
    for (auto& c : conns) ::shutdown(c.client, SHUT_RDWR);
    for (auto& d : drains) d.join();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the reader drains the ring
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count() - 0.5;
    auto k1 = (*cap)->counters();
    const double got = static_cast<double>(records.load() - r0);
    const double lost = k0 && k1 ? static_cast<double>((*k1)[NP_L7_CNT_RING_FULL] - (*k0)[NP_L7_CNT_RING_FULL]) : -1;
    std::fprintf(stderr, "ring: %.0f records/s delivered, %.0f/s lost (ring full, counted) with 4 writers flat out\n",
                 got / secs, lost / secs);
    std::printf("RESULT\tl7_ring_records_per_second\t%.0f\n", got / secs);
    std::printf("RESULT\tl7_ring_lost_per_second\t%.0f\n", lost / secs);
    for (auto& c : conns) {
        ::close(c.client);
        ::close(c.server);
    }
    return 0;
}
