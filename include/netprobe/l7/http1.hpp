// netprobe::l7 - HTTP/1.x over captured syscall data.
//
// The capture delivers each syscall's bytes as a Chunk: the first bytes (head), the
// last ones (tail, only when the middle was not copied) and the count the syscall moved.
// Http1Stream turns the chunks of one direction of one connection into messages: it
// frames each message (Content-Length, chunked, until close, no body), so the next one
// is found where it starts even inside a chunk (pipelining) or across chunks (a head
// split over two reads), and it resynchronises on a start line after data it could not
// follow (a hole in a truncated chunk). Bytes that do not form an HTTP/1 start line are
// never reported as a message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace netprobe::l7 {

struct Chunk {
    std::string_view head;   // the first bytes of the syscall's data
    std::uint64_t len = 0;   // bytes the syscall moved (>= head.size())
    std::string_view tail;   // its last bytes when len > head.size() (may be empty: unknown)
    std::uint64_t ts_ns = 0;
    bool tls = false;        // the plaintext of a TLS connection (from the TLS library's probes)
    // First bytes of messages that begin beyond the head (AMQP frames the capture walked in
    // the kernel), in the record's encoding: per piece a 4-byte offset in the syscall's
    // data, a 2-byte length (both little-endian), the bytes; in increasing offsets.
    std::string_view pieces;
};

// One piece of a chunk's data beyond its head (see Chunk::pieces).
struct Piece {
    std::uint64_t offset = 0;
    std::string_view bytes;
};

// The piece that begins at byte `offset` of the chunk's data, if the capture sent one.
// Encoding errors end the list (nothing beyond them is used).
[[nodiscard]] std::optional<Piece> pieceAt(std::string_view pieces, std::uint64_t offset);

struct Http1Message {
    bool request = false;
    std::string method;      // requests
    std::string target;      // requests: the request target as sent (bounded)
    int status = 0;          // responses
    int version_minor = 1;   // HTTP/1.<minor>
    std::optional<std::uint64_t> content_length;
    bool chunked = false;
    bool head_complete = true;  // false: the headers ran into uncaptured bytes (framing unknown)
    bool connection_close = false;
    std::uint64_t head_bytes = 0;  // start line + headers + blank line
    std::uint64_t start_ts_ns = 0;  // the chunk its first byte came in
};

// Parses a complete message head (start line, headers, ending "\r\n\r\n" or "\n\n").
// nullopt: not an HTTP/1 message head. Exposed for the unit tests and the fuzzer.
[[nodiscard]] std::optional<Http1Message> parseHttp1Head(std::string_view head);
// Whether bytes begin like an HTTP/1 start line (a request method and a space, or "HTTP/1.").
[[nodiscard]] bool looksLikeHttp1Start(std::string_view bytes);

// What a stream reports, with the stream's direction (sending: the process wrote it).
class Http1Listener {
public:
    virtual ~Http1Listener() = default;
    // A message head; returns true when a response carries no body regardless of its
    // headers (the answer to HEAD).
    virtual bool onHead(bool sending, Http1Message& m) = 0;
    // The message found last is complete (bytes: all of it, head and body).
    virtual void onEnd(bool sending, std::uint64_t bytes) = 0;
};

class Http1Stream {
public:
    Http1Stream(Http1Listener* listener, bool sending) : listener_(listener), sending_(sending) {}
    void feed(const Chunk& c);
    // The connection closed: a message read until close ends here.
    void close();

    [[nodiscard]] std::uint64_t desyncs() const { return desyncs_; }  // times framing was lost
    [[nodiscard]] bool synced() const { return state_ != State::Desync; }

    static constexpr std::size_t kMaxHead = 16384;  // head bytes held across chunks

private:
    enum class State { Head, Body, Chunked, ChunkedLost, UntilClose, Desync };
    void endMessage();
    void lose();
    // A head parsed (head_bytes long, ending at pos of a chunk of len bytes): report it
    // and frame its body.
    void startMessage(Http1Message& m, std::size_t head_bytes, std::uint64_t len, std::uint64_t pos);
    // In Chunked state: consume the bytes of data [pos, avail); returns the new position.
    std::size_t chunkedScan(std::string_view data, std::size_t pos);

    Http1Listener* listener_;
    bool sending_;
    State state_ = State::Head;
    std::string partial_;          // head bytes so far
    std::uint64_t partial_ts_ = 0;
    std::uint64_t body_left_ = 0;  // Body: bytes to skip; Chunked: bytes of the current chunk's data (+2 CRLF)
    int chunk_phase_ = 0;          // Chunked: 0 size line, 1 data, 2 trailers
    std::string line_;             // Chunked: partial size/trailer line
    bool in_message_ = false;
    std::uint64_t msg_bytes_ = 0;
    std::uint64_t desyncs_ = 0;
};

// The route template of a request target: the path without query or fragment, with
// segments that look like identifiers replaced - numbers "{id}", UUIDs "{uuid}", hex
// strings of 16+ digits "{hash}", long tokens mixing letters and digits "{token}";
// at most 8 segments and 128 bytes ("/..." marks what was cut).
[[nodiscard]] std::string routeTemplate(std::string_view target);

}  // namespace netprobe::l7
