// HTTP/1.x request heads in, responses out (RFC 9110, RFC 9112). Pure functions.
#include "netprobe/http/message.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <utility>

namespace netprobe::http {

namespace {

bool isTokenChar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
        case '^': case '_': case '`': case '|': case '~': return true;
        default: return false;
    }
}

bool isToken(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return isTokenChar(static_cast<unsigned char>(c)); });
}

// Field values: visible characters, obs-text, SP and HTAB (no CTLs).
bool isFieldValue(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c == '\t' || (c >= 0x20 && c != 0x7f);
    });
}

// Visible ASCII without space (request-target characters; obs-text refused).
bool isTargetChar(unsigned char c) { return c > 0x20 && c < 0x7f; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

// The next line of buf from pos: [pos, end-of-line) without the CR, and where the next
// line starts; nullopt when no LF is in buf yet.
struct Line {
    std::string_view text;
    std::size_t next = 0;
};
std::optional<Line> lineAt(std::string_view buf, std::size_t pos) {
    const auto lf = buf.find('\n', pos);
    if (lf == std::string_view::npos) return std::nullopt;
    std::size_t end = lf;
    if (end > pos && buf[end - 1] == '\r') --end;
    return Line{buf.substr(pos, end - pos), lf + 1};
}

ParseResult error(int status, std::string reason) {
    ParseResult r;
    r.status = ParseResult::Status::Error;
    r.error_status = status;
    r.reason = std::move(reason);
    return r;
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<std::string_view> Request::header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
        if (k == lower_name) return std::string_view(v);
    return std::nullopt;
}

std::optional<std::string> percentDecode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            const int hi = hexValue(s[i + 1]), lo = hexValue(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0') return std::nullopt;
        out.push_back(c);
    }
    return out;
}

std::optional<QueryParams> parseQuery(std::string_view query) {
    QueryParams out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto part = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (part.empty()) continue;
        const auto eq = part.find('=');
        auto k = percentDecode(part.substr(0, eq), true);
        auto v = percentDecode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1), true);
        if (!k || !v) return std::nullopt;
        out.emplace_back(std::move(*k), std::move(*v));
    }
    return out;
}

ParseResult parseRequestHead(std::string_view buf, const Limits& limits, Request& out) {
    out = Request{};
    std::size_t pos = 0;
    // RFC 9112 2.2: at least one empty line before the request line is ignored.
    for (int i = 0; i < 4; ++i) {
        if (buf.substr(pos).starts_with("\r\n")) pos += 2;
        else if (buf.substr(pos).starts_with("\n")) pos += 1;
        else break;
    }
    const auto first = lineAt(buf, pos);
    if (!first) {
        if (buf.size() - pos > limits.max_request_line) return error(414, "request line longer than " + std::to_string(limits.max_request_line) + " bytes");
        return {};
    }
    const std::string_view line = first->text;
    if (line.size() > limits.max_request_line)
        return error(414, "request line longer than " + std::to_string(limits.max_request_line) + " bytes");

    // method SP request-target SP HTTP-version
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return error(400, "malformed request line");
    const auto method = line.substr(0, sp1);
    const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const auto version = line.substr(sp2 + 1);
    if (!isToken(method)) return error(400, "malformed method");
    if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) { return isTargetChar(static_cast<unsigned char>(c)); }))
        return error(400, "malformed request target");
    if (version == "HTTP/1.1") out.version_minor = 1;
    else if (version == "HTTP/1.0") out.version_minor = 0;
    else if (version.size() == 8 && version.starts_with("HTTP/") && version[5] >= '0' && version[5] <= '9' &&
             version[6] == '.' && version[7] >= '0' && version[7] <= '9')
        return error(505, "HTTP version " + std::string(version.substr(5)) + " not supported (1.0 and 1.1 are)");
    else return error(400, "malformed HTTP version");
    out.method = std::string(method);
    out.target = std::string(target);

    // Origin form "/path?query"; absolute form "http://host/path?query"; "*".
    std::string_view t = target;
    if (t.starts_with("http://") || t.starts_with("https://")) {
        const auto authority = t.find("//") + 2;
        const auto slash = t.find('/', authority);
        t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
    }
    if (t != "*" && !t.starts_with("/")) return error(400, "malformed request target");
    const auto q = t.find('?');
    auto path = percentDecode(t.substr(0, q), false);
    if (!path) return error(400, "malformed percent-encoding in the path");
    out.path = std::move(*path);
    if (q != std::string_view::npos) {
        auto params = parseQuery(t.substr(q + 1));
        if (!params) return error(400, "malformed percent-encoding in the query");
        out.query = std::move(*params);
    }

    // Header fields up to the empty line.
    const std::size_t headers_start = first->next;
    std::size_t p = headers_start;
    bool connection_close = false, connection_keep_alive = false;
    for (;;) {
        const auto l = lineAt(buf, p);
        if (!l) {
            if (buf.size() - headers_start > limits.max_header_bytes)
                return error(431, "header fields larger than " + std::to_string(limits.max_header_bytes) + " bytes");
            return {};
        }
        if (l->next - headers_start > limits.max_header_bytes)
            return error(431, "header fields larger than " + std::to_string(limits.max_header_bytes) + " bytes");
        p = l->next;
        if (l->text.empty()) break;
        if (l->text.front() == ' ' || l->text.front() == '\t') return error(400, "obsolete line folding in a header field");
        if (out.headers.size() >= limits.max_headers)
            return error(431, "more than " + std::to_string(limits.max_headers) + " header fields");
        const auto colon = l->text.find(':');
        if (colon == std::string_view::npos) return error(400, "header field without a colon");
        const auto name = l->text.substr(0, colon);
        const auto value = trim(l->text.substr(colon + 1));
        if (!isToken(name)) return error(400, "malformed header field name");
        if (!isFieldValue(value)) return error(400, "control character in a header field value");
        std::string lname(name);
        std::transform(lname.begin(), lname.end(), lname.begin(), lower);
        if (lname == "content-length") {
            // A list of identical values is one value (RFC 9110 8.6).
            std::string_view rest = value;
            while (!rest.empty()) {
                const auto comma = rest.find(',');
                const auto v = trim(rest.substr(0, comma));
                rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
                std::uint64_t n = 0;
                if (v.empty() || v.size() > 19 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
                    return error(400, "malformed Content-Length");
                std::from_chars(v.data(), v.data() + v.size(), n);
                if (out.content_length && *out.content_length != n) return error(400, "conflicting Content-Length values");
                out.content_length = n;
            }
        } else if (lname == "transfer-encoding") {
            out.chunked = true;
        } else if (lname == "connection") {
            std::string_view rest = value;
            while (!rest.empty()) {
                const auto comma = rest.find(',');
                const auto v = trim(rest.substr(0, comma));
                rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
                if (iequals(v, "close")) connection_close = true;
                else if (iequals(v, "keep-alive")) connection_keep_alive = true;
            }
        }
        out.headers.emplace_back(std::move(lname), std::string(value));
    }
    out.keep_alive = !connection_close && (out.version_minor >= 1 || connection_keep_alive);
    ParseResult r;
    r.status = ParseResult::Status::Complete;
    r.consumed = p;
    return r;
}

Response Response::text(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

Response Response::json(int status, std::string body) {
    Response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = std::move(body);
    return r;
}

Response Response::error(int status, std::string_view message) {
    return json(status, nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

const char* reasonPhrase(int status) {
    switch (status) {
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

namespace {

void appendHead(std::string& out, const Response& r, bool keep_alive,
                const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    std::array<char, 64> date{};
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    const auto n = std::strftime(date.data(), date.size(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    out += "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += reasonPhrase(r.status);
    out += "\r\nDate: ";
    out.append(date.data(), n);
    out += "\r\nContent-Type: ";
    out += r.content_type;
    if (!r.stream) {  // a stream's body ends when the connection closes
        out += "\r\nContent-Length: ";
        out += std::to_string(r.body.size());
    }
    out += keep_alive ? "\r\nConnection: keep-alive" : "\r\nConnection: close";
    for (const auto* hs : {&r.headers, &extra_headers}) {
        for (const auto& [k, v] : *hs) {
            out += "\r\n";
            out += k;
            out += ": ";
            out += v;
        }
    }
    out += "\r\n\r\n";
}

}  // namespace

std::string serialize(const Response& r, bool keep_alive, bool head_only,
                      const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    std::string out;
    out.reserve(256 + (head_only ? 0 : r.body.size()));
    appendHead(out, r, keep_alive, extra_headers);
    if (!head_only) out += r.body;
    return out;
}

std::string serialize(Response&& r, bool keep_alive, bool head_only,
                      const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    if (head_only) return serialize(std::as_const(r), keep_alive, true, extra_headers);
    std::string head;
    head.reserve(256);
    appendHead(head, r, keep_alive, extra_headers);
    // The head goes in front of the body in the body's own buffer when it has room (a
    // large answer, such as /api/v1/flows, is reserved with some): no second copy of it.
    r.body.insert(0, head);
    return std::move(r.body);
}

}  // namespace netprobe::http
