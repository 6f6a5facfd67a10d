// The HTTP/2 + gRPC parser (frames across chunks, HEADERS/CONTINUATION/padding/priority,
// HPACK with per-direction dynamic tables, streams paired by id, RST_STREAM, lost bytes)
// on arbitrary syscalls of one connection end, in the chunk format of l7_parser_fuzz.hpp
// (directions, cuts, tails).
//
// The first byte: bits 0-2 bound the open streams (1..8); bit 4 feeds the client preface
// first as written by this end, bit 5 as read by it (bit 4 wins); bit 3 is the split mode:
// every chunk is taken as captured whole and fed to a second parser split in two at a
// point the chunk's bytes pick - where neither parser lost framing, both must report the
// same exchanges and counters.
//
// Invariants: no crash; http2 exchanges carry a bounded method, an HTTP status and no
// error fields; gRPC ones the RPC as method and route, a code 0..16 named as such (or 17,
// outcome unknown, unnamed); no byte reported twice.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/l7/parser.hpp>

#include "fuzz_util.hpp"

namespace {

using netprobe::l7::Chunk;
using netprobe::l7::Exchange;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

using Seen = std::tuple<std::string, std::string, std::string, std::string, int, bool, bool, std::string, bool,
                        std::uint64_t, std::uint64_t>;

class Checker final : public netprobe::l7::ExchangeSink {
public:
    void onExchange(Exchange&& e) override {
        NP_FUZZ_CHECK(!e.method.empty());
        NP_FUZZ_CHECK(e.path.size() <= 256);
        if (e.protocol == "grpc") {
            NP_FUZZ_CHECK(e.method == e.path && e.route == e.path);
            NP_FUZZ_CHECK(e.status >= 0 && e.status <= 17);
            NP_FUZZ_CHECK(e.outcome_unknown == (e.status == 17));
            NP_FUZZ_CHECK(e.error == (e.status != 0 && e.status != 17));
            NP_FUZZ_CHECK(e.error_code == (e.outcome_unknown ? "" : netprobe::l7::grpcStatusName(e.status)));
        } else {
            NP_FUZZ_CHECK(e.protocol == "http2");
            NP_FUZZ_CHECK(e.method.size() <= 16);
            NP_FUZZ_CHECK(e.status >= 0 && e.status <= 999);
            NP_FUZZ_CHECK(!e.error && !e.outcome_unknown && e.error_code.empty());
            NP_FUZZ_CHECK(!e.route.empty() && e.route.size() <= 128 + 4);
        }
        bytes += e.request_bytes + e.response_bytes;
        seen.emplace_back(e.protocol, e.method, e.path, e.route, e.status, e.error, e.outcome_unknown, e.error_code,
                          e.client, e.request_bytes, e.response_bytes);
    }
    std::uint64_t bytes = 0;
    std::vector<Seen> seen;
};

// The chunks of l7_parser_fuzz.hpp's format.
struct Syscall {
    bool sending;
    Chunk chunk;
};

std::vector<Syscall> chunks(std::string_view in, bool whole) {
    std::vector<Syscall> out;
    std::size_t pos = 0;
    std::uint64_t ts = 0;
    while (pos + 2 <= in.size()) {
        const auto ctl = static_cast<std::uint8_t>(in[pos]);
        const std::size_t n = std::min<std::size_t>(static_cast<std::uint8_t>(in[pos + 1]), in.size() - pos - 2);
        const std::string_view bytes = in.substr(pos + 2, n);
        pos += 2 + n;
        Chunk c{bytes, bytes.size(), {}, ts += 1000};
        if (!whole && (ctl & 0x40)) {
            const std::size_t t = (ctl & 0x20) ? std::min<std::size_t>(bytes.size() / 2, NP_L7_TAIL_MAX) : 0;
            c.head = bytes.substr(0, bytes.size() - t);
            c.tail = bytes.substr(bytes.size() - t);
            const unsigned k = ctl & 0x1f;
            c.len = bytes.size() + (k == 31 ? (std::uint64_t{1} << 31) : 1 + k * std::uint64_t{1021});
        }
        out.push_back({(ctl & 0x80) != 0, c});
    }
    return out;
}

// Where the second parser splits a chunk (0: not at all). Never so that a preface at the
// start is cut or one starts the second part: the preface is only looked for at a chunk's
// start, so that would change what the bytes mean, not how they were read.
std::size_t splitPoint(std::string_view b) {
    if (b.size() < 2) return 0;
    std::size_t k = 1 + static_cast<std::uint8_t>(b.back()) % (b.size() - 1);
    if (b.starts_with(kPreface) && k < kPreface.size()) k = kPreface.size();
    if (k >= b.size() || b.substr(k).starts_with(kPreface)) return 0;
    return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in = netprobe::fuzz::text(data, size).substr(1);
    const std::size_t max_streams = 1 + (data[0] & 7);
    const bool split_mode = data[0] & 0x08;
    const bool preface = data[0] & 0x30;
    const bool preface_sent = data[0] & 0x10;

    Checker a;
    auto pa = netprobe::l7::makeHttp2Parser(a, max_streams);
    Checker b;
    auto pb = netprobe::l7::makeHttp2Parser(b, max_streams);
    std::uint64_t moved = 0;
    if (preface) {
        pa->feed(preface_sent, Chunk{kPreface, kPreface.size(), {}, 0});
        pb->feed(preface_sent, Chunk{kPreface, kPreface.size(), {}, 0});
    }
    for (const Syscall& s : chunks(in, split_mode)) {
        moved += s.chunk.len;
        pa->feed(s.sending, s.chunk);
        NP_FUZZ_CHECK(a.bytes <= moved);  // every byte reported is a byte moved, reported once
        if (!split_mode) continue;
        const std::string_view h = s.chunk.head;
        if (const std::size_t k = splitPoint(h)) {
            pb->feed(s.sending, Chunk{h.substr(0, k), k, {}, s.chunk.ts_ns});
            pb->feed(s.sending, Chunk{h.substr(k), h.size() - k, {}, s.chunk.ts_ns + 1});
        } else {
            pb->feed(s.sending, s.chunk);
        }
    }
    pa->close();
    pb->close();
    NP_FUZZ_CHECK(a.bytes <= moved);
    if (split_mode && pa->counters().desyncs == 0 && pb->counters().desyncs == 0) {
        // Framing never lost: how the bytes were cut into reads changes nothing.
        NP_FUZZ_CHECK(a.seen == b.seen);
        NP_FUZZ_CHECK(pa->counters().unanswered == pb->counters().unanswered);
        NP_FUZZ_CHECK(pa->counters().unmatched_responses == pb->counters().unmatched_responses);
    }
    return 0;
}
