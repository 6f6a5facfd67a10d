// The Kafka parser (size framing, request headers of every version, correlation-id
// pairing, the error codes of the responses it reads) on arbitrary syscalls of one
// connection end (l7_parser_fuzz.hpp: directions, cuts, tails), and its request and
// response readers on the raw input for every api key and version. The first byte bounds
// the pending requests and picks the key/version of the raw reads. Invariants: no crash,
// methods are API names, paths legal topic names or the API, error codes numbers, no
// byte reported twice.
#include <cstdlib>
#include <string>
#include <string_view>

#include <netprobe/l7/kafka.hpp>

#include "fuzz_util.hpp"
#include "l7_parser_fuzz.hpp"

namespace {

bool apiName(std::string_view s) {
    for (int k = 0; k <= 75; ++k)
        if (s == netprobe::l7::kafkaApiName(k)) return true;
    return s == "OTHER";
}

bool topic(std::string_view s) {
    if (s.empty() || s.size() > 249) return false;
    for (char ch : s)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in = netprobe::fuzz::text(data, size);
    const std::string_view rest = in.substr(1);

    if (auto q = netprobe::l7::parseKafkaRequest(rest, rest.size())) {
        NP_FUZZ_CHECK(q->api_key >= 0 && q->api_key <= 75 && q->api_version >= 0 && q->api_version <= 20);
        NP_FUZZ_CHECK(q->correlation_id >= 0);
        NP_FUZZ_CHECK(q->topic.empty() || topic(q->topic));
    }
    const int key = data[0] % 40, version = data[0] % 17;
    for (std::uint64_t extra : {std::uint64_t{0}, std::uint64_t{1000}}) {
        const auto o = netprobe::l7::parseKafkaResponse(key, version, rest, rest.size() + extra);
        NP_FUZZ_CHECK(o.kind != netprobe::l7::KafkaOutcome::Kind::Error || o.error_code != 0);
    }

    netprobe::fuzz::ExchangeChecker checker([](const netprobe::l7::Exchange& e) {
        NP_FUZZ_CHECK(apiName(e.method));
        NP_FUZZ_CHECK(e.path == e.method || topic(e.path));
        if (e.error) {
            char* end = nullptr;
            const long code = std::strtol(e.error_code.c_str(), &end, 10);
            NP_FUZZ_CHECK(*end == '\0' && code != 0 && code >= -32768 && code <= 32767);
        }
    });
    auto parser = netprobe::l7::makeKafkaParser(checker, 1 + (data[0] & 7));
    netprobe::fuzz::feedChunks(*parser, checker, rest);
    return 0;
}
