// The MySQL parser (packet framing, handshake capabilities, command/response pairing,
// result-set ends, prepared statements by id) on arbitrary syscalls of one connection end
// (l7_parser_fuzz.hpp: directions, cuts, tails). The first byte bounds the pending
// commands. Invariants: no crash, methods are bounded labels, error codes error numbers,
// no byte reported twice.
#include <string_view>

#include <netprobe/l7/parser.hpp>

#include "fuzz_util.hpp"
#include "l7_parser_fuzz.hpp"

namespace {

bool label(std::string_view s) {
    if (s.empty() || s.size() > 16) return false;
    for (char ch : s)
        if ((ch < 'A' || ch > 'Z') && ch != '_') return false;
    return true;
}

bool errorNumber(std::string_view s) {
    if (s == "ERROR") return true;
    if (s.empty() || s.size() > 5) return false;
    for (char ch : s)
        if (ch < '0' || ch > '9') return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in = netprobe::fuzz::text(data, size);
    netprobe::fuzz::ExchangeChecker checker([](const netprobe::l7::Exchange& e) {
        NP_FUZZ_CHECK(label(e.method));
        NP_FUZZ_CHECK(!e.error || errorNumber(e.error_code));
    });
    auto parser = netprobe::l7::makeMySqlParser(checker, 1 + (data[0] & 7));
    netprobe::fuzz::feedChunks(*parser, checker, in.substr(1));
    return 0;
}
