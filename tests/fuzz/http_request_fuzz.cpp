// The HTTP request head parser, query strings and basic auth credentials: bytes from
// any client that can reach the port.
#include <netprobe/http/message.hpp>

#include "fuzz_util.hpp"
#include "http/auth.hpp"

using namespace netprobe::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = netprobe::fuzz::text(data, size);
    for (const Limits& l : {Limits{}, Limits{64, 128, 4}}) {
        Request r;
        const auto p = parseRequestHead(in, l, r);
        switch (p.status) {
            case ParseResult::Status::Complete:
                NP_FUZZ_CHECK(p.consumed > 0 && p.consumed <= in.size());
                NP_FUZZ_CHECK(!r.method.empty() && !r.target.empty());
                NP_FUZZ_CHECK(r.version_minor == 0 || r.version_minor == 1);
                NP_FUZZ_CHECK(r.headers.size() <= l.max_headers);
                // The same bytes parse the same way again (no hidden state).
                {
                    Request again;
                    const auto q = parseRequestHead(in.substr(0, p.consumed), l, again);
                    NP_FUZZ_CHECK(q.status == ParseResult::Status::Complete && q.consumed == p.consumed);
                    NP_FUZZ_CHECK(again.path == r.path && again.query == r.query);
                }
                break;
            case ParseResult::Status::Error:
                NP_FUZZ_CHECK(p.error_status == 400 || p.error_status == 414 || p.error_status == 431 ||
                              p.error_status == 505);
                NP_FUZZ_CHECK(!p.reason.empty());
                break;
            case ParseResult::Status::Incomplete:
                // Only within the limits may the parser wait for more.
                NP_FUZZ_CHECK(in.size() <= l.max_request_line + l.max_header_bytes + 16);
                break;
        }
    }
    (void)parseQuery(in);
    if (auto c = parseBasicAuth(in)) NP_FUZZ_CHECK(c->user.find(':') == std::string::npos);
    const auto s = serialize(Response::error(400, in), false, false, {});
    NP_FUZZ_CHECK(s.starts_with("HTTP/1.1 400 "));
    return 0;
}
