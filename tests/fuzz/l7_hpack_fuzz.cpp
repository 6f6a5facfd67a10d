// HPACK (RFC 7541) decoding on arbitrary header blocks: integers, string literals, the
// Huffman code, the dynamic table with its insertions, evictions and size updates, and a
// stale decoder. Also hpackHuffmanDecode on the raw bytes.
//
// The first byte: bits 0-1 pick the decoder's limit (0, 256, 4096, 65536), bit 2 marks it
// stale at once, bit 3 after its first block; bits 4-7 bound the Huffman output
// (n * 256 bytes, 16 KiB for 0). Then header blocks, each a length byte and that many
// bytes, decoded in order by one decoder.
//
// Invariants: no crash; decoded strings bounded; a failed block leaves the decoder stale,
// and a stale one stays stale; the dynamic table never exceeds the limit (read back by
// decoding indexes 62, 63, ... on a copy); every field decoded re-encodes as a literal
// that a new decoder decodes to the same field; Huffman output within its bound and at
// most 8/5 of the input (no code is shorter than 5 bits).
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <netprobe/l7/hpack.hpp>

#include "fuzz_util.hpp"
#include "support/hpack_encode.hpp"

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

using netprobe::testing::hpack::indexed;
using netprobe::testing::hpack::literal;

std::size_t tableBytes(const netprobe::l7::HpackDecoder& d) {
    netprobe::l7::HpackDecoder probe = d;
    std::size_t n = 0;
    for (std::uint64_t i = 62;; ++i) {
        bool got = false;
        if (!probe.decode(indexed(i), [&](std::string_view name, std::string_view value) {
                n += name.size() + value.size() + 32;
                got = true;
            }))
            break;
        NP_FUZZ_CHECK(got);
    }
    return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in = netprobe::fuzz::text(data, size).substr(1);

    // The Huffman code on the raw bytes.
    const std::size_t max_out = (data[0] >> 4) ? (data[0] >> 4) * std::size_t{256} : 16384;
    std::string out;
    if (netprobe::l7::hpackHuffmanDecode(in, out, max_out)) {
        NP_FUZZ_CHECK(out.size() <= max_out);
        NP_FUZZ_CHECK(out.size() * 5 <= in.size() * 8);
    }

    static constexpr std::size_t kLimits[] = {0, 256, 4096, 65536};
    const std::size_t limit = kLimits[data[0] & 3];
    netprobe::l7::HpackDecoder d(limit);
    if (data[0] & 4) d.markStale();
    std::size_t pos = 0, blocks = 0;
    while (pos < in.size()) {
        const std::size_t n = std::min<std::size_t>(static_cast<std::uint8_t>(in[pos]), in.size() - pos - 1);
        const std::string_view block = in.substr(pos + 1, n);
        pos += 1 + n;
        const bool was_stale = d.stale();
        Fields fields;
        const bool ok = d.decode(block, [&](std::string_view name, std::string_view value) {
            NP_FUZZ_CHECK(name.size() <= 16384 && value.size() <= 16384);
            fields.emplace_back(name, value);
        });
        if (!ok || was_stale) NP_FUZZ_CHECK(d.stale());
        if (!d.stale() && limit <= 4096) NP_FUZZ_CHECK(tableBytes(d) <= limit);
        if (ok) {
            // The same fields as literals without indexing: decoded alike by a new decoder.
            std::string again;
            for (const auto& [name, value] : fields)
                again += literal(name, value);
            netprobe::l7::HpackDecoder fresh;
            Fields back;
            NP_FUZZ_CHECK(fresh.decode(again, [&](std::string_view name, std::string_view value) {
                back.emplace_back(name, value);
            }));
            NP_FUZZ_CHECK(back == fields);
        }
        if (++blocks == 1 && (data[0] & 8)) d.markStale();
    }
    return 0;
}
