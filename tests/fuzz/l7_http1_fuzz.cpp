// HTTP/1 framing over captured chunks (analysis::l7::Http1Stream), the head parser and
// route templates, on arbitrary bytes. The input is cut into chunks; a control byte
// before each says how long it is and whether its middle was "not copied" (head and
// tail only, as the kernel capture delivers large messages). Invariants: no crash, a
// message reported only for a valid start line, every end follows a head, route
// templates bounded.
#include <algorithm>
#include <string>
#include <string_view>

#include <netprobe/l7/http1.hpp>

#include "fuzz_util.hpp"

using netprobe::l7::Chunk;
using netprobe::l7::Http1Message;
using netprobe::l7::Http1Stream;

namespace {
struct Checker final : netprobe::l7::Http1Listener {
    std::size_t heads = 0, ends = 0;
    bool open = false;
    bool onHead(bool, Http1Message& m) override {
        ++heads;
        NP_FUZZ_CHECK(m.request ? netprobe::l7::looksLikeHttp1Start(m.method + " ")
                                : m.status >= 100 && m.status <= 599);
        open = true;
        return (heads % 3) == 0;  // some responses answer a HEAD
    }
    void onEnd(bool, std::uint64_t) override {
        NP_FUZZ_CHECK(open);
        open = false;
        ++ends;
    }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    if (auto h = netprobe::l7::parseHttp1Head(in)) {
        NP_FUZZ_CHECK(h->request ? !h->method.empty() && !h->target.empty() : h->status >= 100 && h->status <= 599);
    }
    const std::string route = netprobe::l7::routeTemplate(in);
    NP_FUZZ_CHECK(route.size() <= 132 && (route[0] == '/' || route == "*"));

    Checker chk;
    Http1Stream st(&chk, true);
    std::size_t pos = 0;
    std::uint64_t ts = 0;
    while (pos < size) {
        const std::uint8_t ctl = data[pos++];
        const std::size_t n = std::min<std::size_t>(1 + (ctl & 0x3f), size - pos);
        const std::string_view bytes = in.substr(pos, n);
        pos += n;
        Chunk c{bytes, bytes.size(), {}, ++ts};
        if (ctl & 0x80) {  // truncated: only a head and a tail of a longer message
            const std::size_t h = bytes.size() / 2;
            c.head = bytes.substr(0, h);
            c.tail = (ctl & 0x40) ? bytes.substr(h) : std::string_view{};
            c.len = bytes.size() + 1000;
        }
        st.feed(c);
    }
    st.close();
    NP_FUZZ_CHECK(chk.ends <= chk.heads);
    return 0;
}
