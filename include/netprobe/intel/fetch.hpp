// netprobe::intel::fetchFeed - one conditional GET of a feed's url (If-None-Match with
// the previous ETag, If-Modified-Since with the previous Last-Modified), bounded in
// size and time. Blocking: the feed loader runs it on a thread of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <netprobe/intel/feeds.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::intel {

struct FetchValidators {
    std::string etag;           // as the server sent it
    std::string last_modified;  // as the server sent it
};

struct FetchResult {
    int status = 0;               // 200 or 304
    bool not_modified = false;    // 304: the previous body stands
    std::string body;             // 200
    FetchValidators validators;   // the response's (the previous ones on 304)
};

struct FetchLimits {
    std::uint64_t max_bytes = 512ull << 20;
    std::chrono::seconds connect_timeout{10};
    std::chrono::seconds read_timeout{30};
};

// Errors: the url, and what failed (connection, TLS verification, HTTP status, size).
[[nodiscard]] Result<FetchResult> fetchFeed(const FeedConfig& feed, const FetchValidators& previous,
                                            const FetchLimits& limits = {});

}  // namespace netprobe::intel
