// Pure pieces of the list/watch protocol: the newline-delimited event stream, watch
// events, URLs and the reconnect backoff.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <netprobe/util/error.hpp>

namespace netprobe::k8s {

// Splits a chunked body into lines (one watch event each), whatever the chunk boundaries.
class LineBuffer {
public:
    explicit LineBuffer(std::size_t max_line = 16 << 20) : max_line_(max_line) {}
    // Calls on_line for each complete, non-empty line (without '\n' / "\r\n"); stops and
    // returns false as soon as on_line returns false or a line exceeds max_line.
    bool feed(std::string_view data, const std::function<bool(std::string_view)>& on_line);
    [[nodiscard]] std::size_t pending() const { return buf_.size(); }

private:
    std::string buf_;
    std::size_t max_line_;
};

struct WatchEvent {
    enum class Type { Added, Modified, Deleted, Bookmark, Error } type = Type::Added;
    nlohmann::json object;         // the object (or a Status for ERROR)
    std::string resource_version;  // object.metadata.resourceVersion
    int error_code = 0;            // ERROR: Status.code (410 = Gone: relist)
    std::string error_message;     // ERROR: Status.message
};

// One line of a watch stream: {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}.
[[nodiscard]] Result<WatchEvent> parseWatchEvent(std::string_view line);

// RFC 3986 query escaping for label/field selectors and continue tokens.
[[nodiscard]] std::string urlEscape(std::string_view s);

struct ListParams {
    std::string field_selector;  // e.g. "spec.nodeName=node-a"
    std::size_t limit = 0;       // 0: no pagination
    std::string continue_token;
};
[[nodiscard]] std::string listUrl(std::string_view path, const ListParams& p);
[[nodiscard]] std::string watchUrl(std::string_view path, std::string_view field_selector,
                                   std::string_view resource_version, std::chrono::seconds timeout);

// Exponential backoff: doubles from initial up to max; jitter in [0, 1) spreads it by up to +25%.
[[nodiscard]] std::chrono::milliseconds nextBackoff(std::chrono::milliseconds current, std::chrono::milliseconds initial,
                                                    std::chrono::milliseconds max);
[[nodiscard]] std::chrono::milliseconds withJitter(std::chrono::milliseconds d, double jitter01);

}  // namespace netprobe::k8s
