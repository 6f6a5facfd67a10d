// What the request/response parser harnesses (l7_redis, l7_postgres, l7_mysql) share: the
// input read as one connection end's syscalls, fed to an l7::MessageParser, and the
// invariants every exchange keeps whatever the bytes.
//
// Input: chunks, each a control byte, a size byte and that many bytes:
//   control bit 7     the process wrote it (else read it)
//   control bit 6     the syscall moved more than the capture copied (len > head)
//   control bit 5     ... and the capture has its last bytes (tail, at most NP_L7_TAIL_MAX);
//                     without it, the chunk's bytes are also its pieces (l7::Chunk::pieces,
//                     read as the kernel's encoding: offsets and lengths of the input's choosing)
//   control bits 0-4  how much more was moved: 1 + k * 1021 bytes, or 2^31 for k = 31
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string_view>

#include <netprobe/abi.h>
#include <netprobe/l7/parser.hpp>

#include "fuzz_util.hpp"

namespace netprobe::fuzz {

class ExchangeChecker final : public l7::ExchangeSink {
public:
    // protocol: the harness's own checks of each exchange.
    explicit ExchangeChecker(std::function<void(const l7::Exchange&)> protocol) : protocol_(std::move(protocol)) {}
    void onExchange(l7::Exchange&& e) override {
        NP_FUZZ_CHECK(!e.method.empty() && e.method.size() <= 32);
        NP_FUZZ_CHECK(e.path.size() <= 256);
        NP_FUZZ_CHECK(e.error == !e.error_code.empty());
        NP_FUZZ_CHECK(e.error_code.size() <= 24);
        NP_FUZZ_CHECK(!(e.error && e.outcome_unknown));
        protocol_(e);
        bytes += e.request_bytes + e.response_bytes;
    }
    std::uint64_t bytes = 0;  // requests' and responses' bytes reported

private:
    std::function<void(const l7::Exchange&)> protocol_;
};

// Feeds the chunks of `in`, then closes the connection.
inline void feedChunks(l7::MessageParser& parser, const ExchangeChecker& checker, std::string_view in) {
    std::size_t pos = 0;
    std::uint64_t ts = 0, moved = 0;
    while (pos + 2 <= in.size()) {
        const auto ctl = static_cast<std::uint8_t>(in[pos]);
        const std::size_t n = std::min<std::size_t>(static_cast<std::uint8_t>(in[pos + 1]), in.size() - pos - 2);
        const std::string_view bytes = in.substr(pos + 2, n);
        pos += 2 + n;
        l7::Chunk c{bytes, bytes.size(), {}, ts += 1000};
        if (ctl & 0x40) {
            const std::size_t t = (ctl & 0x20) ? std::min<std::size_t>(bytes.size() / 2, NP_L7_TAIL_MAX) : 0;
            c.head = bytes.substr(0, bytes.size() - t);
            c.tail = bytes.substr(bytes.size() - t);
            const unsigned k = ctl & 0x1f;
            c.len = bytes.size() + (k == 31 ? (std::uint64_t{1} << 31) : 1 + k * std::uint64_t{1021});
            if (!(ctl & 0x20)) c.pieces = bytes;
        }
        moved += c.len;
        parser.feed((ctl & 0x80) != 0, c);
        // Every byte reported is a byte the syscalls moved, reported once.
        NP_FUZZ_CHECK(checker.bytes <= moved);
    }
    parser.close();
    NP_FUZZ_CHECK(checker.bytes <= moved);
}

}  // namespace netprobe::fuzz
