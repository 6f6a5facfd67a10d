// netprobe::l7 - the server name (SNI, RFC 6066 section 3) of a TLS ClientHello
// (RFC 8446 section 4.1.2; the same layout in TLS 1.0-1.2), from the head of the
// first TCP payload of a connection. Strict and bounded: anything that is not a
// well-formed ClientHello up to its server_name extension gives no name.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace netprobe::l7 {

enum class SniResult {
    Name,          // *name is the host name (lower case, no trailing dot)
    NoSni,         // a complete ClientHello without a server_name extension
    Truncated,     // the bytes end before the extension (the capture's limit)
    NotHello,      // not a TLS handshake record holding a ClientHello
    Malformed,     // lengths that do not add up, a name that is not a host name
};

// bytes: from the TLS record header on (0x16 0x03 ...); one record (a ClientHello split
// over several records is read from the first only).
[[nodiscard]] SniResult parseClientHelloSni(std::string_view bytes, std::string* name);

}  // namespace netprobe::l7
