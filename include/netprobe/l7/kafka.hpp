// netprobe::l7 - Apache Kafka's protocol over captured syscall chunks.
//
// Every message is size-delimited (a 4-byte big-endian size, then that many bytes). A
// request's header carries its api key, api version, correlation id and client id (and,
// in the flexible versions of KIP-482, tagged fields); a response carries only the
// correlation id (and tagged fields when the request's version is flexible, except
// ApiVersions, whose response header is always v0). Responses are paired with requests
// by correlation id on each connection. The parser of a Kafka connection end is
// makeKafkaParser; the tables are exposed for the stage, the tests and the fuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <netprobe/l7/parser.hpp>

namespace netprobe::l7 {

// The API's name (Produce, Fetch, ListOffsets, Metadata, ..., "OTHER" beyond the table).
[[nodiscard]] const char* kafkaApiName(int api_key);
// The error code's name (UNKNOWN_TOPIC_OR_PARTITION, ...), nullptr for a code the table
// does not know. 0 is NONE.
[[nodiscard]] const char* kafkaErrorName(int code);
// Whether (api_key, version) uses the flexible encoding (compact strings and arrays,
// tagged fields; request header v2, response header v1 but for ApiVersions).
[[nodiscard]] bool kafkaFlexible(int api_key, int version);

// A request's header and what the parser reads of its body.
struct KafkaRequest {
    int api_key = 0;
    int api_version = 0;
    std::int32_t correlation_id = 0;
    std::string topic;       // Produce, Fetch: the first topic's name (versions that carry names)
    bool no_response = false;  // Produce with acks=0: the broker does not answer
};
// A request from the first bytes of a message (size field included) of `length` bytes;
// nullopt when they are not a plausible request header (the kernel's checks: api key
// and version in range, correlation id >= 0, a client id that fits).
[[nodiscard]] std::optional<KafkaRequest> parseKafkaRequest(std::string_view prefix, std::uint64_t length);

// What a response says of the request's outcome.
struct KafkaOutcome {
    enum class Kind { Ok, Error, Unknown } kind = Kind::Unknown;
    int error_code = 0;  // Error: the first non-zero error code met (top level first, then per topic/partition)
};
// The outcome of the response (its first bytes, size field included, of `length` bytes)
// to a request of api_key/api_version. Unknown: an API whose errors are not parsed, a
// malformed response, or one cut before its error codes were all seen without a
// non-zero one (a Fetch whose records run past the capture after its last partition's
// code is known: ok).
[[nodiscard]] KafkaOutcome parseKafkaResponse(int api_key, int api_version, std::string_view prefix,
                                              std::uint64_t length);

[[nodiscard]] std::unique_ptr<MessageParser> makeKafkaParser(ExchangeSink& sink, std::size_t max_pending);

}  // namespace netprobe::l7
