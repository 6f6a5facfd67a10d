// HPACK decoding (see hpack.hpp).
#include <netprobe/l7/hpack.hpp>

#include <array>
#include <utility>

namespace netprobe::l7 {
namespace {

// RFC 7541 Appendix A.
constexpr std::pair<std::string_view, std::string_view> kStatic[] = {
    {":authority", ""}, {":method", "GET"}, {":method", "POST"}, {":path", "/"}, {":path", "/index.html"},
    {":scheme", "http"}, {":scheme", "https"}, {":status", "200"}, {":status", "204"}, {":status", "206"},
    {":status", "304"}, {":status", "400"}, {":status", "404"}, {":status", "500"}, {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"}, {"accept-language", ""}, {"accept-ranges", ""}, {"accept", ""},
    {"access-control-allow-origin", ""}, {"age", ""}, {"allow", ""}, {"authorization", ""}, {"cache-control", ""},
    {"content-disposition", ""}, {"content-encoding", ""}, {"content-language", ""}, {"content-length", ""},
    {"content-location", ""}, {"content-range", ""}, {"content-type", ""}, {"cookie", ""}, {"date", ""},
    {"etag", ""}, {"expect", ""}, {"expires", ""}, {"from", ""}, {"host", ""}, {"if-match", ""},
    {"if-modified-since", ""}, {"if-none-match", ""}, {"if-range", ""}, {"if-unmodified-since", ""},
    {"last-modified", ""}, {"link", ""}, {"location", ""}, {"max-forwards", ""}, {"proxy-authenticate", ""},
    {"proxy-authorization", ""}, {"range", ""}, {"referer", ""}, {"refresh", ""}, {"retry-after", ""},
    {"server", ""}, {"set-cookie", ""}, {"strict-transport-security", ""}, {"transfer-encoding", ""},
    {"user-agent", ""}, {"vary", ""}, {"via", ""}, {"www-authenticate", ""}};
static_assert(std::size(kStatic) == 61);

// RFC 7541 Appendix B: the code length of each symbol (0..255, EOS = 256). The code is
// canonical - codes are assigned in order of length, then symbol - so the lengths
// determine it; the decoder below is the canonical-code decoder.
constexpr std::array<std::uint8_t, 257> kHuffLen = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28,
    28, 28, 28, 6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,  5,  5,  5,  6,  6,  6,  6,  6,  6,  6,
    7,  8,  15, 6,  12, 10, 13, 6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,
    7,  8,  7,  8,  13, 19, 13, 14, 6,  15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,  6,  7,  6,  5,
    5,  6,  7,  7,  7,  7,  7,  15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24,
    21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25,
    26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21,
    22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30};

// The canonical code's decoding tables: per length, the first code, the number of codes
// and where its symbols start in kSymbols (symbols sorted by length, then value).
struct Canonical {
    std::array<std::uint32_t, 31> first{};
    std::array<std::uint16_t, 31> count{};
    std::array<std::uint16_t, 31> offset{};
    std::array<std::uint16_t, 257> symbols{};
};

constexpr Canonical buildCanonical() {
    Canonical c{};
    for (std::uint16_t s = 0; s < 257; ++s) ++c.count[kHuffLen[s]];
    std::uint16_t at = 0;
    for (int len = 1; len <= 30; ++len) {
        c.offset[len] = at;
        for (std::uint16_t s = 0; s < 257; ++s)
            if (kHuffLen[s] == len) c.symbols[at++] = s;
    }
    std::uint32_t code = 0;
    for (int len = 1; len <= 30; ++len) {
        code <<= 1;
        c.first[len] = code;
        code += c.count[len];
    }
    return c;
}
constexpr Canonical kCanon = buildCanonical();
// Checks against codes the RFC lists: '0' = 00000 (5 bits), 'a' = 00011, EOS = 30 ones.
static_assert(kCanon.first[5] == 0 && kCanon.symbols[kCanon.offset[5]] == '0');
static_assert(kCanon.symbols[kCanon.offset[5] + 3] == 'a');
static_assert(kCanon.first[30] + kCanon.count[30] - 1 == 0x3fffffff && kCanon.symbols[kCanon.offset[30] + 3] == 256);

// An HPACK integer with an n-bit prefix at p (advanced); false on overflow or truncation.
bool integer(std::string_view in, std::size_t& p, int n, std::uint64_t& out) {
    if (p >= in.size()) return false;
    const std::uint64_t mask = (1u << n) - 1;
    out = static_cast<unsigned char>(in[p++]) & mask;
    if (out < mask) return true;
    for (int shift = 0; shift <= 28; shift += 7) {  // at most 5 continuation bytes: < 2^35
        if (p >= in.size()) return false;
        const auto b = static_cast<unsigned char>(in[p++]);
        out += static_cast<std::uint64_t>(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

bool stringLiteral(std::string_view in, std::size_t& p, std::string& out) {
    if (p >= in.size()) return false;
    const bool huffman = static_cast<unsigned char>(in[p]) & 0x80;
    std::uint64_t len = 0;
    if (!integer(in, p, 7, len) || len > in.size() - p) return false;
    const std::string_view raw = in.substr(p, static_cast<std::size_t>(len));
    p += static_cast<std::size_t>(len);
    out.clear();
    if (!huffman) {
        if (raw.size() > 16384) return false;
        out.assign(raw);
        return true;
    }
    return hpackHuffmanDecode(raw, out);
}

}  // namespace

bool hpackHuffmanDecode(std::string_view in, std::string& out, std::size_t max_out) {
    std::uint32_t code = 0;
    int len = 0;
    for (unsigned char byte : in) {
        for (int bit = 7; bit >= 0; --bit) {
            code = (code << 1) | ((byte >> bit) & 1);
            ++len;
            if (len > 30) return false;
            const std::uint32_t rel = code - kCanon.first[static_cast<std::size_t>(len)];
            if (code >= kCanon.first[static_cast<std::size_t>(len)] && rel < kCanon.count[static_cast<std::size_t>(len)]) {
                const std::uint16_t sym = kCanon.symbols[kCanon.offset[static_cast<std::size_t>(len)] + rel];
                if (sym == 256) return false;  // EOS in a string is an error (RFC 7541 5.2)
                if (out.size() >= max_out) return false;
                out += static_cast<char>(sym);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the most significant bits of EOS).
    return len < 8 && code == (1u << len) - 1;
}

void HpackDecoder::evict(std::size_t max) {
    while (size_ > max && !entries_.empty()) {
        size_ -= entries_.back().first.size() + entries_.back().second.size() + 32;
        entries_.pop_back();
    }
}

void HpackDecoder::insert(std::string_view name, std::string_view value) {
    const std::size_t n = name.size() + value.size() + 32;
    if (n > max_size_) {  // larger than the table: it empties it (RFC 7541 4.4)
        entries_.clear();
        size_ = 0;
        return;
    }
    evict(max_size_ - n);
    entries_.emplace_front(std::string(name), std::string(value));
    size_ += n;
}

bool HpackDecoder::lookup(std::uint64_t index, std::string_view& name, std::string_view& value, bool& unknown) const {
    unknown = false;
    if (index == 0) return false;
    if (index <= std::size(kStatic)) {
        name = kStatic[index - 1].first;
        value = kStatic[index - 1].second;
        return true;
    }
    const std::uint64_t d = index - std::size(kStatic) - 1;
    if (stale_) {  // the table is unknown: so is the field
        unknown = true;
        name = value = {};
        return true;
    }
    if (d >= entries_.size()) return false;
    name = entries_[static_cast<std::size_t>(d)].first;
    value = entries_[static_cast<std::size_t>(d)].second;
    return true;
}

bool HpackDecoder::decode(std::string_view in, const FieldFn& on_field) {
    std::size_t p = 0;
    std::string name_buf, value_buf;
    bool sized = true;  // a size update may only start a block
    while (p < in.size()) {
        const auto b = static_cast<unsigned char>(in[p]);
        if (b & 0x80) {  // indexed field
            std::uint64_t index = 0;
            std::string_view n, v;
            bool unknown = false;
            if (!integer(in, p, 7, index) || !lookup(index, n, v, unknown)) return markStale(), false;
            on_field(n, v);
            sized = false;
            continue;
        }
        if ((b & 0xe0) == 0x20) {  // dynamic table size update
            std::uint64_t size = 0;
            if (!sized || !integer(in, p, 5, size) || size > limit_) return markStale(), false;
            max_size_ = static_cast<std::size_t>(size);
            evict(max_size_);
            continue;
        }
        sized = false;
        const bool incremental = (b & 0xc0) == 0x40;
        std::uint64_t index = 0;
        if (!integer(in, p, incremental ? 6 : 4, index)) return markStale(), false;
        std::string_view name;
        bool unknown = false;
        if (index) {
            std::string_view unused;
            if (!lookup(index, name, unused, unknown)) return markStale(), false;
            name_buf.assign(name);
        } else if (!stringLiteral(in, p, name_buf)) {
            return markStale(), false;
        }
        if (!stringLiteral(in, p, value_buf)) return markStale(), false;
        if (incremental && !stale_) insert(name_buf, value_buf);
        on_field(unknown ? std::string_view() : std::string_view(name_buf), value_buf);
    }
    return true;
}

}  // namespace netprobe::l7
