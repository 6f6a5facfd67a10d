// DNS messages (l7::parseDns) and the tracker's DNS paths (UDP datagrams and TCP length
// framing) on arbitrary bytes: no crash, names bounded, every answer of a known type.
#include <string>
#include <string_view>

#include <netprobe/l7/dns.hpp>
#include <netprobe/l7/tracker.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    if (auto m = netprobe::l7::parseDns(in)) {
        NP_FUZZ_CHECK(!m->qname.empty() && m->qname.size() <= 256);
        NP_FUZZ_CHECK(m->answers.size() <= 32);
        for (const auto& a : m->answers) NP_FUZZ_CHECK(a.type == 1 || a.type == 28 || a.type == 5);
    }
    // The same bytes as a sequence of captured messages on one UDP and one TCP socket.
    netprobe::l7::TrackerOptions o;
    o.max_dns_pending = 8;
    netprobe::l7::ConnectionTracker t(o);
    std::size_t pos = 0;
    std::uint64_t ts = 0;
    while (pos < size) {
        const std::uint8_t ctl = data[pos++];
        const std::size_t n = std::min<std::size_t>(1 + (ctl & 0x3f), size - pos);
        netprobe::ebpf::L7Message m;
        m.sock = (ctl & 0x40) ? 1 : 2;
        m.ip_proto = (ctl & 0x40) ? 17 : 6;
        m.protocol = NP_L7_DNS;
        m.direction = (ctl & 0x80) ? NP_L7_SEND : NP_L7_RECV;
        m.ts_ns = ++ts;
        m.local_port = 53;
        m.remote_port = static_cast<std::uint16_t>(1000 + (ctl & 3));
        m.head = in.substr(pos, n);
        m.len = static_cast<std::uint32_t>(n + ((ctl & 0x20) ? 300 : 0));  // some longer than copied
        pos += n;
        t.feed(m);
    }
    for (const auto& r : t.take()) NP_FUZZ_CHECK(r.protocol == "dns" && !r.path.empty());
    t.expire(ts + 60'000'000'000ull);
    NP_FUZZ_CHECK(t.connections() <= 2);
    return 0;
}
