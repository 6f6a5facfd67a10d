// Pairing and framing shared by the request/response parsers (see parser.hpp).
#include <netprobe/l7/parser.hpp>

#include <algorithm>

namespace netprobe::l7 {

std::optional<Piece> pieceAt(std::string_view pieces, std::uint64_t offset) {
    constexpr std::size_t kHdr = 6;
    auto byte = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(pieces[i])}; };
    std::size_t i = 0;
    while (pieces.size() - i >= kHdr) {
        const std::uint64_t at = byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24;
        const std::size_t n = static_cast<std::size_t>(byte(i + 4) | byte(i + 5) << 8);
        if (n > pieces.size() - i - kHdr) return std::nullopt;  // cut: not a piece
        if (at == offset) return Piece{at, pieces.substr(i + kHdr, n)};
        if (at > offset) return std::nullopt;  // (increasing offsets)
        i += kHdr + n;
    }
    return std::nullopt;
}

void PendingQueue::push(Pending p) {
    if (q_.size() >= max_) {
        q_.pop_front();
        ++counters_.unanswered;
    }
    q_.push_back(std::move(p));
}

std::optional<PendingQueue::Pending> PendingQueue::pop() {
    if (q_.empty()) return std::nullopt;
    Pending p = std::move(q_.front());
    q_.pop_front();
    return p;
}

Exchange PendingQueue::exchange(Pending&& p, bool client) {
    Exchange e;
    e.client = client;
    e.method = std::move(p.method);
    e.path = std::move(p.path);
    e.request_ns = p.ts_ns;
    e.request_bytes = p.bytes;
    return e;
}

void PendingQueue::clear() {
    for (const auto& p : q_) counters_.unanswered += p.report;
    q_.clear();
}

void Framer::reset() {
    buf_.clear();
    length_ = got_ = 0;
    skipped_ = false;
    lost_ = false;
}

void Framer::lose(FramedProtocol& p, const Chunk& c, std::uint64_t from) {
    ++desyncs_;
    buf_.clear();
    length_ = got_ = 0;
    skipped_ = false;
    lost_ = !p.onLost(c, from);
}

void Framer::feed(FramedProtocol& p, const Chunk& c) {
    const std::string_view head = c.head;
    const std::uint64_t captured = head.size();
    const std::uint64_t len = std::max<std::uint64_t>(c.len, captured);
    if (lost_) {
        if (!p.startsMessage(head)) {
            lost_ = !p.onLost(c, 0);
            return;
        }
        reset();
    }
    std::uint64_t pos = 0;
    while (pos < len) {
        if (length_ == 0) {  // collecting a header
            if (buf_.empty()) ts_ = c.ts_ns;
            const std::size_t hdr = p.headerBytes();
            if (pos >= captured && buf_.size() <= pos) {
                // A piece the capture took where this message begins (in this chunk), with
                // its whole header: the message's first bytes, as if they had been copied.
                const std::uint64_t start = pos - buf_.size();
                auto pc = pieceAt(c.pieces, start);
                if (pc && pc->bytes.size() >= hdr && len - start >= hdr) {
                    const std::string_view h = pc->bytes.substr(0, hdr);
                    auto n = p.messageLength(h);
                    if (!n || *n < hdr) {
                        lose(p, c, pos);
                        return;
                    }
                    length_ = *n;
                    keep_ = std::max(p.keepBytes(h), hdr);
                    const auto take = static_cast<std::size_t>(
                        std::min<std::uint64_t>({pc->bytes.size(), keep_, length_, len - start}));
                    buf_.assign(pc->bytes.substr(0, take));
                    got_ = take;
                    pos = start + take;  // (>= pos: the piece holds at least the header)
                    skipped_ = false;
                    continue;  // the rest of the message is skipped below (beyond the head)
                }
            }
            if (pos >= captured) {  // the header (or its rest) is in bytes not copied
                // Does the protocol know the message there? (A header begun in an earlier
                // chunk cannot be checked against this one's bytes: not asked.)
                auto known = buf_.size() <= pos ? p.uncopiedHeader(c, pos - buf_.size()) : std::nullopt;
                std::optional<std::uint64_t> n;
                if (known && known->size() == hdr) n = p.messageLength(*known);
                if (!n || *n < hdr) {
                    lose(p, c, pos);
                    return;
                }
                buf_ = std::move(*known);  // (got_: the header's bytes seen so far; the rest is skipped below)
                length_ = *n;
                keep_ = hdr;
                skipped_ = true;
                continue;
            }
            // (The header's size may shrink while one is collected - PostgreSQL's answer to
            // SSLRequest is one byte - so what is held may already be longer than it.)
            const auto take = buf_.size() >= hdr ? std::size_t{0}
                                                 : static_cast<std::size_t>(std::min<std::uint64_t>(
                                                       hdr - buf_.size(), captured - pos));
            buf_.append(head.substr(static_cast<std::size_t>(pos), take));
            pos += take;
            got_ += take;
            if (buf_.size() < hdr) continue;  // the rest comes with the next chunk
            auto n = p.messageLength(buf_);
            if (!n || *n < buf_.size()) {  // (a message shorter than its bytes so far: never done)
                lose(p, c, pos);
                return;
            }
            length_ = *n;
            keep_ = std::max(p.keepBytes(buf_), buf_.size());
        }
        if (got_ < length_ && buf_.size() < keep_ && pos < captured && !skipped_) {
            const auto take = static_cast<std::size_t>(
                std::min({static_cast<std::uint64_t>(keep_ - buf_.size()), captured - pos, length_ - got_}));
            buf_.append(head.substr(static_cast<std::size_t>(pos), take));
            pos += take;
            got_ += take;
        }
        if (got_ < length_ && (buf_.size() >= keep_ || pos >= captured || skipped_)) {
            const std::uint64_t skip = std::min(length_ - got_, len - pos);
            pos += skip;
            got_ += skip;
            skipped_ = skipped_ || skip > 0;
        }
        if (got_ == length_) {
            p.onMessage(buf_, length_, ts_);
            buf_.clear();
            length_ = got_ = 0;
            skipped_ = false;
        }
    }
}

}  // namespace netprobe::l7
