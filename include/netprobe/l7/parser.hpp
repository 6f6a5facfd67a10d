// netprobe::l7 - what the request/response protocol parsers share (Redis, PostgreSQL,
// MySQL): the exchange they report, pairing of requests with responses in order, and
// framing of length-prefixed messages over captured syscall chunks.
//
// A parser sees one connection from one of its ends: both directions' chunks in the
// order the syscalls happened (Chunk: the first bytes, the count moved, the last bytes).
// It reports each request with its response as an Exchange; requests without a
// response, responses without a request and lost framing are counted, never guessed.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <netprobe/l7/http1.hpp>

namespace netprobe::l7 {

struct Exchange {
    std::string protocol;          // empty: the connection's (HTTP/2: "http2" or "grpc")
    int status = -1;               // HTTP/2: :status; gRPC: grpc-status; -1: from error/outcome_unknown
    bool client = false;           // this end sent the request
    std::string method;            // Redis: the command; SQL: the statement type
    std::string path;              // Redis: the command; SQL: the normalized statement
    std::string route;             // empty: the path
    bool error = false;            // the server answered with an error
    bool outcome_unknown = false;  // answered, but the response was not parsed (framing lost)
    std::string error_code;        // Redis: the error's prefix (ERR, WRONGTYPE); PostgreSQL: SQLSTATE; MySQL: error number
    std::uint64_t request_ns = 0;  // the request's first byte
    std::uint64_t response_ns = 0; // the response's first byte
    std::uint64_t request_bytes = 0, response_bytes = 0;
};

class ExchangeSink {
public:
    virtual ~ExchangeSink() = default;
    virtual void onExchange(Exchange&& e) = 0;
};

struct ParserCounters {
    std::uint64_t unanswered = 0;           // requests without a response (closed, or too many pending)
    std::uint64_t unmatched_responses = 0;  // responses without a request
    std::uint64_t desyncs = 0;              // framing lost (bytes not captured where a header was)
};

// The parser of one connection end.
class MessageParser {
public:
    virtual ~MessageParser() = default;
    virtual void feed(bool sending, const Chunk& c) = 0;
    // The connection closed: pending requests are unanswered, a held exchange is reported.
    virtual void close() = 0;
    [[nodiscard]] const ParserCounters& counters() const { return counters_; }

protected:
    ParserCounters counters_;
};

// Requests awaiting their responses, oldest first.
class PendingQueue {
public:
    struct Pending {
        std::string method, path;
        std::uint64_t ts_ns = 0;
        std::uint64_t bytes = 0;
        bool report = true;  // false: protocol housekeeping (a login) that still takes a response
    };
    PendingQueue(ParserCounters& counters, std::size_t max) : counters_(counters), max_(max) {}
    void push(Pending p);
    [[nodiscard]] bool empty() const { return q_.empty(); }
    [[nodiscard]] Pending* front() { return q_.empty() ? nullptr : &q_.front(); }
    [[nodiscard]] Pending* back() { return q_.empty() ? nullptr : &q_.back(); }
    std::optional<Pending> pop();
    void clear();  // the rest are unanswered
    // The exchange of a request taken off the queue (client: this end sent it).
    [[nodiscard]] static Exchange exchange(Pending&& p, bool client);

private:
    ParserCounters& counters_;
    std::size_t max_;
    std::deque<Pending> q_;
};

// Frames one direction of a stream of length-prefixed messages: collects each message's
// header and first bytes (up to its keep size, across chunks), hands them over with the whole
// length and skips the rest, captured or not. A header in bytes that were not captured
// loses the framing until a chunk starts with something the protocol accepts as a header.
// The first bytes of a message a framer keeps unless the protocol asks for more.
inline constexpr std::size_t kFrameKeep = 512;

class FramedProtocol {
public:
    virtual ~FramedProtocol() = default;
    [[nodiscard]] virtual std::size_t headerBytes() const = 0;
    // The whole message's length from its header; nullopt: not a valid header.
    [[nodiscard]] virtual std::optional<std::uint64_t> messageLength(std::string_view header) const = 0;
    // How many first bytes of the message with this header to collect (default kFrameKeep;
    // HTTP/2 keeps whole header-block frames: HPACK must see every byte of them). The
    // prefix handed over is contiguous: after bytes that were not captured none are added.
    [[nodiscard]] virtual std::size_t keepBytes(std::string_view header) const { (void)header; return kFrameKeep; }
    // A message: its first bytes (the header included) and its whole length.
    virtual void onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) = 0;
    // Framing is lost: does a message start at the beginning of this chunk?
    [[nodiscard]] virtual bool startsMessage(std::string_view head) const {
        if (head.size() < headerBytes()) return false;
        auto n = messageLength(head.substr(0, headerBytes()));
        return n && *n >= headerBytes();
    }
    // Framing is lost in this chunk from byte `from` on (or the chunk came while lost,
    // from = 0): true when the protocol knows the chunk ends at a message boundary.
    virtual bool onLost(const Chunk& c, std::uint64_t from) { (void)c, (void)from; return false; }
    // A message's header at byte `from` of this chunk was not copied (the copy ended
    // before it, or inside it: its first bytes are the chunk's last copied ones). A
    // protocol that knows which message comes there (AMQP's body frames, from the
    // content's size and the frame size) returns its header (headerBytes() long): the
    // framer goes on with that message as if its header had been copied, skipping its
    // bytes, and hands it over when they have all passed. nullopt: not known, the
    // framing is lost.
    [[nodiscard]] virtual std::optional<std::string> uncopiedHeader(const Chunk& c, std::uint64_t from) {
        (void)c, (void)from;
        return std::nullopt;
    }
};

class Framer {
public:
    void feed(FramedProtocol& p, const Chunk& c);
    void reset();
    [[nodiscard]] std::uint64_t desyncs() const { return desyncs_; }

private:
    void lose(FramedProtocol& p, const Chunk& c, std::uint64_t from);
    std::size_t keep_ = kFrameKeep;  // the current message's (FramedProtocol::keepBytes)
    bool skipped_ = false;      // bytes of the current message were skipped: no more are kept
    std::string buf_;           // the current message's first bytes
    std::uint64_t length_ = 0;  // its whole length (0: header not complete yet)
    std::uint64_t got_ = 0;     // its bytes seen so far
    std::uint64_t ts_ = 0;
    bool lost_ = false;
    std::uint64_t desyncs_ = 0;
};

// The protocol parsers (redis.cpp, postgres.cpp, mysql.cpp). max_pending bounds each
// connection's queue of requests awaiting a response.
[[nodiscard]] std::unique_ptr<MessageParser> makeRedisParser(ExchangeSink& sink, std::size_t max_pending,
                                                             std::uint16_t local_port, std::uint16_t remote_port);
[[nodiscard]] std::unique_ptr<MessageParser> makePostgresParser(ExchangeSink& sink, std::size_t max_pending);
[[nodiscard]] std::unique_ptr<MessageParser> makeMySqlParser(ExchangeSink& sink, std::size_t max_pending);
[[nodiscard]] std::unique_ptr<MessageParser> makeHttp2Parser(ExchangeSink& sink, std::size_t max_streams);

// gRPC status codes: the name ("OK", "NOT_FOUND"; 17 and beyond: "UNKNOWN_OUTCOME" -
// the trailers were not seen), and whether it is the server's failure (UNKNOWN,
// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
// DATA_LOSS) rather than the caller's.
[[nodiscard]] const char* grpcStatusName(int status);
[[nodiscard]] bool grpcStatusIsError(int status);

}  // namespace netprobe::l7
