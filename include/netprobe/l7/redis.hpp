// netprobe::l7 - RESP (Redis serialization protocol, v2 and v3) framing over captured
// syscall chunks. The parser of a Redis connection (makeRedisParser, parser.hpp) runs one
// RespStream per direction; exposed for the unit tests and the fuzzer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/l7/http1.hpp>

namespace netprobe::l7 {

// A complete top-level RESP value.
struct RespValue {
    char type = 0;          // its RESP type byte ('*' array, '+', '-', '$', ...); 'i': an inline command
    std::string command;    // an array or inline command: the first element as a command name (redisCommandName)
    std::string error;      // an error ('-' or '!'): its prefix ("ERR", "WRONGTYPE")
    bool attribute = false;
    std::uint64_t bytes = 0;
    std::uint64_t ts_ns = 0;  // the chunk its first byte came in
};

class RespListener {
public:
    virtual ~RespListener() = default;
    virtual void onValue(bool sending, const RespValue& v) = 0;
};

class RespStream {
public:
    RespStream(RespListener* listener, bool sending) : listener_(listener), sending_(sending) {}
    void feed(const Chunk& c);
    // The next byte starts a value (framing lost before: the caller knows it is back).
    void restart() { reset(); }
    [[nodiscard]] bool lost() const { return lost_; }
    [[nodiscard]] std::uint64_t desyncs() const { return desyncs_; }

private:
    struct Open {
        std::int64_t remaining;
        bool first;  // the next element is this aggregate's first (a top-level array: the command name)
    };
    void reset();
    void lose();
    bool line(std::string_view l);
    void valueDone();

    RespListener* listener_;
    bool sending_;
    std::string line_;          // a type line split across chunks
    std::vector<Open> stack_;   // open aggregates
    std::uint64_t skip_ = 0;    // bulk bytes (+ CRLF) still to pass
    bool capture_ = false;      // keep the bulk's bytes (command name, blob error)
    std::string captured_;
    std::uint64_t bulk_len_ = 0;
    bool in_msg_ = false;
    RespValue msg_;
    bool lost_ = false;
    std::uint64_t desyncs_ = 0;
};

// A command name as a bounded label: upper case when Redis has such a command, else "OTHER".
[[nodiscard]] std::string redisCommandName(std::string_view word);
// Whether bytes start with a RESP type line (command: an array of bulk strings).
[[nodiscard]] bool respStartsValue(std::string_view head, bool command);

}  // namespace netprobe::l7
