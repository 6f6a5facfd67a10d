// PostgreSQL frontend/backend protocol 3.0 over captured syscall chunks.
//
// A request is a simple query ('Q') or an extended-query batch (Parse/Bind/Execute ...
// up to Sync) that executes a statement; its response is everything the backend sends up
// to ReadyForQuery ('Z'), which answers each Query and each Sync exactly once - so
// pairing is by order, also for pipelined batches. An ErrorResponse in between makes it
// an error, with its SQLSTATE. Statements are reported normalized (sql.hpp): no literal
// leaves the agent. Prepared statements are remembered per connection by name (bounded),
// so a Bind of one prepared earlier reports its statement.
#include <netprobe/l7/parser.hpp>
#include <netprobe/l7/sql.hpp>

#include <string_view>
#include <unordered_map>

namespace netprobe::l7 {
namespace {

constexpr std::uint32_t kProtocol3 = 196608;  // 3.0
constexpr std::uint32_t kSslRequest = 80877103;
constexpr std::uint32_t kGssEncRequest = 80877104;
constexpr std::size_t kMaxStatements = 1024;

std::uint32_t be32(std::string_view s, std::size_t at) {
    return (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

// Message types only the frontend sends, only the backend sends, and either.
constexpr std::string_view kFrontendOnly = "QPBXFpf";
constexpr std::string_view kBackendOnly = "RKZT123nstIGWANVv";
constexpr std::string_view kBoth = "DCESHdc";

// A NUL-terminated string at `at` in a message's captured bytes; `complete` false when
// the capture ended first.
std::string_view cstring(std::string_view s, std::size_t at, bool* complete = nullptr) {
    if (at >= s.size()) {
        if (complete) *complete = false;
        return {};
    }
    auto end = s.find('\0', at);
    if (complete) *complete = end != std::string_view::npos;
    return s.substr(at, end == std::string_view::npos ? s.size() - at : end - at);
}

struct Statement {
    std::string type, text;
};

class PostgresParser;

class PgDirection final : public FramedProtocol {
public:
    PgDirection(PostgresParser& parser, bool sending) : parser_(parser), sending_(sending) {}
    [[nodiscard]] std::size_t headerBytes() const override;
    [[nodiscard]] std::optional<std::uint64_t> messageLength(std::string_view h) const override;
    void onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) override;
    bool onLost(const Chunk& c, std::uint64_t from) override;

private:
    PostgresParser& parser_;
    bool sending_;
};

class PostgresParser final : public MessageParser {
public:
    PostgresParser(ExchangeSink& sink, std::size_t max_pending) : sink_(sink), pending_(counters_, max_pending) {}

    void feed(bool sending, const Chunk& c) override {
        if (encrypted_) {
            // After the server agreed to TLS the socket carries TLS records; the plaintext
            // comes from the TLS library probes and starts again with a startup message.
            if (!(frontendIs(sending) && c.head.size() >= 8 && c.head[0] == 0 && be32(c.head, 4) == kProtocol3))
                return;
            encrypted_ = false;
            send_framer_.reset();
            recv_framer_.reset();
        }
        (sending ? send_framer_ : recv_framer_).feed(sending ? send_dir_ : recv_dir_, c);
        counters_.desyncs = send_framer_.desyncs() + recv_framer_.desyncs();
    }

    void close() override { pending_.clear(); }

    // Which direction is the frontend (unknown until a message tells).
    [[nodiscard]] bool known() const { return frontend_sending_.has_value(); }
    [[nodiscard]] bool frontendIs(bool sending) const { return frontend_sending_ && *frontend_sending_ == sending; }
    [[nodiscard]] bool backendIs(bool sending) const { return frontend_sending_ && *frontend_sending_ != sending; }
    [[nodiscard]] bool expectSslReply() const { return expect_ssl_reply_; }

    void message(bool sending, std::string_view m, std::uint64_t length, std::uint64_t ts) {
        const char t = m[0];
        if (!frontend_sending_) {
            if (t == 0 || kFrontendOnly.find(t) != std::string_view::npos)
                frontend_sending_ = sending;
            else if (kBackendOnly.find(t) != std::string_view::npos)
                frontend_sending_ = !sending;
            else
                return;  // either side's type: wait for one that tells
        }
        if (frontendIs(sending))
            frontend(m, length, ts);
        else
            backend(m, length, ts);
    }

    bool lost(bool sending, const Chunk& c, std::uint64_t from) {
        // The end of the chunk (its tail when the middle was not copied).
        const std::uint64_t len = std::max<std::uint64_t>(c.len, c.head.size());
        const std::string_view end = c.len > c.head.size() ? c.tail : c.head;
        if (backendIs(sending)) {
            // ReadyForQuery ends most of the backend's writes: 'Z' int32(5) status.
            const std::string_view z = end.size() >= 6 ? end.substr(end.size() - 6) : std::string_view{};
            const bool ready = !z.empty() && len >= from + 6 && z[0] == 'Z' && be32(z, 1) == 5 &&
                               (z[5] == 'I' || z[5] == 'T' || z[5] == 'E');
            // The bytes not framed belong to the response all the same (a large result is
            // mostly such bytes); backend() counts the ReadyForQuery itself.
            if (!resp_ts_) resp_ts_ = c.ts_ns;
            resp_bytes_ += len - from - (ready ? 6 : 0);
            if (!ready) return false;
            backend(z, 6, c.ts_ns);
            return true;
        }
        if (frontendIs(sending)) {
            // Sync ends an extended-query batch: 'S' int32(4).
            if (end.size() < 5 || len < from + 5) return false;
            const std::string_view s = end.substr(end.size() - 5);
            if (s[0] != 'S' || be32(s, 1) != 4) return false;
            if (!batch_) batch_ = Batch{.ts_ns = c.ts_ns};
            if (batch_->statement.type.empty()) batch_->statement = {"UNKNOWN", "UNKNOWN"};
            batch_->executes = std::max(batch_->executes, 1);
            frontend(s, 5, c.ts_ns);
            return true;
        }
        return false;
    }

private:
    struct Batch {
        Statement statement;
        int executes = 0;
        std::uint64_t ts_ns = 0, bytes = 0;
    };

    static Statement statementOf(std::string_view text, bool truncated) {
        return {sqlStatementType(text), normalizeSql(text, SqlDialect::Postgres, truncated)};
    }

    void frontend(std::string_view m, std::uint64_t length, std::uint64_t ts) {
        const char t = m[0];
        if (t == 0) {  // startup-family: length, code
            if (m.size() < 8) return;
            const std::uint32_t code = be32(m, 4);
            if (code == kProtocol3)
                pending_.push({"STARTUP", "", ts, length, false});
            else if (code == kSslRequest || code == kGssEncRequest)
                expect_ssl_reply_ = true;
            return;  // (CancelRequest: no response on this connection)
        }
        if (batch_ && t != 'S') batch_->bytes += length;
        switch (t) {
            case 'Q': {
                bool complete = false;
                const std::string_view q = cstring(m, 5, &complete);
                Statement s = statementOf(q, !complete);
                pending_.push({std::move(s.type), std::move(s.text), ts, length, true});
                return;
            }
            case 'P': {  // Parse: name, query
                bool complete = false;
                const std::string_view name = cstring(m, 5);
                const std::string_view q = cstring(m, 5 + name.size() + 1, &complete);
                Statement s = statementOf(q, !complete);
                if (statements_.size() < kMaxStatements || statements_.contains(std::string(name)))
                    statements_[std::string(name)] = s;
                batchStart(ts, length);
                batch_->statement = std::move(s);
                return;
            }
            case 'B': {  // Bind: portal, statement
                const std::string_view portal = cstring(m, 5);
                const std::string_view name = cstring(m, 5 + portal.size() + 1);
                batchStart(ts, length);
                auto it = statements_.find(std::string(name));
                if (it != statements_.end())
                    batch_->statement = it->second;
                else if (batch_->statement.type.empty())
                    batch_->statement = {"OTHER", "(prepared before capture began)"};
                return;
            }
            case 'E':
                batchStart(ts, length);
                ++batch_->executes;
                // Without a Parse or Bind in the batch it executes a portal bound earlier (a
                // cursor fetched in parts): which statement is not known here.
                if (batch_->statement.type.empty()) batch_->statement = {"OTHER", "(prepared before capture began)"};
                return;
            case 'F':  // FunctionCall: answered by FunctionCallResponse + ReadyForQuery
                pending_.push({"FUNCTION", "", ts, length, false});
                return;
            case 'S': {  // Sync: the batch's ReadyForQuery follows
                if (batch_ && batch_->executes > 0)
                    pending_.push({batch_->statement.type, batch_->statement.text, batch_->ts_ns,
                                   batch_->bytes + length, true});
                else
                    pending_.push({"SYNC", "", ts, length, false});
                batch_.reset();
                return;
            }
            default:  // Describe, Close, Flush, copy data, password, Terminate
                if (t == 'D' || t == 'C' || t == 'H') batchStart(ts, length);
                return;
        }
    }

    void batchStart(std::uint64_t ts, std::uint64_t length) {
        if (!batch_) batch_ = Batch{.ts_ns = ts, .bytes = length};
    }

    void backend(std::string_view m, std::uint64_t length, std::uint64_t ts) {
        const char t = m[0];
        if (expect_ssl_reply_ && length == 1) {
            expect_ssl_reply_ = false;
            if (t == 'S' || t == 'G') encrypted_ = true;
            return;
        }
        if (t == 'A' || t == 'N' || t == 'S') {  // asynchronous: not part of a response's timing
            resp_bytes_ += length;
            return;
        }
        if (!resp_ts_) resp_ts_ = ts;
        resp_bytes_ += length;
        if (t == 'E') {
            // Fields: a code byte and a string each, until a zero byte; 'C' is SQLSTATE.
            std::size_t at = 5;
            while (at < m.size() && m[at] != 0) {
                const char field = m[at];
                const std::string_view v = cstring(m, at + 1);
                if (field == 'C' && v.size() == 5) error_ = std::string(v);
                at += 1 + v.size() + 1;
            }
            if (error_.empty()) error_ = "ERROR";
            return;
        }
        if (t != 'Z') return;
        auto p = pending_.pop();
        if (!p) {
            ++counters_.unmatched_responses;
        } else if (p->report) {
            Exchange e = PendingQueue::exchange(std::move(*p), *frontend_sending_);
            e.response_ns = resp_ts_;
            e.response_bytes = resp_bytes_;
            e.error = !error_.empty();
            e.error_code = error_;
            sink_.onExchange(std::move(e));
        }
        error_.clear();
        resp_ts_ = 0;
        resp_bytes_ = 0;
    }

    ExchangeSink& sink_;
    PendingQueue pending_;
    std::optional<bool> frontend_sending_;
    bool expect_ssl_reply_ = false;
    bool encrypted_ = false;
    std::unordered_map<std::string, Statement> statements_;
    std::optional<Batch> batch_;
    std::string error_;
    std::uint64_t resp_ts_ = 0, resp_bytes_ = 0;
    PgDirection send_dir_{*this, true}, recv_dir_{*this, false};
    Framer send_framer_, recv_framer_;
};

std::size_t PgDirection::headerBytes() const {
    return parser_.backendIs(sending_) && parser_.expectSslReply() ? 1 : 5;
}

std::optional<std::uint64_t> PgDirection::messageLength(std::string_view h) const {
    const char t = h[0];
    if (parser_.backendIs(sending_) && parser_.expectSslReply()) return 1;
    const bool may_frontend = !parser_.known() || parser_.frontendIs(sending_);
    const bool may_backend = !parser_.known() || parser_.backendIs(sending_);
    if (t == 0) {  // startup-family (no type byte): the length starts at byte 0
        if (!may_frontend) return std::nullopt;
        const std::uint32_t n = be32(h, 0);
        if (n < 8 || n > 10000) return std::nullopt;
        return n;
    }
    const bool valid = kBoth.find(t) != std::string_view::npos ||
                       (may_frontend && kFrontendOnly.find(t) != std::string_view::npos) ||
                       (may_backend && kBackendOnly.find(t) != std::string_view::npos);
    if (!valid) return std::nullopt;
    const std::uint32_t n = be32(h, 1);
    if (n < 4 || n > (1u << 30)) return std::nullopt;
    return std::uint64_t{n} + 1;
}

void PgDirection::onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) {
    parser_.message(sending_, prefix, length, ts_ns);
}

bool PgDirection::onLost(const Chunk& c, std::uint64_t from) { return parser_.lost(sending_, c, from); }

}  // namespace

std::unique_ptr<MessageParser> makePostgresParser(ExchangeSink& sink, std::size_t max_pending) {
    return std::make_unique<PostgresParser>(sink, max_pending);
}

}  // namespace netprobe::l7
