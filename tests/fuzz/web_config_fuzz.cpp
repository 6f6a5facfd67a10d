// --web-config-file (exporter-toolkit format): YAML from the operator.
#include <netprobe/http/web_config.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto c = netprobe::http::parseWebConfig(netprobe::fuzz::text(data, size), "/nonexistent");
    if (c) {
        for (const auto& [user, hash] : c->basic_auth_users) NP_FUZZ_CHECK(netprobe::http::isBcryptHash(hash));
        for (const auto& [k, v] : c->headers) NP_FUZZ_CHECK(v.find_first_of("\r\n") == std::string::npos);
        if (c->tls) NP_FUZZ_CHECK(c->tls->min_version <= c->tls->max_version);
    } else {
        NP_FUZZ_CHECK(!c.error().what().empty());
    }
    return 0;
}
