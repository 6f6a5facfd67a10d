#include "netprobe/l7/tls.hpp"

#include <cstdint>

namespace netprobe::l7 {

namespace {

// A cursor over the bytes: every read checks the bounds; running past the end sets
// `short_` (the capture ended), a length beyond its enclosing block is malformed.
struct Reader {
    std::string_view b;
    std::size_t pos = 0;
    bool short_ = false;

    bool need(std::size_t n) {
        if (b.size() - pos >= n) return true;
        short_ = true;
        return false;
    }
    std::optional<std::uint32_t> u(std::size_t n) {
        if (!need(n)) return std::nullopt;
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v = v << 8 | static_cast<std::uint8_t>(b[pos + i]);
        pos += n;
        return v;
    }
    bool skip(std::size_t n) {
        if (!need(n)) return false;
        pos += n;
        return true;
    }
};

bool hostName(std::string_view s, std::string* out) {
    if (s.empty() || s.size() > 253) return false;
    std::string n;
    n.reserve(s.size());
    std::size_t label = 0;
    for (char c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) return false;
        if (c == '.') {
            if (label == 0) return false;  // empty label
            label = 0;
        } else if (++label > 63) {
            return false;
        }
        n.push_back(c);
    }
    if (n.back() == '.') n.pop_back();
    if (n.empty()) return false;
    *out = std::move(n);
    return true;
}

}  // namespace

SniResult parseClientHelloSni(std::string_view bytes, std::string* name) {
    Reader r{bytes};
    // record: type 22 (handshake), version 3.x, length
    auto type = r.u(1), major = r.u(1), minor = r.u(1), rec_len = r.u(2);
    if (!rec_len) return SniResult::Truncated;
    if (*type != 22 || *major != 3 || *minor > 4 || *rec_len < 4) return SniResult::NotHello;
    const std::size_t rec_end = r.pos + *rec_len;
    auto hs_type = r.u(1), hs_len = r.u(3);
    if (!hs_len) return SniResult::Truncated;
    if (*hs_type != 1) return SniResult::NotHello;
    // The handshake message may continue in a next record: its end bounds the fields,
    // the record's end only what this record holds.
    const std::size_t hs_end = r.pos + *hs_len;
    if (*hs_len < 38) return SniResult::Malformed;
    auto within = [&](std::size_t end) { return r.pos <= end; };
    if (!r.skip(2 + 32)) return SniResult::Truncated;  // legacy_version, random
    auto sid = r.u(1);
    if (!sid) return SniResult::Truncated;
    if (*sid > 32) return SniResult::Malformed;
    if (!r.skip(*sid)) return SniResult::Truncated;
    auto suites = r.u(2);
    if (!suites) return SniResult::Truncated;
    if (*suites < 2 || *suites % 2) return SniResult::Malformed;
    if (!r.skip(*suites)) return SniResult::Truncated;
    auto comp = r.u(1);
    if (!comp) return SniResult::Truncated;
    if (*comp < 1) return SniResult::Malformed;
    if (!r.skip(*comp)) return SniResult::Truncated;
    if (!within(hs_end)) return SniResult::Malformed;
    if (r.pos == hs_end) return SniResult::NoSni;  // no extensions at all
    auto ext_len = r.u(2);
    if (!ext_len) return SniResult::Truncated;
    const std::size_t ext_end = r.pos + *ext_len;
    if (ext_end > hs_end) return SniResult::Malformed;
    (void)rec_end;
    while (r.pos < ext_end) {
        auto et = r.u(2), el = r.u(2);
        if (!el) return SniResult::Truncated;
        const std::size_t end = r.pos + *el;
        if (end > ext_end) return SniResult::Malformed;
        if (*et != 0) {
            if (!r.skip(*el)) return SniResult::Truncated;
            continue;
        }
        // server_name: ServerNameList <1..2^16-1>, entries name_type + HostName <1..2^16-1>
        auto list = r.u(2);
        if (!list) return SniResult::Truncated;
        if (r.pos + *list != end || *list < 3) return SniResult::Malformed;
        while (r.pos < end) {
            auto nt = r.u(1), nl = r.u(2);
            if (!nl) return SniResult::Truncated;
            if (r.pos + *nl > end) return SniResult::Malformed;
            if (!r.need(*nl)) return SniResult::Truncated;
            const std::string_view host = bytes.substr(r.pos, *nl);
            r.pos += *nl;
            if (*nt == 0) return hostName(host, name) ? SniResult::Name : SniResult::Malformed;
        }
        return SniResult::NoSni;  // only other name types
    }
    return SniResult::NoSni;
}

}  // namespace netprobe::l7
