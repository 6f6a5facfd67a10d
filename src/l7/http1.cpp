// HTTP/1.x framing over captured syscall chunks (see http1.hpp).
#include <netprobe/l7/http1.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace netprobe::l7 {
namespace {

constexpr std::array<std::string_view, 9> kMethods = {"GET", "POST", "PUT", "HEAD", "DELETE",
                                                      "PATCH", "OPTIONS", "CONNECT", "TRACE"};
constexpr std::size_t kMaxTarget = 2048;

// ASCII case-insensitive equality; b is lower case.
bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
        if (c != b[i]) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool isMethod(std::string_view m) { return std::find(kMethods.begin(), kMethods.end(), m) != kMethods.end(); }

// "HTTP/1.0" or "HTTP/1.1" -> minor version.
std::optional<int> version(std::string_view v) {
    if (v.size() != 8 || v.substr(0, 7) != "HTTP/1.") return std::nullopt;
    if (v[7] != '0' && v[7] != '1') return std::nullopt;
    return v[7] - '0';
}

bool validTarget(std::string_view t, std::string_view method) {
    if (t.empty() || t.size() > 65536) return false;
    for (char ch : t)
        if (static_cast<unsigned char>(ch) <= 0x20 || static_cast<unsigned char>(ch) >= 0x7f) return false;
    if (method == "CONNECT") return true;  // authority form
    return t[0] == '/' || t[0] == '*' || t.starts_with("http://") || t.starts_with("https://");
}

// Parses the start line into m; false when it is not an HTTP/1 start line.
bool parseStartLine(std::string_view line, Http1Message& m) {
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.starts_with("HTTP/")) {
        // HTTP/1.x SP 3DIGIT [SP reason]
        if (line.size() < 12 || line[8] != ' ') return false;
        auto v = version(line.substr(0, 8));
        if (!v) return false;
        std::string_view code = line.substr(9, 3);
        if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
        if (line.size() > 12 && line[12] != ' ') return false;
        m.request = false;
        m.version_minor = *v;
        m.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
        return m.status >= 100 && m.status <= 599;
    }
    auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return false;
    auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return false;
    std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto v = version(line.substr(sp2 + 1));
    if (!isMethod(method) || !v || !validTarget(target, method)) return false;
    m.request = true;
    m.method = std::string(method);
    m.target = std::string(target.substr(0, kMaxTarget));
    m.version_minor = *v;
    return true;
}

void parseHeader(std::string_view line, Http1Message& m) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return;  // not a header line: ignored
    std::string_view name = line.substr(0, colon);
    const char first = static_cast<char>(name[0] | 0x20);
    if (first != 'c' && first != 't') return;  // none of the headers read below
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
        std::uint64_t n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec == std::errc() && p == value.data() + value.size() && !m.content_length) m.content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
        // chunked when it is the last coding
        auto last = value.rfind(',');
        m.chunked = iequals(trim(last == std::string_view::npos ? value : value.substr(last + 1)), "chunked");
    } else if (iequals(name, "connection")) {
        m.connection_close = value.find("close") != std::string_view::npos ||
                             value.find("Close") != std::string_view::npos;
    }
}

// End of the head in s (index just past the blank line), or npos.
std::size_t headEnd(std::string_view s) {
    // Line by line (memchr), not byte by byte: a head has a handful of lines.
    for (std::size_t i = s.find('\n'); i != std::string_view::npos; i = s.find('\n', i + 1)) {
        if (i + 1 < s.size() && s[i + 1] == '\n') return i + 2;
        if (i + 2 < s.size() && s[i + 1] == '\r' && s[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
}

}  // namespace

bool looksLikeHttp1Start(std::string_view b) {
    if (b.starts_with("HTTP/1.")) return true;
    for (auto m : kMethods)
        if (b.size() > m.size() && b.substr(0, m.size()) == m && b[m.size()] == ' ') return true;
    return false;
}

// A prefix of a start line (bytes that could become one with more data).
static bool couldStartHttp1(std::string_view b) {
    if (looksLikeHttp1Start(b)) return true;
    if (b.size() >= 8) return false;
    if (std::string_view("HTTP/1.").starts_with(b)) return true;
    for (auto m : kMethods)
        if (m.starts_with(b) || (b.size() == m.size() + 1 && b.starts_with(m) && b.back() == ' ')) return true;
    return false;
}

std::optional<Http1Message> parseHttp1Head(std::string_view head) {
    Http1Message m;
    auto eol = head.find('\n');
    if (eol == std::string_view::npos) return std::nullopt;
    if (!parseStartLine(head.substr(0, eol), m)) return std::nullopt;
    m.head_bytes = head.size();
    std::size_t pos = eol + 1;
    while (pos < head.size()) {
        auto e = head.find('\n', pos);
        std::string_view line = head.substr(pos, e == std::string_view::npos ? std::string_view::npos : e - pos);
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (line.empty()) break;
        parseHeader(line, m);
        if (e == std::string_view::npos) break;
        pos = e + 1;
    }
    if (m.chunked) m.content_length.reset();  // Transfer-Encoding wins (RFC 9112 6.3)
    return m;
}

void Http1Stream::endMessage() {
    if (in_message_) listener_->onEnd(sending_, msg_bytes_);
    in_message_ = false;
    msg_bytes_ = 0;
    state_ = State::Head;
    body_left_ = 0;
    chunk_phase_ = 0;
    line_.clear();
}

void Http1Stream::lose() {
    if (in_message_) listener_->onEnd(sending_, msg_bytes_);  // what was seen of it: a lower bound
    in_message_ = false;
    msg_bytes_ = 0;
    partial_.clear();
    line_.clear();
    state_ = State::Desync;
    ++desyncs_;
}

void Http1Stream::close() {
    if (in_message_) endMessage();
    partial_.clear();
}

std::size_t Http1Stream::chunkedScan(std::string_view data, std::size_t pos) {
    while (pos < data.size() && state_ == State::Chunked) {
        if (chunk_phase_ == 1) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, data.size() - pos));
            pos += n;
            msg_bytes_ += n;
            body_left_ -= n;
            if (body_left_ == 0) chunk_phase_ = 0;
            continue;
        }
        // a size line (phase 0) or a trailer line (phase 2)
        auto nl = data.find('\n', pos);
        std::size_t take = (nl == std::string_view::npos ? data.size() : nl + 1) - pos;
        line_.append(data.substr(pos, take));
        pos += take;
        msg_bytes_ += take;
        if (line_.size() > 1024) {
            lose();
            return data.size();
        }
        if (nl == std::string_view::npos) break;  // the line continues in the next chunk
        std::string_view line = trim(std::string_view(line_).substr(0, line_.size() - 1));
        if (chunk_phase_ == 0) {
            auto semi = line.find(';');
            std::string_view hex = trim(line.substr(0, semi));
            std::uint64_t size = 0;
            auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), size, 16);
            if (hex.empty() || ec != std::errc() || p != hex.data() + hex.size()) {
                lose();
                return data.size();
            }
            if (size == 0) {
                chunk_phase_ = 2;
            } else {
                body_left_ = size + 2;  // data and its CRLF
                chunk_phase_ = 1;
            }
        } else if (line.empty()) {
            line_.clear();
            endMessage();
            return pos;
        }
        line_.clear();
    }
    return pos;
}

void Http1Stream::startMessage(Http1Message& m, std::size_t head_bytes, std::uint64_t len, std::uint64_t pos) {
    m.start_ts_ns = partial_ts_;
    in_message_ = true;
    msg_bytes_ = head_bytes;
    const bool no_body = listener_->onHead(sending_, m);
    if (m.request) {
        if (m.chunked) {
            state_ = State::Chunked;
        } else if (m.content_length.value_or(0) > 0) {
            state_ = State::Body;
            body_left_ = *m.content_length;
        } else {
            endMessage();
        }
    } else if (no_body || m.status < 200 || m.status == 204 || m.status == 304) {
        endMessage();
    } else if (m.chunked) {
        state_ = State::Chunked;
    } else if (m.content_length) {
        if (*m.content_length == 0) {
            endMessage();
        } else {
            state_ = State::Body;
            body_left_ = *m.content_length;
        }
    } else {
        state_ = State::UntilClose;  // the rest of this chunk and all that follows, until close
        msg_bytes_ += len - pos;
    }
}

void Http1Stream::feed(const Chunk& c) {
    const std::string_view head = c.head;
    const std::uint64_t len = std::max<std::uint64_t>(c.len, head.size());
    const bool whole = len == head.size();
    // Where the chunk ends, as far as the bytes tell (tail, or the head when whole).
    const std::string_view last = whole ? head : c.tail;
    auto endsChunked = [&] { return last.ends_with("\r\n0\r\n\r\n") || (whole && last == "0\r\n\r\n"); };

    if (state_ == State::Desync) {
        if (!looksLikeHttp1Start(head)) return;
        state_ = State::Head;
        partial_.clear();
    } else if (state_ == State::ChunkedLost) {
        if (looksLikeHttp1Start(head)) {
            endMessage();  // it ended before this chunk, somewhere we did not see
        } else {
            msg_bytes_ += len;
            if (endsChunked()) endMessage();
            return;
        }
    } else if (state_ == State::UntilClose) {
        msg_bytes_ += len;
        return;
    }

    std::uint64_t pos = 0;
    while (pos < len) {
        switch (state_) {
            case State::Head: {
                if (pos >= head.size()) {  // the next message starts in bytes not copied
                    lose();
                    return;
                }
                std::string_view avail = head.substr(static_cast<std::size_t>(pos));
                if (partial_.empty()) {
                    if (!couldStartHttp1(avail.substr(0, std::min<std::size_t>(avail.size(), 16)))) {
                        lose();
                        return;
                    }
                    partial_ts_ = c.ts_ns;
                }
                const std::size_t prev = partial_.size();
                if (prev == 0) {
                    // The common case: the whole head is in this chunk - parsed in place.
                    const std::size_t e = headEnd(avail);
                    if (e != std::string_view::npos) {
                        auto parsed = parseHttp1Head(avail.substr(0, e));
                        if (!parsed) {
                            lose();
                            return;
                        }
                        pos += e;
                        startMessage(*parsed, e, len, pos);
                        if (state_ == State::UntilClose) return;
                        break;
                    }
                }
                partial_.append(avail.substr(0, kMaxHead - std::min(prev, kMaxHead)));
                const std::size_t e = headEnd(partial_);
                if (e == std::string_view::npos) {
                    if (partial_.size() >= kMaxHead) {
                        lose();
                        return;
                    }
                    if (head.size() < len) {
                        // The head runs into bytes not copied: report the start line, framing unknown.
                        auto eol = partial_.find('\n');
                        Http1Message m;
                        if (eol != std::string::npos && parseStartLine(std::string_view(partial_).substr(0, eol), m)) {
                            m.head_complete = false;
                            m.start_ts_ns = partial_ts_;
                            in_message_ = true;
                            msg_bytes_ = len - pos + prev;
                            listener_->onHead(sending_, m);
                        }
                        lose();
                        return;
                    }
                    return;  // the head continues in the next chunk
                }
                auto parsed = parseHttp1Head(std::string_view(partial_).substr(0, e));
                partial_.clear();
                if (!parsed) {
                    lose();
                    return;
                }
                pos += e - prev;
                startMessage(*parsed, e, len, pos);
                if (state_ == State::UntilClose) return;
                break;
            }
            case State::Body: {
                const std::uint64_t n = std::min(body_left_, len - pos);
                pos += n;
                body_left_ -= n;
                msg_bytes_ += n;
                if (body_left_ == 0) endMessage();
                break;
            }
            case State::Chunked: {
                if (pos >= head.size()) {  // in the bytes not copied: only the tail can tell the end
                    msg_bytes_ += len - pos;
                    if (endsChunked()) {
                        endMessage();
                    } else {
                        state_ = State::ChunkedLost;
                    }
                    return;
                }
                pos = chunkedScan(head, static_cast<std::size_t>(pos));
                if (state_ == State::Desync) return;
                break;
            }
            case State::UntilClose:
                msg_bytes_ += len - pos;
                return;
            case State::ChunkedLost:
            case State::Desync:
                return;
        }
    }
}

namespace {

bool isHex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

bool isUuid(std::string_view s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

std::string_view segmentClass(std::string_view seg) {
    if (seg.empty()) return {};
    if (std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; })) return "{id}";
    if (isUuid(seg)) return "{uuid}";
    if (seg.size() >= 16 && isHex(seg)) return "{hash}";
    const bool digit = std::any_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; });
    const bool alpha = std::any_of(seg.begin(), seg.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
    if (seg.size() >= 20 && digit && alpha) return "{token}";
    return {};
}

}  // namespace

std::string routeTemplate(std::string_view target) {
    if (target.starts_with("http://") || target.starts_with("https://")) {
        auto p = target.find('/', target.find("//") + 2);
        target = p == std::string_view::npos ? std::string_view("/") : target.substr(p);
    }
    target = target.substr(0, target.find_first_of("?#"));
    if (target.empty() || target[0] != '/') return target == "*" ? "*" : "/";
    std::string out;
    std::size_t segments = 0, pos = 1;
    while (true) {
        auto slash = target.find('/', pos);
        std::string_view seg = target.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
        if (++segments > 8) {
            out += "/...";
            break;
        }
        auto cls = segmentClass(seg);
        out += '/';
        out += cls.empty() ? seg : cls;
        if (out.size() > 128) {
            out.resize(124);
            out += "/...";
            break;
        }
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    return out;
}

}  // namespace netprobe::l7
