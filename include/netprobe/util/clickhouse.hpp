// ClickHouse's HTTP interface, as the flow sink (writes) and the cluster history
// (reads) use it: one query per call over a fresh connection, credentials in headers
// (never in the URL), the server's error code and first line of its message as an Error.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <netprobe/util/error.hpp>

namespace netprobe::util {

struct ClickHouseEndpoint {
    std::string url;       // http[s]://host:port
    std::string user = "default";
    std::string password;
    std::chrono::milliseconds connect_timeout{3000};
    std::chrono::milliseconds read_timeout{30000};
};

// Runs sql (POST /?query=...), with body as the data of an INSERT when not empty.
// Error.code: ClickHouse's error code ("Code: 60" -> 60; 0 for transport errors).
// sent (optional): false only when the connection could not be made, i.e. the server
// cannot have seen the request.
[[nodiscard]] Result<std::string> clickHouseQuery(const ClickHouseEndpoint& ep, const std::string& sql,
                                                  const std::string& body = {}, bool* sent = nullptr);

// s as a ClickHouse string literal: 'it\'s' (backslash and quote escaped, control bytes as \xHH).
[[nodiscard]] std::string clickHouseString(std::string_view s);

}  // namespace netprobe::util
