// TLS ClientHello server names (l7::parseClientHelloSni) on arbitrary bytes: no crash,
// a name only when it is a bounded, lower-case host name, and the verdict of every
// prefix of the input consistent with the whole (a capture keeps the head only: a cut
// never turns into a different name).
#include <string>
#include <string_view>

#include <netprobe/l7/tls.hpp>

#include "fuzz_util.hpp"

using netprobe::l7::parseClientHelloSni;
using netprobe::l7::SniResult;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string name;
    const SniResult r = parseClientHelloSni(in, &name);
    if (r == SniResult::Name) {
        NP_FUZZ_CHECK(!name.empty() && name.size() <= 253 && name.back() != '.');
        for (char c : name)
            NP_FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
    }
    // A cut a few bytes short: the same name, or Truncated (the bytes ended first).
    if (size > 0) {
        std::string cut_name;
        const SniResult c = parseClientHelloSni(in.substr(0, size - 1), &cut_name);
        if (c == SniResult::Name) NP_FUZZ_CHECK(r == SniResult::Name && cut_name == name);
    }
    return 0;
}
