#include "netprobe/util/clickhouse.hpp"

#include <httplib.h>

#include <charconv>

#include "netprobe/util/parse.hpp"

namespace netprobe::util {

namespace {

// "Code: 60, e.displayText() = ..." -> 60 (0 when the body is not a ClickHouse error).
int errorCode(const std::string& body) {
    auto p = body.find("Code: ");
    if (p == std::string::npos) return 0;
    int code = 0;
    std::from_chars(body.data() + p + 6, body.data() + body.size(), code);
    return code;
}

std::string firstLine(const std::string& s) {
    auto e = s.find('\n');
    std::string l = s.substr(0, e);
    if (l.size() > 300) l = l.substr(0, 300) + "...";
    return l;
}

}  // namespace

Result<std::string> clickHouseQuery(const ClickHouseEndpoint& ep, const std::string& sql, const std::string& body,
                                    bool* sent) {
    httplib::Client cli(ep.url);
    cli.set_connection_timeout(ep.connect_timeout);
    cli.set_read_timeout(ep.read_timeout);
    cli.set_write_timeout(ep.read_timeout);
    httplib::Headers h{{"X-ClickHouse-User", ep.user}};
    if (!ep.password.empty()) h.emplace("X-ClickHouse-Key", ep.password);
    const auto path = "/?query=" + urlEncode(sql);
    auto res = body.empty() ? cli.Post(path, h, std::string(), "text/plain")
                            : cli.Post(path, h, body, "application/x-ndjson");
    if (sent) *sent = res.error() != httplib::Error::Connection;
    if (!res) return std::unexpected(makeError(httplib::to_string(res.error())));
    if (res->status != 200)
        return std::unexpected(Error{errorCode(res->body), "HTTP " + std::to_string(res->status) + ": " + firstLine(res->body)});
    return res->body;
}

std::string clickHouseString(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string o = "'";
    for (unsigned char c : s) {
        if (c == '\'' || c == '\\') {
            o += '\\';
            o += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            o += "\\x";
            o += hex[c >> 4];
            o += hex[c & 15];
        } else {
            o += static_cast<char>(c);
        }
    }
    o += '\'';
    return o;
}

}  // namespace netprobe::util
