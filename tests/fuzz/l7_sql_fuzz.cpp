// SQL normalization (l7::normalizeSql, both dialects, truncated or not, any bound) and
// statement types (l7::sqlStatementType) on arbitrary text. Input: a flags byte, a bound
// byte, the text. Invariants: the result stays within its bound and ends in "..." when
// cut; valid UTF-8 stays valid; statement types are bounded labels; and a literal's text
// never shows - the text is cleaned of quoting and comment characters and a marked
// literal ('...', E'...', $$...$$, $t$...$t$, MySQL "...") is put in its middle, then the
// statement is normalized whole and cut at a point the flags pick.
#include <algorithm>
#include <string>
#include <string_view>

#include <netprobe/l7/sql.hpp>

#include "fuzz_util.hpp"

namespace {

using netprobe::l7::SqlDialect;

bool validUtf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        if (b < 0x80) n = 1;
        else if (b >= 0xc2 && b < 0xe0) n = 2;
        else if (b >= 0xe0 && b < 0xf0) n = 3;
        else if (b >= 0xf0 && b < 0xf5) n = 4;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
        i += n;
    }
    return true;
}

// Text that cannot open or close a literal or a comment, nor contain the marker.
std::string clean(std::string_view s) {
    std::string out;
    for (char ch : s)
        if (std::string_view("'\"`$\\/*-#Z").find(ch) == std::string_view::npos && ch != '\0') out += ch;
    return out;
}

void checkNormalized(const std::string& out, std::string_view in, std::size_t max, bool truncated) {
    NP_FUZZ_CHECK(out.size() <= std::max<std::size_t>(max, 3));
    if (truncated) NP_FUZZ_CHECK(out.ends_with("..."));
    if (validUtf8(in)) NP_FUZZ_CHECK(validUtf8(out));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint8_t flags = data[0];
    const std::size_t max = data[1] == 0 ? 256 : data[1];
    const std::string_view sql = netprobe::fuzz::text(data + 2, size - 2);
    const SqlDialect dialect = (flags & 1) ? SqlDialect::MySql : SqlDialect::Postgres;
    const bool truncated = (flags & 2) != 0;

    checkNormalized(netprobe::l7::normalizeSql(sql, dialect, truncated, max), sql, max, truncated);
    checkNormalized(netprobe::l7::normalizeSql(sql, dialect, truncated), sql, 256, truncated);
    const std::size_t cut = sql.size() * ((flags >> 4) + 1u) / 16;
    checkNormalized(netprobe::l7::normalizeSql(sql.substr(0, cut), dialect, true, max), sql.substr(0, cut), max, true);

    const std::string type = netprobe::l7::sqlStatementType(sql);
    NP_FUZZ_CHECK(!type.empty() && type.size() <= 12);
    for (char ch : type) NP_FUZZ_CHECK(ch >= 'A' && ch <= 'Z');

    // A literal in the middle of clean text.
    const std::string before = clean(sql.substr(0, sql.size() / 2)), after = clean(sql.substr(sql.size() / 2));
    std::string secret = "Zq";
    for (char ch : sql.substr(0, 8))
        if (std::string_view("'\"$\\").find(ch) == std::string_view::npos && ch != '\0') secret += ch;
    std::string literal;
    switch ((flags >> 2) & 3) {
        case 0: literal = "'" + secret + "'"; break;
        case 1: literal = dialect == SqlDialect::MySql ? "'" + secret + "'" : "$$" + secret + "$$"; break;
        case 2: literal = dialect == SqlDialect::MySql ? "'" + secret + "'" : "$t$" + secret + "$t$"; break;
        default: literal = dialect == SqlDialect::MySql ? "\"" + secret + "\"" : "E'" + secret + "'"; break;
    }
    const std::string statement = before + " " + literal + " " + after;
    for (std::size_t end : {statement.size(), before.size() + 2 + (flags >> 4) % (secret.size() + 2),
                            statement.size() * ((flags >> 4) + 1u) / 16}) {
        end = std::min(end, statement.size());
        const bool cut_short = end < statement.size();
        const std::string out = netprobe::l7::normalizeSql(std::string_view(statement).substr(0, end), dialect,
                                                           cut_short, max);
        NP_FUZZ_CHECK(out.find("Zq") == std::string::npos);
    }
    return 0;
}
