// Go durations (--collect-interval, --flow-timeout, config windows): parse, and what
// parses formats back to the same value.
#include <netprobe/util/duration.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto d = netprobe::util::parseDuration(netprobe::fuzz::text(data, size));
    if (!d) {
        NP_FUZZ_CHECK(!d.error().empty());
        return 0;
    }
    NP_FUZZ_CHECK(d->count() >= 0);
    const auto text = netprobe::util::formatDuration(*d);
    const auto back = netprobe::util::parseDuration(text);
    NP_FUZZ_CHECK(back && *back == *d);
    return 0;
}
