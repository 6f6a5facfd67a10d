// SQL normalization (see sql.hpp).
#include <netprobe/l7/sql.hpp>

#include <algorithm>
#include <array>
#include <cctype>

namespace netprobe::l7 {
namespace {

bool identStart(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c >= 0x80; }
bool identChar(unsigned char c) { return identStart(c) || (c >= '0' && c <= '9') || c == '$'; }
bool digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// The end of a quoted run that starts at i (sql[i] is the quote); backslash escapes
// when `backslash`. Returns sql.size() when unterminated.
std::size_t quotedEnd(std::string_view sql, std::size_t i, char quote, bool backslash) {
    for (std::size_t j = i + 1; j < sql.size(); ++j) {
        if (backslash && sql[j] == '\\') {
            ++j;
            continue;
        }
        if (sql[j] == quote) {
            if (j + 1 < sql.size() && sql[j + 1] == quote) {  // doubled quote: part of the literal
                ++j;
                continue;
            }
            return j + 1;
        }
    }
    return sql.size();
}

}  // namespace

std::string normalizeSql(std::string_view sql, SqlDialect dialect, bool truncated, std::size_t max) {
    std::string out;
    out.reserve(std::min(sql.size(), max) + 4);
    const bool mysql = dialect == SqlDialect::MySql;
    bool pending_space = false;
    // A cut result ends in "...", within max: it keeps the tokens that end by `keep`.
    const std::size_t keep = max > 3 ? max - 3 : 0;
    std::size_t fits = 0;  // the end of the last token within keep
    auto emit = [&](std::string_view tok) {
        if (pending_space && !out.empty()) out += ' ';
        pending_space = false;
        out += tok;
        if (out.size() <= keep) fits = out.size();
    };
    std::size_t i = 0;
    bool cut = false;
    while (i < sql.size()) {
        if (out.size() > max) {
            cut = true;
            break;
        }
        const auto c = static_cast<unsigned char>(sql[i]);
        if (c == 0) break;  // the end of a C string in a protocol message
        if (space(c)) {
            pending_space = true;
            ++i;
            continue;
        }
        if ((c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') || (mysql && c == '#')) {
            while (i < sql.size() && sql[i] != '\n') ++i;
            pending_space = true;
            continue;
        }
        if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
            // PostgreSQL nests block comments (MySQL does not): ending at the first "*/"
            // would read the rest of the outer comment as SQL, where an apostrophe flips
            // which text is a literal.
            std::size_t depth = 1;
            i += 2;
            while (i < sql.size() && depth > 0) {
                if (sql.substr(i, 2) == "*/") {
                    --depth;
                    i += 2;
                } else if (!mysql && sql.substr(i, 2) == "/*") {
                    ++depth;
                    i += 2;
                } else {
                    ++i;
                }
            }
            pending_space = true;
            continue;
        }
        if (c == '\'') {
            // PostgreSQL: standard strings ('' only; E'' strings also take backslashes).
            // A one-letter prefix (E'', B'', X'', N'', _charset is left) belongs to the literal;
            // only one that touches the quote ("e 'x'" is an identifier e, then a string).
            const bool prefixed = !out.empty() && !pending_space &&
                                  std::string_view("EeBbXxNn").find(out.back()) != std::string_view::npos &&
                                  (out.size() == 1 || !identChar(static_cast<unsigned char>(out[out.size() - 2])));
            const bool backslash = mysql || (prefixed && (out.back() == 'E' || out.back() == 'e'));
            if (prefixed) out.pop_back();
            i = quotedEnd(sql, i, '\'', backslash);
            emit("?");
            continue;
        }
        if (c == '"') {
            const std::size_t e = quotedEnd(sql, i, '"', mysql);
            if (mysql) {
                emit("?");  // a string (without ANSI_QUOTES)
            } else {
                emit(e == sql.size() && (e - i < 2 || sql.back() != '"') ? std::string_view("\"...\"")
                                                                          : sql.substr(i, e - i));
            }
            i = e;
            continue;
        }
        if (c == '`') {
            const std::size_t e = quotedEnd(sql, i, '`', false);
            emit(sql.substr(i, e - i));
            i = e;
            continue;
        }
        if (c == '$' && !mysql) {
            std::size_t j = i + 1;
            if (j < sql.size() && digit(static_cast<unsigned char>(sql[j]))) {  // $1: a parameter
                while (j < sql.size() && digit(static_cast<unsigned char>(sql[j]))) ++j;
                emit(sql.substr(i, j - i));
                i = j;
                continue;
            }
            while (j < sql.size() && identChar(static_cast<unsigned char>(sql[j])) && sql[j] != '$') ++j;
            if (j < sql.size() && sql[j] == '$') {  // $tag$ ... $tag$
                const std::string_view tag = sql.substr(i, j - i + 1);
                auto e = sql.find(tag, j + 1);
                i = e == std::string_view::npos ? sql.size() : e + tag.size();
                emit("?");
                continue;
            }
            emit("$");
            ++i;
            continue;
        }
        // A sign after an operator, "(" or "," belongs to the number ("x + -3", "(1, -2)"):
        // statements that differ only in a value's sign group together.
        const bool signed_number = (c == '-' || c == '+') && i + 1 < sql.size() &&
                                   digit(static_cast<unsigned char>(sql[i + 1])) &&
                                   (out.empty() || std::string_view("=<>+-*/(,%|&^~!").find(out.back()) !=
                                                       std::string_view::npos);
        if (signed_number) ++i;
        if (digit(static_cast<unsigned char>(sql[i])) ||
            (sql[i] == '.' && i + 1 < sql.size() && digit(static_cast<unsigned char>(sql[i + 1])))) {
            const auto c0 = static_cast<unsigned char>(sql[i]);
            std::size_t j = i;
            if (c0 == '0' && j + 1 < sql.size() && (sql[j + 1] == 'x' || sql[j + 1] == 'X' || sql[j + 1] == 'b')) {
                j += 2;
                while (j < sql.size() && std::isxdigit(static_cast<unsigned char>(sql[j]))) ++j;
            } else {
                while (j < sql.size() && (digit(static_cast<unsigned char>(sql[j])) || sql[j] == '.')) ++j;
                if (j < sql.size() && (sql[j] == 'e' || sql[j] == 'E')) {
                    std::size_t k = j + 1;
                    if (k < sql.size() && (sql[k] == '+' || sql[k] == '-')) ++k;
                    if (k < sql.size() && digit(static_cast<unsigned char>(sql[k]))) {
                        j = k;
                        while (j < sql.size() && digit(static_cast<unsigned char>(sql[j]))) ++j;
                    }
                }
            }
            emit("?");
            i = j;
            continue;
        }
        if (identStart(c)) {
            std::size_t j = i;
            while (j < sql.size() && identChar(static_cast<unsigned char>(sql[j]))) ++j;
            emit(sql.substr(i, j - i));
            i = j;
            continue;
        }
        emit(sql.substr(i, 1));
        ++i;
    }
    if (out.size() > max) cut = true;
    if ((cut || truncated) && out.size() > keep) out.resize(fits > 0 ? fits : keep);  // (fits 0: one long token)
    if (cut || truncated) {
        // Never end inside a multi-byte character.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xc0) == 0x80) out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xc0) out.pop_back();
        out += "...";
    }
    return out;
}

std::string sqlStatementType(std::string_view sql) {
    static constexpr std::array<std::string_view, 52> kTypes = {
        "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "WITH", "VALUES", "TABLE",
        "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "ABORT", "CREATE", "DROP",
        "ALTER", "TRUNCATE", "RENAME", "COMMENT", "GRANT", "REVOKE", "SET", "SHOW", "RESET", "USE",
        "EXPLAIN", "ANALYZE", "VACUUM", "REINDEX", "CLUSTER", "REFRESH", "COPY", "LOAD", "LOCK", "UNLOCK",
        "CALL", "DO", "EXECUTE", "PREPARE", "DEALLOCATE", "DECLARE", "FETCH", "CLOSE", "MOVE", "LISTEN",
        "NOTIFY", "DISCARD"};
    std::size_t i = 0;
    for (;;) {
        while (i < sql.size() && (space(static_cast<unsigned char>(sql[i])) || sql[i] == '(')) ++i;
        // (# starts a comment in MySQL; no PostgreSQL statement starts with it.)
        if (sql.substr(i, 2) == "--" || sql.substr(i, 1) == "#") {
            while (i < sql.size() && sql[i] != '\n') ++i;
            continue;
        }
        if (sql.substr(i, 2) == "/*") {
            auto e = sql.find("*/", i + 2);
            if (e == std::string_view::npos) return "OTHER";
            i = e + 2;
            continue;
        }
        break;
    }
    std::string word;
    while (i < sql.size() && word.size() < 12 &&
           ((sql[i] >= 'A' && sql[i] <= 'Z') || (sql[i] >= 'a' && sql[i] <= 'z'))) {
        char ch = sql[i++];
        if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
        word += ch;
    }
    if (std::find(kTypes.begin(), kTypes.end(), word) != kTypes.end()) return word;
    return "OTHER";
}

}  // namespace netprobe::l7
