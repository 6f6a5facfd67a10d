// MySQL / MariaDB client/server protocol over captured syscall chunks.
//
// Every packet: a 3-byte length, a sequence number, the payload. A command is a client
// packet with sequence 0 (COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_PING, ...);
// its response starts with the server's packet of sequence 1: ERR (0xff, with the error
// number), OK (0x00), or a result set, which ends with an EOF/OK packet (0xfe) - the
// second one unless both ends agreed on CLIENT_DEPRECATE_EOF in the handshake. A response
// also ends when the next command starts or the connection closes. Statements are
// reported normalized (sql.hpp); prepared statements by the id the server gave them.
#include <netprobe/l7/parser.hpp>
#include <netprobe/l7/sql.hpp>

#include <array>
#include <string_view>
#include <unordered_map>

namespace netprobe::l7 {
namespace {

constexpr std::uint32_t kDeprecateEof = 0x01000000;
constexpr std::size_t kMaxStatements = 1024;

std::uint32_t le(std::string_view s, std::size_t at, int n) {
    std::uint32_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
    return v;
}

// Commands without a statement: their names (bounded: by command byte).
std::string commandName(unsigned char cmd) {
    switch (cmd) {
        case 0x02: return "INIT_DB";
        case 0x04: return "FIELD_LIST";
        case 0x05: return "CREATE_DB";
        case 0x06: return "DROP_DB";
        case 0x07: return "REFRESH";
        case 0x08: return "SHUTDOWN";
        case 0x09: return "STATISTICS";
        case 0x0a: return "PROCESS_INFO";
        case 0x0c: return "PROCESS_KILL";
        case 0x0d: return "DEBUG";
        case 0x0e: return "PING";
        case 0x11: return "CHANGE_USER";
        case 0x1a: return "STMT_RESET";
        case 0x1b: return "SET_OPTION";
        case 0x1c: return "STMT_FETCH";
        case 0x1f: return "RESET_CONNECTION";
        default: return "OTHER";
    }
}

class MySqlParser;

class MySqlDirection final : public FramedProtocol {
public:
    MySqlDirection(MySqlParser& parser, bool sending) : parser_(parser), sending_(sending) {}
    [[nodiscard]] std::size_t headerBytes() const override { return 4; }
    [[nodiscard]] std::optional<std::uint64_t> messageLength(std::string_view h) const override {
        return std::uint64_t{le(h, 0, 3)} + 4;
    }
    [[nodiscard]] bool startsMessage(std::string_view head) const override;
    void onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) override;
    bool onLost(const Chunk& c, std::uint64_t from) override;

private:
    MySqlParser& parser_;
    bool sending_;
};

class MySqlParser final : public MessageParser {
public:
    MySqlParser(ExchangeSink& sink, std::size_t max_pending) : sink_(sink), pending_(counters_, max_pending) {}

    void feed(bool sending, const Chunk& c) override {
        // After the SSLRequest the socket carries TLS records (not parsed); the plaintext
        // comes from the TLS library's probes and goes on where the SSLRequest left off
        // (the handshake response, sequence 2, then the commands).
        if (encrypted_ && !c.tls) return;
        (sending ? send_framer_ : recv_framer_).feed(sending ? send_dir_ : recv_dir_, c);
        counters_.desyncs = send_framer_.desyncs() + recv_framer_.desyncs();
    }

    void close() override {
        finish();
        pending_.clear();
    }

    [[nodiscard]] bool serverIs(bool sending) const { return client_sending_ && *client_sending_ != sending; }

    void packet(bool sending, std::string_view p, std::uint64_t length, std::uint64_t ts) {
        if (p.size() < 5) {  // an empty payload: nothing to learn
            if (current_ && serverIs(sending)) current_->response_bytes += length;
            return;
        }
        const auto seq = static_cast<unsigned char>(p[3]);
        const auto first = static_cast<unsigned char>(p[4]);
        if (!client_sending_) {
            if (seq == 0 && first == 0x0a && p.size() > 6 && p[5] >= '0' && p[5] <= '9')
                client_sending_ = !sending;  // the server's greeting
            else if (seq == 0 && (first == 0x03 || first == 0x16 || first == 0x17 || first == 0x0e))
                client_sending_ = sending;  // a command
            else
                return;
        }
        if (sending == *client_sending_)
            client(p, length, ts, seq, first);
        else
            server(p, length, ts, seq, first);
    }

    // The end of a chunk whose framing was lost: does it end with the response's last
    // packet (EOF/OK 0xfe, short)?
    bool lost(bool sending, const Chunk& c, std::uint64_t from) {
        if (!serverIs(sending) || !current_) return false;
        const std::uint64_t len = std::max<std::uint64_t>(c.len, c.head.size());
        const std::string_view end = c.len > c.head.size() ? c.tail : c.head;
        // The bytes not framed belong to the response whether or not its end is in sight
        // (a result set written in several syscalls loses the framing in the first).
        current_->response_bytes += len - from;
        for (std::size_t k = 0; k + 5 <= end.size(); ++k) {
            const std::uint32_t n = le(end, k, 3);
            if (k + 4 + n != end.size() || n < 5 || n > 11 || static_cast<unsigned char>(end[k + 4]) != 0xfe) continue;
            if (len - (end.size() - k) < from) return false;
            finish();
            return true;
        }
        return false;
    }

private:
    void client(std::string_view p, std::uint64_t length, std::uint64_t ts, unsigned char seq, unsigned char cmd) {
        if (seq == 1 && !handshake_seen_ && length >= 36) {
            // The handshake response (or SSLRequest, 32 bytes of payload): capabilities.
            handshake_seen_ = true;
            const std::uint32_t caps = le(p, 4, 4);
            deprecate_eof_ = (caps & kDeprecateEof) && (server_caps_ & kDeprecateEof);
            if ((caps & 0x800) && length == 36) encrypted_ = true;  // CLIENT_SSL and nothing more: TLS follows
            return;
        }
        if (seq != 0) return;  // authentication data, long data
        finish();  // a new command: the previous response is complete
        const std::string_view body = p.substr(5);
        const bool truncated = length > p.size();
        switch (cmd) {
            case 0x01:  // COM_QUIT
            case 0x18:  // COM_STMT_SEND_LONG_DATA
            case 0x19:  // COM_STMT_CLOSE: no response
                if (cmd == 0x19 && body.size() >= 4) statements_.erase(le(body, 0, 4));
                return;
            case 0x03:
                pending_.push({sqlStatementType(body), normalizeSql(body, SqlDialect::MySql, truncated), ts, length, true});
                return;
            case 0x16:
                pending_.push({"PREPARE", normalizeSql(body, SqlDialect::MySql, truncated), ts, length, true});
                prepare_ = {sqlStatementType(body), normalizeSql(body, SqlDialect::MySql, truncated)};
                return;
            case 0x17: {
                std::string type = "OTHER", text = "(prepared before capture began)";
                if (body.size() >= 4) {
                    auto it = statements_.find(le(body, 0, 4));
                    if (it != statements_.end()) {
                        type = it->second.first;
                        text = it->second.second;
                    }
                }
                pending_.push({std::move(type), std::move(text), ts, length, true});
                return;
            }
            default: {
                const std::string name = commandName(cmd);
                pending_.push({name, name, ts, length, true});
                return;
            }
        }
    }

    void server(std::string_view p, std::uint64_t length, std::uint64_t ts, unsigned char seq, unsigned char first) {
        if (seq == 0 && first == 0x0a) {  // greeting: the server's capabilities
            auto nul = p.find('\0', 5);
            if (nul != std::string_view::npos && nul + 1 + 4 + 8 + 1 + 2 <= p.size()) {
                const std::size_t at = nul + 1 + 4 + 8 + 1;  // connection id, auth data 1, filler
                server_caps_ = le(p, at, 2);
                if (at + 2 + 1 + 2 + 2 <= p.size()) server_caps_ |= le(p, at + 5, 2) << 16;
            }
            return;
        }
        if (seq != 1) {  // the rest of a response
            if (!current_) return;
            current_->response_bytes += length;
            if (first == 0xff) {
                finish();
            } else if (first == 0xfe && resultset_ && (deprecate_eof_ ? length < 0xffffff : length < 13)) {
                if (deprecate_eof_ || ++eofs_ >= 2) finish();
            }
            return;
        }
        finish();
        auto q = pending_.pop();
        if (!q) {
            ++counters_.unmatched_responses;
            return;
        }
        Exchange e = PendingQueue::exchange(std::move(*q), *client_sending_);
        e.response_ns = ts;
        e.response_bytes = length;
        if (first == 0xff) {
            e.error = true;
            e.error_code = p.size() >= 7 ? std::to_string(le(p, 5, 2)) : "ERROR";
        }
        if (e.method == "PREPARE" && first == 0x00 && p.size() >= 9 && prepare_) {
            if (statements_.size() < kMaxStatements) statements_[le(p, 5, 4)] = *prepare_;
        }
        prepare_.reset();
        resultset_ = first != 0x00 && first != 0xff && e.method != "PREPARE";
        current_ = std::move(e);
        eofs_ = 0;
        if (!resultset_) finish();
    }

    void finish() {
        if (!current_) return;
        sink_.onExchange(std::move(*current_));
        current_.reset();
    }

    ExchangeSink& sink_;
    PendingQueue pending_;
    std::optional<bool> client_sending_;
    bool handshake_seen_ = false, deprecate_eof_ = false, encrypted_ = false;
    std::uint32_t server_caps_ = 0;
    std::optional<Exchange> current_;
    bool resultset_ = false;
    int eofs_ = 0;
    std::optional<std::pair<std::string, std::string>> prepare_;
    std::unordered_map<std::uint32_t, std::pair<std::string, std::string>> statements_;
    MySqlDirection send_dir_{*this, true}, recv_dir_{*this, false};
    Framer send_framer_, recv_framer_;
};

bool MySqlDirection::startsMessage(std::string_view head) const {
    // Framing lost: a chunk that is exactly whole packets from its start, as the commands
    // and most responses are written, resynchronises.
    if (head.size() < 5) return false;
    std::size_t at = 0;
    while (at + 4 <= head.size()) {
        const std::uint64_t n = le(head, at, 3);
        at += 4 + n;
    }
    return at == head.size();
}

void MySqlDirection::onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) {
    parser_.packet(sending_, prefix, length, ts_ns);
}

bool MySqlDirection::onLost(const Chunk& c, std::uint64_t from) { return parser_.lost(sending_, c, from); }

}  // namespace

std::unique_ptr<MessageParser> makeMySqlParser(ExchangeSink& sink, std::size_t max_pending) {
    return std::make_unique<MySqlParser>(sink, max_pending);
}

}  // namespace netprobe::l7
