// The PostgreSQL parser (protocol 3.0 framing, startup/SSL negotiation, simple and
// extended query pairing by ReadyForQuery, prepared statements by name) on arbitrary
// syscalls of one connection end (l7_parser_fuzz.hpp: directions, cuts, tails). The first
// byte bounds the pending requests. Invariants: no crash, statement types are bounded
// labels, statements normalized (bounded), SQLSTATEs five characters, no byte reported twice.
#include <string_view>

#include <netprobe/l7/parser.hpp>

#include "fuzz_util.hpp"
#include "l7_parser_fuzz.hpp"

namespace {

bool label(std::string_view s) {
    if (s.empty() || s.size() > 12) return false;
    for (char ch : s)
        if (ch < 'A' || ch > 'Z') return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in = netprobe::fuzz::text(data, size);
    netprobe::fuzz::ExchangeChecker checker([](const netprobe::l7::Exchange& e) {
        NP_FUZZ_CHECK(label(e.method));
        NP_FUZZ_CHECK(!e.error || e.error_code.size() == 5 || e.error_code == "ERROR");
    });
    auto parser = netprobe::l7::makePostgresParser(checker, 1 + (data[0] & 7));
    netprobe::fuzz::feedChunks(*parser, checker, in.substr(1));
    return 0;
}
