// HTTP/1.x messages of the agent's own server: the request head parser (pure, bounded,
// fuzzed: tests/fuzz/http_request_fuzz.cpp), query strings, and the response writer.
//
// Limits (RFC 9110/9112 status codes):
//   request line longer than max_request_line          -> 414 URI Too Long
//   header section (after the request line) too large  -> 431 Request Header Fields Too Large
//   more than max_headers fields                       -> 431
//   HTTP version other than 1.0 / 1.1                  -> 505
//   anything malformed                                 -> 400
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace netprobe::http {

class StreamChannel;  // stream.hpp

// A query string in the order given, percent-decoded ('+' is a space).
using QueryParams = std::vector<std::pair<std::string, std::string>>;

struct Request {
    std::string method;       // as sent (methods are case-sensitive)
    std::string target;       // as sent
    std::string path;         // percent-decoded, without the query
    QueryParams query;
    int version_minor = 1;    // HTTP/1.<minor>
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-case, values trimmed
    bool keep_alive = true;   // after the response (Connection header and version)
    std::optional<std::uint64_t> content_length;
    bool chunked = false;     // Transfer-Encoding present (any coding)
    std::string peer;         // the client's address ("198.18.0.1:40000"), set by the server

    // The first value of a header (name in lower case), or nullopt.
    [[nodiscard]] std::optional<std::string_view> header(std::string_view lower_name) const;
    [[nodiscard]] bool hasBody() const { return chunked || (content_length && *content_length > 0); }
};

struct Limits {
    std::size_t max_request_line = 8 * 1024;
    std::size_t max_header_bytes = 16 * 1024;  // the header fields, request line excluded
    std::size_t max_headers = 100;
};

struct ParseResult {
    enum class Status { Incomplete, Complete, Error } status = Status::Incomplete;
    std::size_t consumed = 0;   // Complete: bytes of the head (the next request starts here)
    int error_status = 0;       // Error: 400, 414, 431, 505
    std::string reason;         // Error: for the response body and the log
};

// Parses one request head from the start of buf. Incomplete: more bytes are needed
// (and the bytes so far are within the limits). Never reads beyond buf.
[[nodiscard]] ParseResult parseRequestHead(std::string_view buf, const Limits& limits, Request& out);

// Splits and decodes "a=1&b=x%20y"; nullopt on a bad percent escape or a NUL.
[[nodiscard]] std::optional<QueryParams> parseQuery(std::string_view query);
// Percent-decoding ('+' stays '+' unless plus_is_space); nullopt on a bad escape or a NUL.
[[nodiscard]] std::optional<std::string> percentDecode(std::string_view s, bool plus_is_space);

struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers
    // A streaming response (stream.hpp): after the head and the body (if any) the server
    // writes what the channel's producer pushes until the stream ends; no Content-Length,
    // the connection closes at the end. Only for a 200 to a GET (otherwise not streamed).
    std::shared_ptr<StreamChannel> stream;

    static Response text(int status, std::string body);
    static Response json(int status, std::string body);
    // {"error": "..."} with the status.
    static Response error(int status, std::string_view message);
};

[[nodiscard]] const char* reasonPhrase(int status);

// The response head (status line, Date, Content-Type, Content-Length, Connection,
// the response's and the extra headers) followed by the body unless head_only.
[[nodiscard]] std::string serialize(const Response& r, bool keep_alive, bool head_only,
                                    const std::vector<std::pair<std::string, std::string>>& extra_headers);
// The same, taking the body's buffer: the head is written in front of the body, in
// place when the buffer has room (a large answer is not copied).
[[nodiscard]] std::string serialize(Response&& r, bool keep_alive, bool head_only,
                                    const std::vector<std::pair<std::string, std::string>>& extra_headers);

}  // namespace netprobe::http
