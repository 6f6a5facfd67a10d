// The Redis parser (RESP2/RESP3 framing, command/reply pairing) on arbitrary syscalls of
// one connection end (l7_parser_fuzz.hpp: directions, cuts, tails). The first byte picks
// the ends' ports (which tell the client when the first value does not) and the bound of
// pending commands. Invariants: no crash, commands are bounded labels, error codes are
// upper-case prefixes, no byte reported twice.
#include <string>
#include <string_view>

#include <netprobe/l7/parser.hpp>
#include <netprobe/l7/redis.hpp>

#include "fuzz_util.hpp"
#include "l7_parser_fuzz.hpp"

namespace {

bool upperWord(std::string_view s) {
    for (char ch : s)
        if (ch < 'A' || ch > 'Z') return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in = netprobe::fuzz::text(data, size);

    const std::string name = netprobe::l7::redisCommandName(in.substr(1, 32));
    NP_FUZZ_CHECK(name == "OTHER" || netprobe::l7::redisCommandName(name) == name);
    (void)netprobe::l7::respStartsValue(in.substr(1), (data[0] & 1) != 0);

    static constexpr std::uint16_t kPorts[4][2] = {{51000, 6379}, {6379, 51000}, {6379, 6380}, {40000, 50000}};
    const auto& ports = kPorts[data[0] & 3];
    netprobe::fuzz::ExchangeChecker checker([](const netprobe::l7::Exchange& e) {
        NP_FUZZ_CHECK(e.path == e.method);
        NP_FUZZ_CHECK(e.method == "UNKNOWN" || e.method == "OTHER" ||
                      netprobe::l7::redisCommandName(e.method) == e.method);
        NP_FUZZ_CHECK(upperWord(e.error_code));
    });
    auto parser = netprobe::l7::makeRedisParser(checker, 1 + ((data[0] >> 2) & 7), ports[0], ports[1]);
    netprobe::fuzz::feedChunks(*parser, checker, in.substr(1));
    return 0;
}
