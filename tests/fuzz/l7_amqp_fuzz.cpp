// The AMQP 0-9-1 parser (frame framing and frame ends, methods, per-channel pairing of
// synchronous methods, closes with reply codes, content frames) on arbitrary syscalls of
// one connection end (l7_parser_fuzz.hpp: directions, cuts, tails). The first byte picks
// the ends' ports (which tell the client when the frames do not). Invariants: no crash,
// methods are the specification's, routes bounded, error codes reply codes, no byte
// reported twice.
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include <netprobe/l7/amqp.hpp>

#include "fuzz_util.hpp"
#include "l7_parser_fuzz.hpp"

namespace {

bool methodName(std::string_view s) {
    static const std::set<std::string, std::less<>> names = [] {
        std::set<std::string, std::less<>> out;
        for (int cls : {10, 20, 40, 50, 60, 85, 90})
            for (int mth = 0; mth <= 130; ++mth)
                if (const char* n = netprobe::l7::amqpMethodName(cls, mth)) out.insert(n);
        return out;
    }();
    return names.contains(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in = netprobe::fuzz::text(data, size);
    static constexpr std::uint16_t kPorts[4][2] = {{51000, 5672}, {5672, 51000}, {5672, 5672}, {40000, 50000}};
    const auto& ports = kPorts[data[0] & 3];
    netprobe::fuzz::ExchangeChecker checker([](const netprobe::l7::Exchange& e) {
        NP_FUZZ_CHECK(methodName(e.method));
        NP_FUZZ_CHECK(!e.path.empty() && e.path.size() <= 128 + 10);
        NP_FUZZ_CHECK(!e.outcome_unknown);
        if (e.error) {
            char* end = nullptr;
            const long code = std::strtol(e.error_code.c_str(), &end, 10);
            NP_FUZZ_CHECK(*end == '\0' && code > 0 && code != 200 && code <= 65535);
        }
    });
    auto parser = netprobe::l7::makeAmqpParser(checker, ports[0], ports[1]);
    netprobe::fuzz::feedChunks(*parser, checker, in.substr(1));
    return 0;
}
