// AMQP 0-9-1 over captured syscall chunks (see amqp.hpp).
//
// Each direction is framed by the frames' headers (l7::Framer over type, channel and
// size; the protocol header is an 8-byte message of its own); a frame held whole must end
// with 0xCE, else the direction is lost until a syscall starts with a frame again. Per
// channel, each end may have one synchronous method awaiting its reply (the
// specification allows no more); a method with its no-wait bit set gets none and is
// reported at once. Content (header and body frames) belongs to the channel's last
// content-bearing method, which is reported when its body is complete (or when the next
// method on the channel, or the close, shows the rest was not seen).
#include <netprobe/l7/amqp.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace netprobe::l7 {
namespace {

constexpr std::uint64_t kMaxFrame = 1u << 28;   // a frame payload larger than this is not AMQP
constexpr std::size_t kMaxChannels = 2048;      // channels with state per connection (RabbitMQ's channel_max: 2047)
constexpr std::size_t kMaxName = 128;           // a route (queue, exchange) longer than this is cut
constexpr std::uint64_t kMinFrame = 4096;       // the specification's frame-min-size: no frame_max is smaller
constexpr std::uint32_t kMaxUncopied = 1024;    // body frames known without their header, per syscall

enum class Kind : std::uint8_t {
    Sync,   // a request that takes a reply (unless no-wait)
    Reply,  // the reply to a synchronous request
    Async,  // a request of its own, without a reply
    Close,  // channel.close / connection.close: synchronous, and answers the peer's pending request
};

struct Method {
    std::uint16_t cls, mth;
    const char* name;
    Kind kind;
    char sender;                  // 'C' the client, 'S' the server, 'B' either
    std::uint16_t reply1, reply2; // Sync/Close: the method ids (same class) that answer it
    bool content;                 // content frames follow (publish, return, deliver, get-ok)
    const char* fmt;              // arguments read: S short, L long, Q long long, s short string, b bits
    std::int8_t name1, name2;     // the route: short string #name1, else #name2 (-1: the method's name)
    std::int8_t nowait;           // the no-wait bit of the first bit octet (-1: none)
};

constexpr Method kMethods[] = {
    {10, 10, "connection.start", Kind::Sync, 'S', 11, 11, false, "", -1, -1, -1},
    {10, 11, "connection.start-ok", Kind::Reply, 'C', 0, 0, false, "", -1, -1, -1},
    {10, 20, "connection.secure", Kind::Sync, 'S', 21, 21, false, "", -1, -1, -1},
    {10, 21, "connection.secure-ok", Kind::Reply, 'C', 0, 0, false, "", -1, -1, -1},
    {10, 30, "connection.tune", Kind::Sync, 'S', 31, 31, false, "", -1, -1, -1},
    {10, 31, "connection.tune-ok", Kind::Reply, 'C', 0, 0, false, "", -1, -1, -1},
    {10, 40, "connection.open", Kind::Sync, 'C', 41, 41, false, "s", 0, -1, -1},
    {10, 41, "connection.open-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {10, 50, "connection.close", Kind::Close, 'B', 51, 51, false, "SsSS", -1, -1, -1},
    {10, 51, "connection.close-ok", Kind::Reply, 'B', 0, 0, false, "", -1, -1, -1},
    {10, 60, "connection.blocked", Kind::Async, 'S', 0, 0, false, "", -1, -1, -1},
    {10, 61, "connection.unblocked", Kind::Async, 'S', 0, 0, false, "", -1, -1, -1},
    {10, 70, "connection.update-secret", Kind::Sync, 'C', 71, 71, false, "", -1, -1, -1},
    {10, 71, "connection.update-secret-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {20, 10, "channel.open", Kind::Sync, 'C', 11, 11, false, "", -1, -1, -1},
    {20, 11, "channel.open-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {20, 20, "channel.flow", Kind::Sync, 'B', 21, 21, false, "", -1, -1, -1},
    {20, 21, "channel.flow-ok", Kind::Reply, 'B', 0, 0, false, "", -1, -1, -1},
    {20, 40, "channel.close", Kind::Close, 'B', 41, 41, false, "SsSS", -1, -1, -1},
    {20, 41, "channel.close-ok", Kind::Reply, 'B', 0, 0, false, "", -1, -1, -1},
    {40, 10, "exchange.declare", Kind::Sync, 'C', 11, 11, false, "Sssb", 0, -1, 4},
    {40, 11, "exchange.declare-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {40, 20, "exchange.delete", Kind::Sync, 'C', 21, 21, false, "Ssb", 0, -1, 1},
    {40, 21, "exchange.delete-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {40, 30, "exchange.bind", Kind::Sync, 'C', 31, 31, false, "Ssssb", 0, -1, 0},
    {40, 31, "exchange.bind-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {40, 40, "exchange.unbind", Kind::Sync, 'C', 51, 51, false, "Ssssb", 0, -1, 0},
    {40, 51, "exchange.unbind-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {50, 10, "queue.declare", Kind::Sync, 'C', 11, 11, false, "Ssb", 0, -1, 4},
    {50, 11, "queue.declare-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {50, 20, "queue.bind", Kind::Sync, 'C', 21, 21, false, "Ssssb", 0, -1, 0},
    {50, 21, "queue.bind-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {50, 30, "queue.purge", Kind::Sync, 'C', 31, 31, false, "Ssb", 0, -1, 0},
    {50, 31, "queue.purge-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {50, 40, "queue.delete", Kind::Sync, 'C', 41, 41, false, "Ssb", 0, -1, 2},
    {50, 41, "queue.delete-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {50, 50, "queue.unbind", Kind::Sync, 'C', 51, 51, false, "Ssss", 0, -1, -1},
    {50, 51, "queue.unbind-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {60, 10, "basic.qos", Kind::Sync, 'C', 11, 11, false, "", -1, -1, -1},
    {60, 11, "basic.qos-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {60, 20, "basic.consume", Kind::Sync, 'C', 21, 21, false, "Sssb", 0, -1, 3},
    {60, 21, "basic.consume-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {60, 30, "basic.cancel", Kind::Sync, 'B', 31, 31, false, "sb", -1, -1, 0},
    {60, 31, "basic.cancel-ok", Kind::Reply, 'B', 0, 0, false, "", -1, -1, -1},
    {60, 40, "basic.publish", Kind::Async, 'C', 0, 0, true, "Sss", 0, 1, -1},
    {60, 50, "basic.return", Kind::Async, 'S', 0, 0, true, "Ssss", 1, 2, -1},
    {60, 60, "basic.deliver", Kind::Async, 'S', 0, 0, true, "sQbss", 1, 2, -1},
    {60, 70, "basic.get", Kind::Sync, 'C', 71, 72, false, "Ss", 0, -1, -1},
    {60, 71, "basic.get-ok", Kind::Reply, 'S', 0, 0, true, "", -1, -1, -1},
    {60, 72, "basic.get-empty", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {60, 80, "basic.ack", Kind::Async, 'B', 0, 0, false, "", -1, -1, -1},
    {60, 90, "basic.reject", Kind::Async, 'C', 0, 0, false, "", -1, -1, -1},
    {60, 100, "basic.recover-async", Kind::Async, 'C', 0, 0, false, "", -1, -1, -1},
    {60, 110, "basic.recover", Kind::Sync, 'C', 111, 111, false, "", -1, -1, -1},
    {60, 111, "basic.recover-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {60, 120, "basic.nack", Kind::Async, 'B', 0, 0, false, "", -1, -1, -1},
    {85, 10, "confirm.select", Kind::Sync, 'C', 11, 11, false, "b", -1, -1, 0},
    {85, 11, "confirm.select-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {90, 10, "tx.select", Kind::Sync, 'C', 11, 11, false, "", -1, -1, -1},
    {90, 11, "tx.select-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {90, 20, "tx.commit", Kind::Sync, 'C', 21, 21, false, "", -1, -1, -1},
    {90, 21, "tx.commit-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
    {90, 30, "tx.rollback", Kind::Sync, 'C', 31, 31, false, "", -1, -1, -1},
    {90, 31, "tx.rollback-ok", Kind::Reply, 'S', 0, 0, false, "", -1, -1, -1},
};

const Method* findMethod(int cls, int mth) {
    for (const auto& m : kMethods)
        if (m.cls == cls && m.mth == mth) return &m;
    return nullptr;
}

struct ReplyCode {
    int code;
    const char* name;
};
constexpr ReplyCode kReplies[] = {
    {200, "REPLY_SUCCESS"},     {311, "CONTENT_TOO_LARGE"}, {312, "NO_ROUTE"},         {313, "NO_CONSUMERS"},
    {320, "CONNECTION_FORCED"}, {402, "INVALID_PATH"},      {403, "ACCESS_REFUSED"},   {404, "NOT_FOUND"},
    {405, "RESOURCE_LOCKED"},   {406, "PRECONDITION_FAILED"}, {501, "FRAME_ERROR"},    {502, "SYNTAX_ERROR"},
    {503, "COMMAND_INVALID"},   {504, "CHANNEL_ERROR"},     {505, "UNEXPECTED_FRAME"}, {506, "RESOURCE_ERROR"},
    {530, "NOT_ALLOWED"},       {540, "NOT_IMPLEMENTED"},   {541, "INTERNAL_ERROR"}};

std::uint16_t be16(std::string_view s, std::size_t at) {
    return static_cast<std::uint16_t>((static_cast<unsigned char>(s[at]) << 8) | static_cast<unsigned char>(s[at + 1]));
}
std::uint32_t be32(std::string_view s, std::size_t at) {
    return (std::uint32_t{be16(s, at)} << 16) | be16(s, at + 2);
}

// A method's arguments as its format reads them (as far as they were captured).
struct Args {
    std::vector<std::uint16_t> shorts;
    std::vector<std::string_view> strings;
    std::optional<std::uint8_t> bits;  // the first bit octet
    bool complete = false;             // every field of the format was read
};

Args readArgs(const char* fmt, std::string_view a) {
    Args out;
    std::size_t pos = 0;
    for (const char* f = fmt; *f; ++f) {
        switch (*f) {
            case 'S':
                if (pos + 2 > a.size()) return out;
                out.shorts.push_back(be16(a, pos));
                pos += 2;
                break;
            case 'L': pos += 4; break;
            case 'Q': pos += 8; break;
            case 's': {
                if (pos + 1 > a.size()) return out;
                const std::size_t n = static_cast<unsigned char>(a[pos]);
                if (pos + 1 + n > a.size()) return out;
                out.strings.push_back(a.substr(pos + 1, n));
                pos += 1 + n;
                break;
            }
            case 'b':
                if (pos + 1 > a.size()) return out;
                if (!out.bits) out.bits = static_cast<std::uint8_t>(a[pos]);
                pos += 1;
                break;
            default: return out;
        }
        if (pos > a.size()) return out;
    }
    out.complete = true;
    return out;
}

// A queue or exchange name as a route: printable, bounded; server-generated names
// (amq.gen-..., amq.ctag-...) collapsed.
std::string routeName(std::string_view s) {
    for (std::string_view generated : {"amq.gen-", "amq.ctag-"})
        if (s.starts_with(generated)) return std::string(generated) + "*";
    if (s.size() > kMaxName) s = s.substr(0, kMaxName);
    for (char ch : s)
        if (ch < 0x20 || ch > 0x7e) return "(binary)";
    return std::string(s);
}

class AmqpParser;

class AmqpDirection final : public FramedProtocol {
public:
    AmqpDirection(AmqpParser& parser, bool sending) : parser_(parser), sending_(sending) {}
    [[nodiscard]] std::size_t headerBytes() const override { return 7; }
    [[nodiscard]] std::optional<std::uint64_t> messageLength(std::string_view h) const override {
        if (h.starts_with("AMQP")) return 8;  // the protocol header
        const auto type = static_cast<unsigned char>(h[0]);
        if (type != 1 && type != 2 && type != 3 && type != 8) return std::nullopt;
        const std::uint32_t size = be32(h, 3);
        if (size > kMaxFrame) return std::nullopt;
        return std::uint64_t{size} + 8;
    }
    // Body frames: only their header is needed.
    [[nodiscard]] std::size_t keepBytes(std::string_view h) const override {
        return static_cast<unsigned char>(h[0]) == 3 ? 7 : kFrameKeep;
    }
    [[nodiscard]] bool startsMessage(std::string_view head) const override;
    void onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) override;
    [[nodiscard]] std::optional<std::string> uncopiedHeader(const Chunk& c, std::uint64_t from) override;

private:
    AmqpParser& parser_;
    bool sending_;
};

class AmqpParser final : public MessageParser {
public:
    AmqpParser(ExchangeSink& sink, std::uint16_t local_port, std::uint16_t remote_port) : sink_(sink) {
        auto amqpPort = [](std::uint16_t p) { return p == 5672 || p == 5671; };
        if (amqpPort(local_port) != amqpPort(remote_port)) {
            port_guess_ = amqpPort(remote_port);  // this end talks to the broker's port: the client
        } else {
            const bool local_eph = local_port >= 32768, remote_eph = remote_port >= 32768;
            if (local_eph != remote_eph) port_guess_ = local_eph;
        }
    }

    void feed(bool sending, const Chunk& c) override {
        const int d = sending ? 0 : 1;
        uncopied_ = 0;
        if (bad_[d]) {  // a frame that did not end with 0xCE: lost until a syscall starts with a frame
            if (!frameStarts(c.head)) return;
            bad_[d] = false;
            framer_[d].reset();
        }
        framer_[d].feed(dir_[d], c);
        counters_.desyncs = framer_[0].desyncs() + framer_[1].desyncs() + not_understood_;
    }

    void close() override {
        for (auto& [id, ch] : channels_) {
            flushContent(ch.content[0]);
            flushContent(ch.content[1]);
            counters_.unanswered += ch.from_client.has_value() + ch.from_server.has_value();
        }
        channels_.clear();
    }

    static bool frameStarts(std::string_view h) {
        if (h.starts_with("AMQP")) return h.size() >= 8;
        if (h.size() < 7) return false;
        const auto type = static_cast<unsigned char>(h[0]);
        const std::uint64_t size = be32(h, 3);
        if ((type != 1 && type != 2 && type != 3 && type != 8) || size > kMaxFrame) return false;
        if (7 + size >= h.size()) return false;  // its end is not in sight: not trusted
        if (static_cast<unsigned char>(h[7 + size]) != 0xce) return false;
        return type != 1 || (size >= 4 && findMethod(be16(h, 7), be16(h, 9)));
    }

    // The header of a body frame of the content in progress in this direction, where the
    // capture did not copy it (a syscall carrying a large message, or many frames): a
    // sender splits a body into frames of the largest payload the frame size allows
    // (frame_max - 8, as pika, RabbitMQ and the other clients do) and sends the frames of
    // one content in a row, so the frame at byte `from` is known from the body size still
    // to come. It is checked against what the capture has of it (the first bytes of its
    // header, its frame-end octet in the copied head or the syscall's last bytes); a
    // mismatch, two channels' contents in progress, an unknown frame size, or more than
    // kMaxUncopied such frames in one syscall: not known (the framing is lost as before).
    // What follows a content's last frame is not known.
    [[nodiscard]] std::optional<std::string> uncopiedHeader(bool sending, const Chunk& c, std::uint64_t from) {
        const int d = sending ? 0 : 1;
        const std::uint64_t max = frame_max_ ? frame_max_ - 8 : learned_body_max_;
        if (bad_[d] || max == 0 || interleaved_[d] || ++uncopied_ > kMaxUncopied) return std::nullopt;
        const std::uint16_t id = content_ch_[d];
        auto it = channels_.find(id);
        if (it == channels_.end()) return std::nullopt;
        const Content& cur = it->second.content[d];
        if (!cur.e || !cur.header_seen || cur.body_left == 0) return std::nullopt;
        const std::uint64_t size = std::min(cur.body_left, max);
        std::string h(7, '\0');
        h[0] = 3;
        h[1] = static_cast<char>(id >> 8);
        h[2] = static_cast<char>(id & 0xff);
        for (int i = 0; i < 4; ++i) h[3 + static_cast<std::size_t>(i)] = static_cast<char>((size >> (24 - 8 * i)) & 0xff);
        auto byteIs = [&](std::uint64_t at, char want) {
            if (at < c.head.size()) return c.head[at] == want;
            const std::uint64_t tail_at = c.len - c.tail.size();
            if (!c.tail.empty() && at >= tail_at && at < c.len) return c.tail[at - tail_at] == want;
            return true;  // not captured
        };
        for (std::uint64_t i = 0; i < 7; ++i)
            if (!byteIs(from + i, h[i])) return std::nullopt;
        if (!byteIs(from + 7 + size, static_cast<char>(0xce))) return std::nullopt;
        return h;
    }

    void frame(bool sending, std::string_view p, std::uint64_t length, std::uint64_t ts) {
        if (bad_[sending ? 0 : 1]) return;  // (the rest of the syscall whose frame had no frame end)
        if (p.starts_with("AMQP")) {  // the protocol header (from the server: a refused version)
            if (!client_) client_ = sending;
            return;
        }
        if (p.size() < 7) return;  // (the framer holds at least the header)
        const auto type = static_cast<unsigned char>(p[0]);
        if (p.size() == length && static_cast<unsigned char>(p.back()) != 0xce) {
            bad_[sending ? 0 : 1] = true;  // not a frame where one should end: framing lost
            ++not_understood_;
            return;
        }
        const std::uint16_t channel = be16(p, 1);
        const std::uint64_t size = length - 8;
        std::string_view payload = p.substr(7, static_cast<std::size_t>(std::min<std::uint64_t>(size, p.size() - 7)));
        switch (type) {
            case 1: method(sending, channel, payload, length, ts); break;
            case 2: contentHeader(sending, channel, payload, length); break;
            case 3: contentBody(sending, channel, size, length); break;
            default: break;  // heartbeat
        }
    }

private:
    struct Pending {
        const Method* m = nullptr;
        std::string route;
        std::uint64_t ts = 0, bytes = 0;
        int code = 0;  // a close: its reply code
    };
    // A content-bearing method awaiting its content frames (each direction has its own).
    struct Content {
        std::optional<Exchange> e;
        bool response = false;  // the content is the response's (get-ok)
        bool header_seen = false;
        std::uint64_t body_left = 0;
    };
    struct Channel {
        std::optional<Pending> from_client, from_server;  // a synchronous request awaiting its reply, per sender
        Content content[2];                               // by direction: sent, received
    };

    Exchange exchangeOf(const Method& m, std::string route, std::uint64_t ts, std::uint64_t bytes) const {
        Exchange e;
        e.client = *client_;
        e.method = m.name;
        e.path = route.empty() ? std::string(m.name) : std::move(route);
        e.request_ns = e.response_ns = ts;
        e.request_bytes = bytes;
        return e;
    }

    static void setCode(Exchange& e, int code) {
        if (code == 0 || code == 200) return;
        e.error = true;
        e.error_code = std::to_string(code);
    }

    std::string routeOf(const Method& m, const Args& a) const {
        if (m.name1 < 0) return {};
        auto at = [&](int i) -> std::optional<std::string_view> {
            if (i < 0 || static_cast<std::size_t>(i) >= a.strings.size()) return std::nullopt;
            return a.strings[static_cast<std::size_t>(i)];
        };
        auto n1 = at(m.name1), n2 = at(m.name2);
        if (n1 && !n1->empty()) return routeName(*n1);
        if (n2 && !n2->empty()) return routeName(*n2);
        if (!n1) return {};  // not captured: the method's name
        const bool queue = m.cls == 50 || (m.cls == 60 && (m.mth == 20 || m.mth == 70));  // queue.*, consume, get
        return queue ? "(server-named)" : "(default)";
    }

    // A channel's state (nullptr: the connection has kMaxChannels already, more than
    // the protocol's channel_max allows).
    Channel* channel(std::uint16_t id) {
        auto it = channels_.find(id);
        if (it != channels_.end()) return &it->second;
        if (channels_.size() >= kMaxChannels) return nullptr;
        return &channels_[id];
    }

    void emit(Exchange&& e) { sink_.onExchange(std::move(e)); }

    void flushContent(Content& c) {
        if (c.e) emit(std::move(*c.e));
        c = Content{};
    }

    static void holdContent(Content& c, Exchange&& e, bool response) {
        c = Content{};
        c.e = std::move(e);
        c.response = response;
    }

    // The content in progress of the channel in this direction, if any.
    Content* content(bool sending, std::uint16_t id) {
        auto it = channels_.find(id);
        if (it == channels_.end()) return nullptr;
        Content& c = it->second.content[sending ? 0 : 1];
        return c.e ? &c : nullptr;
    }

    static void addContentBytes(Content& c, std::uint64_t bytes) {
        (c.response ? c.e->response_bytes : c.e->request_bytes) += bytes;
    }

    void contentHeader(bool sending, std::uint16_t id, std::string_view payload, std::uint64_t length) {
        Content* c = content(sending, id);
        if (!c || c->header_seen) return;
        addContentBytes(*c, length);
        if (payload.size() < 12) {  // the body size was not captured: the content ends here
            flushContent(*c);
            return;
        }
        const std::uint64_t body = (std::uint64_t{be32(payload, 4)} << 32) | be32(payload, 8);
        c->header_seen = true;
        c->body_left = body;
        if (body == 0) {
            flushContent(*c);
            return;
        }
        // The body frames that follow are this channel's - unless another channel's content
        // is in progress in this direction too (frames of two contents may interleave).
        const int d = sending ? 0 : 1;
        content_ch_[d] = id;
        interleaved_[d] = std::any_of(channels_.begin(), channels_.end(), [&](const auto& kv) {
            const Content& x = kv.second.content[d];
            return kv.first != id && x.e && x.header_seen && x.body_left > 0;
        });
    }

    void contentBody(bool sending, std::uint16_t id, std::uint64_t size, std::uint64_t length) {
        Content* c = content(sending, id);
        if (!c || !c->header_seen) return;
        if (size < c->body_left && size + 8 >= kMinFrame && !frame_max_) learned_body_max_ = size;  // not the last: a full frame
        addContentBytes(*c, length);
        c->body_left -= std::min(size, c->body_left);
        if (c->body_left == 0) flushContent(*c);
    }

    // The peer's pending request on ch, answered by a close with this code (the close's
    // bytes are its own request's: not counted again here).
    void answerByClose(std::optional<Pending>& slot, int code, std::uint64_t ts) {
        if (!slot) return;
        Exchange e = exchangeOf(*slot->m, std::move(slot->route), slot->ts, slot->bytes);
        e.response_ns = ts;
        setCode(e, slot->code ? slot->code : code);
        if (!e.error && code == 200) {  // closed normally while awaiting a reply: never answered
            ++counters_.unanswered;
        } else {
            emit(std::move(e));
        }
        slot.reset();
    }

    void method(bool sending, std::uint16_t channel_id, std::string_view payload, std::uint64_t length,
                std::uint64_t ts) {
        if (payload.size() < 4) return;  // the method's ids were not captured
        const Method* m = findMethod(be16(payload, 0), be16(payload, 2));
        if (!m) {
            ++not_understood_;
            return;
        }
        if (!client_) {
            if (m->sender == 'C')
                client_ = sending;
            else if (m->sender == 'S')
                client_ = !sending;
            else if (port_guess_)
                client_ = *port_guess_;
            else
                return;
        }
        const bool from_client = sending == *client_;
        if (m->cls == 10 && (m->mth == 30 || m->mth == 31) && payload.size() >= 10) {  // tune, tune-ok: the frame size
            const std::uint64_t fm = be32(payload, 6);
            frame_max_ = fm == 0 ? kMaxFrame + 8 : fm >= kMinFrame ? fm : 0;  // (0: no limit; below the minimum: not used)
        }
        Channel* chp = channel(channel_id);
        if (!chp) {
            ++not_understood_;
            return;
        }
        Channel& ch = *chp;
        Content& own = ch.content[sending ? 0 : 1];
        flushContent(own);  // a method on the channel ends the content its sender sent before it
        const Args a = readArgs(m->fmt, payload.substr(4));
        switch (m->kind) {
            case Kind::Async: {
                Exchange e = exchangeOf(*m, routeOf(*m, a), ts, length);
                if (m->cls == 60 && m->mth == 50 && !a.shorts.empty()) setCode(e, a.shorts[0]);  // basic.return
                if (m->content)
                    holdContent(own, std::move(e), false);
                else
                    emit(std::move(e));
                return;
            }
            case Kind::Sync: {
                if (m->nowait >= 0 && a.bits && ((*a.bits >> m->nowait) & 1)) {  // no reply will come
                    emit(exchangeOf(*m, routeOf(*m, a), ts, length));
                    return;
                }
                auto& slot = from_client ? ch.from_client : ch.from_server;
                if (slot) ++counters_.unanswered;  // a synchronous request before the last one's reply
                slot = Pending{m, routeOf(*m, a), ts, length, 0};
                return;
            }
            case Kind::Close: {
                const int code = a.shorts.empty() ? 0 : a.shorts[0];
                if (m->cls == 10) {  // connection.close: every channel's pending request of the peer
                    for (auto& [id, c] : channels_) answerByClose(from_client ? c.from_server : c.from_client, code, ts);
                } else {
                    answerByClose(from_client ? ch.from_server : ch.from_client, code, ts);
                }
                auto& slot = from_client ? ch.from_client : ch.from_server;
                if (slot) ++counters_.unanswered;
                slot = Pending{m, {}, ts, length, code};
                return;
            }
            case Kind::Reply: {
                auto& slot = from_client ? ch.from_server : ch.from_client;  // the peer's request
                if (!slot || slot->m->cls != m->cls || (slot->m->reply1 != m->mth && slot->m->reply2 != m->mth)) {
                    ++counters_.unmatched_responses;
                    return;
                }
                const bool close_ok = slot->m->kind == Kind::Close;
                const bool connection = m->cls == 10;
                Exchange e = exchangeOf(*slot->m, std::move(slot->route), slot->ts, slot->bytes);
                e.response_ns = ts;
                e.response_bytes = length;
                setCode(e, slot->code);
                slot.reset();
                if (m->content) {
                    holdContent(own, std::move(e), true);
                    return;
                }
                emit(std::move(e));
                if (close_ok) {
                    // The channel (or the whole connection) is gone: what was pending is not answered.
                    auto drop = [&](Channel& c) {
                        flushContent(c.content[0]);
                        flushContent(c.content[1]);
                        counters_.unanswered += c.from_client.has_value() + c.from_server.has_value();
                    };
                    if (connection) {
                        for (auto& [id, c] : channels_) drop(c);
                        channels_.clear();
                    } else {
                        drop(ch);
                        channels_.erase(channel_id);
                    }
                }
                return;
            }
        }
    }

    ExchangeSink& sink_;
    std::optional<bool> client_, port_guess_;
    std::map<std::uint16_t, Channel> channels_;
    std::uint64_t not_understood_ = 0;  // frames without their frame end, unknown methods
    std::uint64_t frame_max_ = 0;       // from connection.tune(-ok); 0: not seen
    std::uint64_t learned_body_max_ = 0;  // else a body frame's payload that was not its content's last
    std::uint16_t content_ch_[2] = {0, 0};  // by direction: the channel of the last content header
    bool interleaved_[2] = {false, false};  // ... and whether another channel's content was in progress then
    std::uint32_t uncopied_ = 0;            // body frames known without their header in this syscall
    bool bad_[2] = {false, false};
    AmqpDirection dir_[2] = {{*this, true}, {*this, false}};
    Framer framer_[2];
};

bool AmqpDirection::startsMessage(std::string_view head) const { return AmqpParser::frameStarts(head); }

void AmqpDirection::onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) {
    parser_.frame(sending_, prefix, length, ts_ns);
}

std::optional<std::string> AmqpDirection::uncopiedHeader(const Chunk& c, std::uint64_t from) {
    return parser_.uncopiedHeader(sending_, c, from);
}

}  // namespace

const char* amqpMethodName(int class_id, int method_id) {
    const Method* m = findMethod(class_id, method_id);
    return m ? m->name : nullptr;
}

const char* amqpReplyName(int code) {
    for (const auto& r : kReplies)
        if (r.code == code) return r.name;
    return nullptr;
}

std::unique_ptr<MessageParser> makeAmqpParser(ExchangeSink& sink, std::uint16_t local_port, std::uint16_t remote_port) {
    return std::make_unique<AmqpParser>(sink, local_port, remote_port);
}

}  // namespace netprobe::l7
