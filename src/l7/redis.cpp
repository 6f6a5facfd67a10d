// Redis (RESP2/RESP3) over captured syscall chunks: commands paired with replies in
// order (pipelining), error replies with their prefix (ERR, WRONGTYPE, NOAUTH, ...).
//
// Each direction is a stream of RESP values. A value is framed from its type line: an
// aggregate (*, %, ~, >, |) by its element count, a bulk string ($, =, !) by its length
// (so its bytes are skipped whether captured or not), the rest by their line. A type
// line in bytes that were not captured (a pipeline longer than the capture) loses the
// framing of that direction until a chunk starts with a type line again; replies that
// then have no known command are still counted, as command "UNKNOWN".
#include <netprobe/l7/parser.hpp>
#include <netprobe/l7/redis.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <vector>

namespace netprobe::l7 {
namespace {

// Redis's command names (redis.io/commands; modules' commands are "OTHER").
constexpr std::string_view kCommands[] = {
    "ACL", "APPEND", "ASKING", "AUTH", "BGREWRITEAOF", "BGSAVE", "BITCOUNT", "BITFIELD", "BITFIELD_RO", "BITOP",
    "BITPOS", "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP", "BZPOPMAX", "BZPOPMIN", "CLIENT",
    "CLUSTER", "COMMAND", "CONFIG", "COPY", "DBSIZE", "DEBUG", "DECR", "DECRBY", "DEL", "DISCARD",
    "DUMP", "ECHO", "EVAL", "EVALSHA", "EVALSHA_RO", "EVAL_RO", "EXEC", "EXISTS", "EXPIRE", "EXPIREAT",
    "EXPIRETIME", "FAILOVER", "FCALL", "FCALL_RO", "FLUSHALL", "FLUSHDB", "FUNCTION", "GEOADD", "GEODIST", "GEOHASH",
    "GEOPOS", "GEORADIUS", "GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO", "GEORADIUS_RO", "GEOSEARCH", "GEOSEARCHSTORE",
    "GET", "GETBIT", "GETDEL",
    "GETEX", "GETRANGE", "GETSET", "HDEL", "HELLO", "HEXISTS", "HGET", "HGETALL", "HINCRBY", "HINCRBYFLOAT",
    "HKEYS", "HLEN", "HMGET", "HMSET", "HRANDFIELD", "HSCAN", "HSET", "HSETNX", "HSTRLEN", "HVALS",
    "INCR", "INCRBY", "INCRBYFLOAT", "INFO", "KEYS", "LASTSAVE", "LATENCY", "LCS", "LINDEX", "LINSERT",
    "LLEN", "LMOVE", "LMPOP", "LOLWUT", "LPOP", "LPOS", "LPUSH", "LPUSHX", "LRANGE", "LREM",
    "LSET", "LTRIM", "MEMORY", "MGET", "MIGRATE", "MODULE", "MONITOR", "MOVE", "MSET", "MSETNX",
    "MULTI", "OBJECT", "PERSIST", "PEXPIRE", "PEXPIREAT", "PEXPIRETIME", "PFADD", "PFCOUNT", "PFDEBUG", "PFMERGE",
    "PFSELFTEST", "PING", "PSETEX", "PSUBSCRIBE", "PSYNC", "PTTL", "PUBLISH", "PUBSUB", "PUNSUBSCRIBE", "QUIT",
    "RANDOMKEY", "READONLY", "READWRITE", "RENAME", "RENAMENX", "REPLCONF", "REPLICAOF", "RESET", "RESTORE",
    "RESTORE-ASKING", "ROLE", "RPOP", "RPOPLPUSH", "RPUSH", "RPUSHX", "SADD", "SAVE", "SCAN", "SCARD",
    "SCRIPT", "SDIFF", "SDIFFSTORE", "SELECT", "SET", "SETBIT", "SETEX", "SETNX", "SETRANGE", "SHUTDOWN",
    "SINTER", "SINTERCARD", "SINTERSTORE", "SISMEMBER", "SLAVEOF", "SLOWLOG", "SMEMBERS", "SMISMEMBER", "SMOVE",
    "SORT", "SORT_RO", "SPOP", "SPUBLISH", "SRANDMEMBER", "SREM", "SSCAN", "SSUBSCRIBE", "STRLEN", "SUBSCRIBE",
    "SUBSTR", "SUNION", "SUNIONSTORE", "SUNSUBSCRIBE", "SWAPDB", "SYNC", "TIME", "TOUCH", "TTL", "TYPE",
    "UNLINK", "UNSUBSCRIBE", "UNWATCH", "WAIT", "WAITAOF", "WATCH", "XACK", "XADD", "XAUTOCLAIM", "XCLAIM",
    "XDEL", "XGROUP", "XINFO", "XLEN", "XPENDING", "XRANGE", "XREAD", "XREADGROUP", "XREVRANGE", "XSETID",
    "XTRIM", "ZADD", "ZCARD", "ZCOUNT", "ZDIFF", "ZDIFFSTORE", "ZINCRBY", "ZINTER", "ZINTERCARD", "ZINTERSTORE",
    "ZLEXCOUNT", "ZMPOP", "ZMSCORE", "ZPOPMAX", "ZPOPMIN", "ZRANDMEMBER", "ZRANGE", "ZRANGEBYLEX", "ZRANGEBYSCORE",
    "ZRANGESTORE", "ZRANK", "ZREM", "ZREMRANGEBYLEX", "ZREMRANGEBYRANK", "ZREMRANGEBYSCORE", "ZREVRANGE",
    "ZREVRANGEBYLEX", "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCAN", "ZSCORE", "ZUNION", "ZUNIONSTORE"};

static_assert(std::is_sorted(std::begin(kCommands), std::end(kCommands)), "binary search needs the names sorted");

constexpr std::size_t kMaxLine = 1024;  // a type line longer than this is not RESP
constexpr std::size_t kMaxDepth = 32;

std::optional<std::int64_t> number(std::string_view s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

// The first word of an error line, as a bounded label: upper-case letters only.
std::string errorPrefix(std::string_view line) {
    std::string out;
    for (char ch : line) {
        if (ch < 'A' || ch > 'Z' || out.size() >= 24) break;
        out += ch;
    }
    return out.empty() ? "ERR" : out;
}

}  // namespace

std::string redisCommandName(std::string_view word) {
    if (word.empty() || word.size() > 24) return "OTHER";
    std::string up(word);
    for (auto& ch : up)
        if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
    if (std::binary_search(std::begin(kCommands), std::end(kCommands), up)) return up;
    return "OTHER";
}

bool respStartsValue(std::string_view head, bool command) {
    if (head.size() < 3) return false;
    const char t = head[0];
    auto eol = head.find("\r\n");
    if (eol == std::string_view::npos || eol > kMaxLine) return false;
    std::string_view rest = head.substr(1, eol - 1);
    if (command) return t == '*' && number(rest).value_or(0) > 0 && head.substr(eol + 2, 1) == "$";
    switch (t) {
        case '*': case '%': case '~': case '>': case '|': case '$': case '=': case '!': case ':':
            return number(rest).has_value();
        case '+': case '-': case ',': case '#': case '_': case '(':
            return true;
        default:
            return false;
    }
}

void RespStream::reset() {
    line_.clear();
    stack_.clear();
    skip_ = 0;
    in_msg_ = false;
    lost_ = false;
}

void RespStream::lose() {
    ++desyncs_;
    line_.clear();
    stack_.clear();
    skip_ = 0;
    in_msg_ = false;
    lost_ = true;
}

void RespStream::valueDone() {
    while (!stack_.empty()) {
        if (--stack_.back().remaining > 0) return;
        stack_.pop_back();
    }
    // A top-level value is complete.
    in_msg_ = false;
    if (msg_.attribute) {  // RESP3 attribute: metadata before the reply itself
        msg_ = {};
        return;
    }
    listener_->onValue(sending_, msg_);
}

bool RespStream::line(std::string_view l) {
    if (l.empty()) return false;
    const char t = l[0];
    const std::string_view rest = l.substr(1);
    const bool top = stack_.empty();
    const bool first_element = stack_.size() == 1 && stack_.back().first;
    if (!stack_.empty()) stack_.back().first = false;
    switch (t) {
        case '*': case '%': case '~': case '>': case '|': {
            auto n = number(rest);
            if (!n || *n > (1 << 30)) return false;
            if (top) {
                msg_.type = t;
                msg_.attribute = t == '|';
            }
            if (*n <= 0) {
                valueDone();
                return true;
            }
            if (stack_.size() >= kMaxDepth) return false;
            stack_.push_back({(t == '%' || t == '|') ? *n * 2 : *n, top});
            return true;
        }
        case '$': case '=': case '!': {
            auto n = number(rest);
            if (!n || *n > (std::int64_t{1} << 40)) return false;
            if (top) msg_.type = t;
            if (*n < 0) {
                valueDone();
                return true;
            }
            skip_ = static_cast<std::uint64_t>(*n) + 2;
            bulk_len_ = static_cast<std::uint64_t>(*n);
            capture_ = (first_element && msg_.type == '*') || (top && t == '!');
            captured_.clear();
            return true;
        }
        case '+': case '-': case ':': case ',': case '#': case '_': case '(':
            if (top) {
                msg_.type = t;
                if (t == '-') msg_.error = errorPrefix(rest);
            }
            valueDone();
            return true;
        default:
            if (!top) return false;
            // An inline command ("PING\r\n"): its first word.
            msg_.type = 'i';
            msg_.command = redisCommandName(l.substr(0, l.find(' ')));
            valueDone();
            return true;
    }
}

void RespStream::feed(const Chunk& c) {
    const std::string_view head = c.head;
    const std::uint64_t captured = head.size();
    const std::uint64_t len = std::max<std::uint64_t>(c.len, captured);
    if (lost_) {
        if (!respStartsValue(head, false)) return;
        reset();
    }
    std::uint64_t pos = 0;
    while (pos < len) {
        if (!in_msg_) {
            msg_ = {};
            msg_.ts_ns = c.ts_ns;
            in_msg_ = true;
        }
        if (skip_) {
            const std::uint64_t n = std::min(skip_, len - pos);
            if (capture_ && pos < captured && captured_.size() < 64)
                captured_.append(head.substr(static_cast<std::size_t>(pos),
                                             static_cast<std::size_t>(std::min<std::uint64_t>(
                                                 {n, captured - pos, 64 - captured_.size()}))));
            pos += n;
            msg_.bytes += n;
            skip_ -= n;
            if (skip_) return;
            if (capture_) {
                std::string_view v = captured_;
                v = v.substr(0, static_cast<std::size_t>(std::min<std::uint64_t>(bulk_len_, v.size())));
                if (msg_.type == '!')
                    msg_.error = errorPrefix(v);
                else
                    msg_.command = redisCommandName(v);
                capture_ = false;
            }
            valueDone();
            continue;
        }
        if (pos >= captured) {  // a type line in bytes not copied
            lose();
            return;
        }
        const std::string_view avail = head.substr(static_cast<std::size_t>(pos));
        auto eol = avail.find('\n');
        if (eol == std::string_view::npos) {
            if (captured < len || line_.size() + avail.size() > kMaxLine) {
                lose();
                return;
            }
            line_.append(avail);
            msg_.bytes += avail.size();
            return;
        }
        line_.append(avail.substr(0, eol + 1));
        pos += eol + 1;
        msg_.bytes += eol + 1;
        if (line_.size() > kMaxLine + 2) {
            lose();
            return;
        }
        std::string_view l = line_;
        l.remove_suffix(1);
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        const bool ok = line(l);
        line_.clear();
        if (!ok) {
            lose();
            return;
        }
    }
}

namespace {

class RedisParser final : public MessageParser, RespListener {
public:
    RedisParser(ExchangeSink& sink, std::size_t max_pending, std::uint16_t local_port, std::uint16_t remote_port)
        : sink_(sink), pending_(counters_, max_pending) {
        // Which end is the client when the connection's first message does not tell (a
        // reply that is an array, with capture begun mid-connection): the end on an
        // ephemeral port.
        const bool local_eph = local_port >= 32768, remote_eph = remote_port >= 32768;
        if (local_eph != remote_eph) port_guess_ = local_eph;
    }

    void feed(bool sending, const Chunk& c) override {
        if (client_ && sending == *client_ && replies_lost_) {
            // New commands after replies whose framing was lost (a reply longer than the
            // capture, with more after it): a client that waits for its replies before
            // writing again has them all. The reply stream starts again at a boundary.
            answerLost();
            (sending ? recv_ : send_).restart();
        }
        RespStream& s = sending ? send_ : recv_;
        s.feed(c);
        if (!client_) return;
        if (sending == *client_) {
            // Commands whose bytes were not captured (a pipeline longer than the capture):
            // the replies that follow, beyond the known commands, are theirs - until the
            // next write of commands (read, at the server).
            lost_replies_ = s.lost();
            if (lost_replies_) lost_ts_ = c.ts_ns;
        } else if (s.lost() && !replies_lost_) {
            replies_lost_ = true;
            replies_lost_ts_ = c.ts_ns;
        }
    }

    void close() override {
        if (replies_lost_) answerLost();  // the client closed after its replies
        pending_.clear();
        counters_.desyncs = send_.desyncs() + recv_.desyncs();
    }

    void onValue(bool sending, const RespValue& v) override {
        counters_.desyncs = send_.desyncs() + recv_.desyncs();
        if (!client_) {
            if (v.type == '*' || v.type == 'i')
                client_ = port_guess_.value_or(sending);  // an array first: a command, unless the ports say otherwise
            else
                client_ = !sending;  // a reply type
        }
        const bool request = sending == *client_;
        if (request) {
            if (v.type != '*' && v.type != 'i') {  // not a command
                ++counters_.unmatched_responses;
                return;
            }
            const std::string cmd = v.command.empty() ? std::string("OTHER") : v.command;
            pending_.push({cmd, cmd, v.ts_ns, v.bytes, true});
            return;
        }
        if (v.type == '>') return;  // RESP3 push: out of band, not a reply
        Exchange e;
        if (auto p = pending_.pop()) {
            e = PendingQueue::exchange(std::move(*p), *client_);
        } else if (lost_replies_) {  // a command whose bytes were not captured
            e.method = e.path = "UNKNOWN";
            e.request_ns = lost_ts_;
        } else {
            ++counters_.unmatched_responses;  // e.g. pub/sub messages
            return;
        }
        e.client = *client_;
        e.response_ns = v.ts_ns;
        e.response_bytes = v.bytes;
        e.error = !v.error.empty();
        e.error_code = v.error;
        sink_.onExchange(std::move(e));
    }

private:
    // The pending commands were answered by replies that could not be framed: reported
    // with their outcome unknown.
    void answerLost() {
        while (auto p = pending_.pop()) {
            const std::uint64_t request_ns = p->ts_ns;
            Exchange e = PendingQueue::exchange(std::move(*p), *client_);
            e.response_ns = std::max(replies_lost_ts_, request_ns);
            e.outcome_unknown = true;
            sink_.onExchange(std::move(e));
        }
        replies_lost_ = false;
    }

    ExchangeSink& sink_;
    PendingQueue pending_;
    std::optional<bool> client_, port_guess_;
    bool lost_replies_ = false;
    std::uint64_t lost_ts_ = 0;
    bool replies_lost_ = false;  // the reply stream's framing is lost
    std::uint64_t replies_lost_ts_ = 0;
    RespStream send_{this, true}, recv_{this, false};
};

}  // namespace

std::unique_ptr<MessageParser> makeRedisParser(ExchangeSink& sink, std::size_t max_pending, std::uint16_t local_port,
                                               std::uint16_t remote_port) {
    return std::make_unique<RedisParser>(sink, max_pending, local_port, remote_port);
}

}  // namespace netprobe::l7
