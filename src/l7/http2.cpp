// HTTP/2 (RFC 9113) and gRPC over captured syscall chunks: frames, HPACK with each
// direction's dynamic table, streams paired by id.
//
// Each direction is a stream of frames (9-byte header, then the payload) framed by their
// lengths, so DATA is skipped whether its bytes were copied or not. Header blocks
// (HEADERS, CONTINUATION, PUSH_PROMISE) are decoded in order - every one, to keep the
// dynamic table right. A request is a client stream: its first HEADERS (:method, :path)
// opens it, the server's HEADERS give :status (and, for gRPC, the trailers grpc-status),
// and the server's END_STREAM (or a RST_STREAM) closes it. A header block whose bytes were
// not all copied, or lost framing (the skipped bytes may hold header blocks), leaves that
// direction's dynamic table unknown: later references into it decode as unknown fields
// (the request still counts; its path may be unknown), never as wrong ones. Streams are
// bounded: past max_streams, the oldest (its end not seen) is unanswered.
#include <netprobe/l7/hpack.hpp>
#include <netprobe/l7/parser.hpp>

#include <map>

namespace netprobe::l7 {
namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t kMaxBlock = 16384;  // a header block held across CONTINUATION frames

enum : std::uint8_t {
    kData = 0, kHeaders = 1, kPriorityFrame = 2, kRstStream = 3, kPushPromise = 5, kContinuation = 9
};
enum : std::uint8_t { kEndStream = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriority = 0x20 };

std::uint32_t be(std::string_view s, std::size_t at, int n) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
    return v;
}

// gRPC's content-type: application/grpc, optionally +proto, +json, ... (gRPC over
// HTTP/2, "Content-Type"); gRPC-Web (application/grpc-web...) carries its trailers in
// the body, not in HEADERS, and is another protocol.
bool isGrpc(std::string_view content_type) {
    constexpr std::string_view kGrpc = "application/grpc";
    if (!content_type.starts_with(kGrpc)) return false;
    return content_type.size() == kGrpc.size() || content_type[kGrpc.size()] == '+' ||
           content_type[kGrpc.size()] == ';';
}

// The gRPC status a client gives a response without grpc-status (gRPC's "HTTP to gRPC
// Status Code Mapping").
int grpcStatusOfHttp(int status) {
    switch (status) {
        case 400: return 13;  // INTERNAL
        case 401: return 16;  // UNAUTHENTICATED
        case 403: return 7;   // PERMISSION_DENIED
        case 404: return 12;  // UNIMPLEMENTED
        case 429:
        case 502:
        case 503:
        case 504: return 14;  // UNAVAILABLE
        default: return 2;    // UNKNOWN
    }
}

class Http2Parser;

class H2Direction final : public FramedProtocol {
public:
    H2Direction(Http2Parser& parser, bool sending) : parser_(parser), sending_(sending) {}
    [[nodiscard]] std::size_t headerBytes() const override { return 9; }
    [[nodiscard]] std::optional<std::uint64_t> messageLength(std::string_view h) const override {
        return std::uint64_t{be(h, 0, 3)} + 9;  // frames of unknown types are skipped (RFC 9113 4.1)
    }
    [[nodiscard]] std::size_t keepBytes(std::string_view h) const override {
        const auto type = static_cast<unsigned char>(h[3]);
        // header-block fragments whole (up to the default maximum frame size), others' first bytes
        return type == kHeaders || type == kContinuation || type == kPushPromise ? 9 + kMaxBlock : kFrameKeep;
    }
    [[nodiscard]] bool startsMessage(std::string_view head) const override {
        // After lost framing, a chunk that starts with a plausible frame header: a core
        // type, a length within the default maximum frame size, a stream where one is due.
        if (head.size() < 9) return false;
        const auto type = static_cast<unsigned char>(head[3]);
        const std::uint32_t len = be(head, 0, 3), sid = be(head, 5, 4) & 0x7fffffff;
        if (type > kContinuation || len > 16384) return false;
        const bool needs_stream = type == kData || type == kHeaders || type == kPriorityFrame || type == kRstStream ||
                                  type == kPushPromise || type == kContinuation;
        return needs_stream == (sid != 0) || type == 8;  // WINDOW_UPDATE: either
    }
    void onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) override;
    bool onLost(const Chunk& c, std::uint64_t from) override;

private:
    Http2Parser& parser_;
    bool sending_;
};

class Http2Parser final : public MessageParser {
public:
    Http2Parser(ExchangeSink& sink, std::size_t max_streams) : sink_(sink), max_streams_(max_streams) {}

    void feed(bool sending, const Chunk& c) override {
        Chunk ch = c;
        if (!client_ && c.head.starts_with(kPreface)) {
            client_ = sending;  // the client sends the connection preface
            ch.head.remove_prefix(kPreface.size());
            ch.len = c.len >= kPreface.size() ? c.len - kPreface.size() : 0;
            if (ch.len == 0 && ch.head.empty()) return;
        }
        const int d = sending ? 0 : 1;
        framer_[d].feed(dir_[d], ch);
        counters_.desyncs = framer_[0].desyncs() + framer_[1].desyncs() + hpack_losses_;
    }

    // Framing is lost in direction d: the bytes skipped may hold header blocks, so its
    // dynamic table is unknown from here on (the framer counts the desync).
    void loseFraming(int d) {
        block_[d].open = false;
        hpack_[d].markStale();
    }

    void close() override {
        for (const auto& [_, s] : streams_) counters_.unanswered += s.requested;
        streams_.clear();
    }

    void frame(bool sending, std::string_view f, std::uint64_t length, std::uint64_t ts) {
        const int d = sending ? 0 : 1;
        const auto type = static_cast<unsigned char>(f[3]);
        const auto flags = static_cast<unsigned char>(f[4]);
        const std::uint32_t sid = be(f, 5, 4) & 0x7fffffff;
        const bool complete = f.size() == length;
        std::string_view payload = f.substr(9);
        Block& b = block_[d];
        if (b.open && type != kContinuation) {  // a block must continue right away
            b.open = false;
            loseHpack(d);
        }
        switch (type) {
            case kHeaders:
            case kPushPromise: {
                std::size_t skip = 0, pad = 0;
                bool ok = true;
                if (flags & kPadded) {
                    if (payload.empty()) ok = false;
                    else pad = static_cast<unsigned char>(payload[0]), skip = 1;
                }
                if (type == kHeaders && (flags & kPriority)) skip += 5;
                if (type == kPushPromise) skip += 4;
                const std::uint64_t body = length - 9;
                if (!ok || skip + pad > body) {
                    loseHpack(d);
                    return;
                }
                // The block is the payload minus padding: whole only when every byte was copied.
                const std::uint64_t block_len = body - skip - pad;
                b = Block{.open = true,
                          .push = type == kPushPromise,
                          .end_stream = (flags & kEndStream) != 0,
                          .incomplete = !complete,
                          .sid = sid,
                          .ts = ts};
                if (complete) b.bytes.assign(payload.substr(skip, static_cast<std::size_t>(block_len)));
                if (flags & kEndHeaders) endBlock(sending);
                return;
            }
            case kContinuation:
                if (!b.open || b.sid != sid) {
                    loseHpack(d);
                    return;
                }
                if (!complete || b.bytes.size() + payload.size() > kMaxBlock) b.incomplete = true;
                if (!b.incomplete) b.bytes.append(payload);
                if (flags & kEndHeaders) endBlock(sending);
                return;
            case kData: {
                auto it = streams_.find(sid);
                if (it == streams_.end()) return;
                (isRequest(sending) ? it->second.request_bytes : it->second.response_bytes) += length - 9;
                if ((flags & kEndStream) && !isRequest(sending)) finish(sid, ts);
                return;
            }
            case kRstStream: {
                auto it = streams_.find(sid);
                if (it == streams_.end()) return;
                if (it->second.status >= 0) {
                    finish(sid, ts);
                } else {
                    counters_.unanswered += it->second.requested;
                    streams_.erase(it);
                }
                return;
            }
            default:
                return;  // SETTINGS, PING, WINDOW_UPDATE, GOAWAY, PRIORITY, extensions
        }
    }

private:
    struct Block {
        bool open = false, push = false, end_stream = false, incomplete = false;
        std::uint32_t sid = 0;
        std::uint64_t ts = 0;
        std::string bytes;
    };
    struct Stream {
        bool requested = false, grpc = false;
        std::string method, path;
        int status = -1, grpc_status = -1;
        std::uint64_t request_ns = 0, response_ns = 0, request_bytes = 0, response_bytes = 0;
    };

    [[nodiscard]] bool isRequest(bool sending) const { return client_ && *client_ == sending; }

    void loseHpack(int d) {
        if (!hpack_[d].stale()) ++hpack_losses_;
        hpack_[d].markStale();
    }

    void endBlock(bool sending) {
        const int d = sending ? 0 : 1;
        Block& b = block_[d];
        b.open = false;
        std::string method, path, status, grpc_status, content_type;
        bool any_request_field = false;
        if (b.incomplete) {
            loseHpack(d);
        } else {
            const bool ok = hpack_[d].decode(b.bytes, [&](std::string_view n, std::string_view v) {
                if (n == ":method") method = v, any_request_field = true;
                else if (n == ":path") path = v, any_request_field = true;
                else if (n == ":status") status = v;
                else if (n == "grpc-status") grpc_status = v;
                else if (n == "content-type") content_type = v;
            });
            if (!ok) ++hpack_losses_;
        }
        if (b.push) return;  // a server push: decoded for the table's sake only
        if (!client_) {
            // No preface seen (capture began mid-connection): a block with request fields
            // comes from the client.
            if (any_request_field) client_ = sending;
            else if (!status.empty()) client_ = !sending;
            else return;
        }
        if (isRequest(sending)) {
            // A new stream's id is above every id the client used before (RFC 9113 5.1.1):
            // a block on an older stream is its trailers, even after the response ended it.
            if (b.sid <= last_request_sid_) return;
            last_request_sid_ = b.sid;
            if (streams_.size() >= max_streams_) {  // the oldest stream's end was not seen
                if (streams_.empty()) {                 // (max_streams 0)
                    ++counters_.unanswered;
                    return;
                }
                counters_.unanswered += streams_.begin()->second.requested;
                streams_.erase(streams_.begin());
            }
            Stream& s = streams_[b.sid];
            s.requested = true;
            s.method = method.empty() ? "UNKNOWN" : method.substr(0, 16);
            s.path = path.substr(0, path.find_first_of("?#"));
            if (s.path.empty()) s.path = "UNKNOWN";  // not seen, or nothing before the query
            if (s.path.size() > 256) s.path.resize(256);
            s.grpc = isGrpc(content_type);
            s.request_ns = b.ts;
            return;
        }
        auto it = streams_.find(b.sid);
        if (it == streams_.end()) {
            ++counters_.unmatched_responses;
            return;
        }
        Stream& s = it->second;
        if (!status.empty()) {
            int code = 0;
            for (char ch : status) code = ch >= '0' && ch <= '9' && code < 1000 ? code * 10 + (ch - '0') : 1000;
            if (code >= 100 && code < 200) return;  // interim
            if (s.status < 0) {
                s.status = code < 1000 ? code : 0;
                s.response_ns = b.ts;
                if (isGrpc(content_type)) s.grpc = true;
            }
        } else if (s.status < 0 && b.incomplete) {
            s.status = 0;  // the response's headers were not seen whole
            s.response_ns = b.ts;
        }
        if (!grpc_status.empty()) {
            int g = 0;
            for (char ch : grpc_status) g = ch >= '0' && ch <= '9' && g < 100 ? g * 10 + (ch - '0') : 100;
            s.grpc_status = g <= 16 ? g : 2;  // not a gRPC code: UNKNOWN, as clients read it
        }
        if (b.end_stream) finish(b.sid, b.ts);
    }

    void finish(std::uint32_t sid, std::uint64_t ts) {
        auto it = streams_.find(sid);
        if (it == streams_.end()) return;
        Stream s = std::move(it->second);
        streams_.erase(it);
        Exchange e;
        e.client = *client_;
        e.method = std::move(s.method);
        e.request_ns = s.request_ns;
        e.response_ns = s.response_ns ? s.response_ns : ts;
        e.request_bytes = s.request_bytes;
        e.response_bytes = s.response_bytes;
        if (s.grpc) {
            e.protocol = "grpc";
            e.method = s.path;  // /package.Service/Method: the RPC (the stage budgets the label)
            e.route = s.path;
            if (s.grpc_status < 0 && s.status > 0 && s.status != 200) s.grpc_status = grpcStatusOfHttp(s.status);
            if (s.grpc_status < 0) {
                e.outcome_unknown = true;  // the trailers were not seen
                e.status = 17;
            } else {
                e.status = s.grpc_status;
                e.error = s.grpc_status != 0;
                e.error_code = grpcStatusName(s.grpc_status);
            }
        } else {
            e.protocol = "http2";
            e.route = routeTemplate(s.path);
            e.status = s.status < 0 ? 0 : s.status;
        }
        e.path = std::move(s.path);
        sink_.onExchange(std::move(e));
    }

    ExchangeSink& sink_;
    std::size_t max_streams_;
    std::optional<bool> client_;
    std::uint32_t last_request_sid_ = 0;  // the highest stream id a request opened
    std::map<std::uint32_t, Stream> streams_;  // by id: the oldest first
    HpackDecoder hpack_[2];
    Block block_[2];
    std::uint64_t hpack_losses_ = 0;
    H2Direction dir_[2] = {H2Direction(*this, true), H2Direction(*this, false)};
    Framer framer_[2];
};

void H2Direction::onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) {
    parser_.frame(sending_, prefix, length, ts_ns);
}

bool H2Direction::onLost(const Chunk&, std::uint64_t) {
    parser_.loseFraming(sending_ ? 0 : 1);
    return false;
}

}  // namespace

const char* grpcStatusName(int s) {
    static constexpr const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                             "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                             "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                             "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    return s >= 0 && s < static_cast<int>(std::size(kNames)) ? kNames[s] : "UNKNOWN_OUTCOME";
}

bool grpcStatusIsError(int s) {
    return s == 2 || s == 4 || s == 8 || s == 10 || s == 12 || s == 13 || s == 14 || s == 15;
}

std::unique_ptr<MessageParser> makeHttp2Parser(ExchangeSink& sink, std::size_t max_streams) {
    return std::make_unique<Http2Parser>(sink, max_streams);
}

}  // namespace netprobe::l7
