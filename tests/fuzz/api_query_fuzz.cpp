// Query strings of every JSON API endpoint (/api/v1/flows, /connections, /events; the
// others take none): client input.
#include <netprobe/http/message.hpp>
#include <netprobe/metrics/bottlenecks.hpp>
#include <netprobe/metrics/security.hpp>

#include "fuzz_util.hpp"
#include "metrics/json_api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto params = netprobe::http::parseQuery(netprobe::fuzz::text(data, size));
    if (!params) return 0;
    if (auto q = netprobe::metrics::parseFlowQuery(*params, 100, 10000)) NP_FUZZ_CHECK(q->limit >= 1 && q->limit <= 10000);
    if (auto q = netprobe::metrics::parseConnectionQuery(*params, 100, 10000))
        NP_FUZZ_CHECK(q->limit >= 1 && q->limit <= 10000);
    (void)netprobe::metrics::parseEventQuery(*params, 10000);
    if (auto q = netprobe::metrics::parseBottleneckQuery(*params)) NP_FUZZ_CHECK(q->limit >= 1 && q->limit <= 1000);
    return 0;
}
