// SQL normalization (l7::normalizeSql) and statement types (l7::sqlStatementType): the
// statement text PostgreSQL and MySQL exchanges report must group statements that differ
// only in their values and must never carry a value the client sent - not even when the
// capture cut the statement inside a literal.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include <netprobe/l7/sql.hpp>

namespace {

using namespace netprobe::l7;

constexpr auto PG = SqlDialect::Postgres;
constexpr auto MY = SqlDialect::MySql;

struct Case {
    const char* name;
    SqlDialect dialect;
    std::string_view sql;
    std::string_view want;
};

// Well-formed UTF-8 (no sequence cut short, no stray continuation byte).
bool validUtf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        const std::size_t n = b < 0x80 ? 1
                              : (b & 0xe0) == 0xc0 ? 2
                              : (b & 0xf0) == 0xe0 ? 3
                              : (b & 0xf8) == 0xf0 ? 4
                                                   : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
        i += n;
    }
    return true;
}

void expectCases(const std::vector<Case>& cases) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(normalizeSql(c.sql, c.dialect), c.want) << c.sql;
    }
}

TEST(Sql, StringLiterals) {
    expectCases({
        {"doubled quote", PG, "SELECT * FROM t WHERE name = 'O''Brien'", "SELECT * FROM t WHERE name = ?"},
        {"doubled quote mysql", MY, "SELECT * FROM t WHERE name = 'O''Brien'", "SELECT * FROM t WHERE name = ?"},
        {"empty strings", PG, "VALUES ('', '''')", "VALUES (?, ?)"},
        // A standard PostgreSQL string ends at the first lone quote: the backslash is a character.
        {"pg standard backslash", PG, "SELECT 'C:\\' AS p, 'x' AS q", "SELECT ? AS p, ? AS q"},
        {"pg E string", PG, "SELECT E'it\\'s' AS a, e'\\\\' AS b, 'c' AS c", "SELECT ? AS a, ? AS b, ? AS c"},
        {"pg E string after operator", PG, "WHERE x=E'\\''", "WHERE x=?"},
        // "type" ends in an e but is an identifier, not the E prefix of the string after it.
        {"identifier ending in e", PG, "WHERE type='a\\' OR 1=1", "WHERE type=? OR ?=?"},
        // An identifier e, then a separate string: a standard string, backslash included.
        {"e then space then string", PG, "SELECT e 'a\\', 'hunter2'", "SELECT e ?, ?"},
        {"mysql backslash", MY, "SELECT 'it\\'s', 'a\\\\', 'b' FROM t", "SELECT ?, ?, ? FROM t"},
        {"pg double quotes identifier", PG, "SELECT \"User Name\", \"a\"\"b\" FROM \"T\"",
         "SELECT \"User Name\", \"a\"\"b\" FROM \"T\""},
        {"mysql double quotes string", MY, "SELECT \"hunter2\", \"it\\\"s\" FROM t WHERE a = \"x\"",
         "SELECT ?, ? FROM t WHERE a = ?"},
        {"backticks kept", MY, "SELECT `order`, `my col` FROM `t` WHERE `k` = 'v'",
         "SELECT `order`, `my col` FROM `t` WHERE `k` = ?"},
        {"pg bit and hex strings", PG, "SELECT B'1010', X'1F', b'1' FROM t", "SELECT ?, ?, ? FROM t"},
        {"mysql hex and national strings", MY, "SELECT X'1F', x'ab', N'abc', n'd'", "SELECT ?, ?, ?, ?"},
    });
}

TEST(Sql, DollarQuotingAndParameters) {
    expectCases({
        {"dollar quoted", PG, "SELECT $$it's a 'value'$$ AS v", "SELECT ? AS v"},
        {"tagged dollar quoted", PG, "DO $body$ BEGIN RAISE NOTICE $$x$$; END $body$", "DO ?"},
        {"tag with underscore", PG, "SELECT $a_1$ 42 $a_1$, 1", "SELECT ?, ?"},
        {"parameters kept", PG, "SELECT * FROM t WHERE id = $1 AND n IN ($2, $10)",
         "SELECT * FROM t WHERE id = $1 AND n IN ($2, $10)"},
        {"dollar in identifier", PG, "SELECT a$b FROM t$1", "SELECT a$b FROM t$1"},
        {"mysql placeholders", MY, "SELECT * FROM t WHERE id = ? AND n IN (?, ?)",
         "SELECT * FROM t WHERE id = ? AND n IN (?, ?)"},
    });
}

TEST(Sql, Numbers) {
    expectCases({
        {"ints and decimals", PG, "SELECT 1, 23, 4.5, .5, 6. FROM t", "SELECT ?, ?, ?, ?, ? FROM t"},
        {"exponents", PG, "SELECT 1e10, 2.5E-3, 7e+2, 1.e3", "SELECT ?, ?, ?, ?"},
        {"hex", MY, "SELECT 0x1F, 0XAB, 0xdeadBEEF", "SELECT ?, ?, ?"},
        {"binary", MY, "SELECT 0b101", "SELECT ?"},
        {"digits inside identifiers", PG, "SELECT t1.c2, x3y FROM s4.t1", "SELECT t1.c2, x3y FROM s4.t1"},
        {"limit offset", MY, "SELECT a FROM t LIMIT 10 OFFSET 20", "SELECT a FROM t LIMIT ? OFFSET ?"},
        // A sign after an operator, "(" or "," is the number's; after an operand it is a minus.
        {"negative numbers", PG, "SELECT 0, -1, (-4), a = -5.5, b*-6, c+-7e2 FROM t",
         "SELECT ?, ?, (?), a = ?, b*?, c+? FROM t"},
        {"binary minus", PG, "SELECT x - 2, x-3, 4-5 FROM t", "SELECT x - ?, x-?, ?-? FROM t"},
        {"positive sign", MY, "SELECT * FROM t WHERE a > +3", "SELECT * FROM t WHERE a > ?"},
        {"signed list", MY, "INSERT INTO t VALUES (-1,+2,-3.5)", "INSERT INTO t VALUES (?,?,?)"},
    });
    // Statements differing only in a value's sign or size group together.
    EXPECT_EQ(normalizeSql("UPDATE t SET a = -1 WHERE id = 9", PG),
              normalizeSql("UPDATE t SET a = 250 WHERE id = 1", PG));
}

TEST(Sql, CommentsAndWhiteSpace) {
    expectCases({
        {"line comment", PG, "SELECT a -- it's 'hunter2'\nFROM t", "SELECT a FROM t"},
        {"line comment at end", MY, "SELECT 1 -- hunter2", "SELECT ?"},
        {"block comment", PG, "SELECT /* 'hunter2' */ a FROM t", "SELECT a FROM t"},
        {"mysql hash comment", MY, "SELECT a # it's 'hunter2'\nFROM t", "SELECT a FROM t"},
        // In PostgreSQL # is an operator (bitwise XOR), not a comment.
        {"pg hash operator", PG, "SELECT a # b FROM t", "SELECT a # b FROM t"},
        // PostgreSQL nests block comments: the apostrophe is inside the outer one.
        {"pg nested block comment", PG, "/* a /* b */ don't */ SELECT 'hunter2'", "SELECT ?"},
        // MySQL does not: the comment ends at the first */.
        {"mysql block comment not nested", MY, "/* a /* b */ SELECT 'hunter2'", "SELECT ?"},
        {"unterminated block comment", PG, "SELECT a /* 'hunter2", "SELECT a"},
        {"white space collapses", PG, "  SELECT\n\ta ,\r\n  b   FROM\f t  ", "SELECT a , b FROM t"},
        {"no space added", PG, "SELECT a,b FROM t WHERE a=1", "SELECT a,b FROM t WHERE a=?"},
        {"stops at NUL", PG, std::string_view("SELECT 1\0garbage 'x'", 20), "SELECT ?"},
    });
}

// A statement the capture cut short (truncated) is normalized as far as it goes and ends
// in "...": an unterminated literal is replaced all the same, none of its text shown.
TEST(Sql, UnterminatedLiteralAtTruncationNeverLeaks) {
    const std::vector<Case> cases = {
        {"quoted", PG, "SELECT * FROM t WHERE a = 'hunter2 and more", "SELECT * FROM t WHERE a = ?..."},
        {"doubled quote at the cut", PG, "SELECT 'hunter2''", "SELECT ?..."},
        {"E string escaped quote", PG, "INSERT INTO t VALUES (E'hun\\'ter2", "INSERT INTO t VALUES (?..."},
        {"E string backslash at the cut", PG, "INSERT INTO t VALUES (E'hunter2\\", "INSERT INTO t VALUES (?..."},
        {"dollar", PG, "SELECT $$hunter2", "SELECT ?..."},
        {"tagged dollar", PG, "SELECT $q$hunter2 $q", "SELECT ?..."},
        {"mysql backslash quote", MY, "SELECT 'hun\\'ter2", "SELECT ?..."},
        {"mysql double quoted", MY, "SELECT \"hunter2", "SELECT ?..."},
        {"pg unterminated identifier", PG, "SELECT \"hunter2", "SELECT \"...\"..."},
        {"hex string", MY, "SELECT X'4875", "SELECT ?..."},
        {"number", PG, "SELECT 48756", "SELECT ?..."},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const std::string got = normalizeSql(c.sql, c.dialect, true);
        EXPECT_EQ(got, c.want);
        EXPECT_EQ(got.find("hun"), std::string::npos) << got;
        EXPECT_EQ(got.find("ter2"), std::string::npos) << got;
        EXPECT_EQ(got.find("4875"), std::string::npos) << got;
    }
    // Every cut of statements with every kind of literal: none of a literal's text shows.
    const std::vector<std::pair<SqlDialect, std::string_view>> statements = {
        {PG, "UPDATE users SET pw = 'hunter2', note = E'x\\'hunter2', n = 31337, d = $$hunter2$$, "
             "t = $t$hunter2$t$, b = B'1011' WHERE id = 12345"},
        {MY, "UPDATE users SET pw = 'hunter2', note = 'x\\'hunter2', n = 31337, s = \"hunter2\", "
             "h = X'4875', k = 0x4875 WHERE id = 12345"},
    };
    for (const auto& [d, sql] : statements) {
        for (std::size_t cut = 0; cut <= sql.size(); ++cut) {
            const std::string got = normalizeSql(sql.substr(0, cut), d, cut < sql.size());
            SCOPED_TRACE(got);
            for (std::string_view secret : {"hun", "313", "123", "4875", "1011"})
                EXPECT_EQ(got.find(secret), std::string::npos) << secret;
            EXPECT_TRUE(cut == sql.size() || got.ends_with("..."));
        }
    }
}

TEST(Sql, MaxLengthCutsAtATokenAndNeverSplitsUtf8) {
    // max bounds the whole result, "..." included; the cut falls between tokens.
    EXPECT_EQ(normalizeSql("SELECT aaaa, bbbb, cccc FROM t", PG, false, 16), "SELECT aaaa,...");
    EXPECT_EQ(normalizeSql("SELECT aaaa, bbbb FROM t", PG, false, 24), "SELECT aaaa, bbbb FROM t");  // fits
    EXPECT_EQ(normalizeSql("SELECT 'hunter2hunter2hunter2' FROM t", PG, false, 12), "SELECT ?...");
    // A token longer than max is cut inside itself rather than dropping everything.
    EXPECT_EQ(normalizeSql("SELECT", PG, false, 5), "SE...");

    const std::string_view sql = "SELECT café, naïve, 日本語, \"ünï\", 'hunter2' FROM tàblé WHERE x = 1";
    for (auto d : {PG, MY}) {
        const std::string full = normalizeSql(sql, d, false, 1000);
        for (std::size_t max = 3; max < full.size(); ++max) {
            const std::string got = normalizeSql(sql, d, false, max);
            SCOPED_TRACE(got);
            EXPECT_LE(got.size(), max);
            ASSERT_TRUE(got.ends_with("..."));
            EXPECT_TRUE(validUtf8(got));
            EXPECT_TRUE(full.starts_with(got.substr(0, got.size() - 3)));
            EXPECT_EQ(got.find("hun"), std::string::npos);
        }
        EXPECT_EQ(normalizeSql(sql, d, false, full.size()), full);
    }
    // A statement cut by the capture inside a multi-byte character.
    const std::string_view cut_utf8 = "SELECT caf\xc3";
    const std::string got = normalizeSql(cut_utf8, PG, true);
    EXPECT_TRUE(validUtf8(got)) << got;
    EXPECT_TRUE(got.starts_with("SELECT caf") && got.ends_with("...")) << got;
    // The default bound: the tracker reports at most 256 bytes of a statement.
    std::string longsql = "SELECT ";
    for (int k = 0; k < 100; ++k) longsql += "column_" + std::to_string(k) + ", ";
    const std::string bounded = normalizeSql(longsql, PG);
    EXPECT_LE(bounded.size(), 256u);
    EXPECT_GT(bounded.size(), 240u);
    EXPECT_TRUE(bounded.ends_with("..."));
}

TEST(Sql, StatementTypes) {
    const std::vector<std::pair<std::string_view, std::string_view>> cases = {
        {"SELECT 1", "SELECT"},
        {"select * from t", "SELECT"},
        {"  \n\tInSeRt INTO t VALUES (1)", "INSERT"},
        {"update t set a = 1", "UPDATE"},
        {"DELETE FROM t", "DELETE"},
        {"WITH x AS (SELECT 1) SELECT * FROM x", "WITH"},
        {"(SELECT 1) UNION (SELECT 2)", "SELECT"},
        {"((select 1))", "SELECT"},
        {"-- a comment\nSELECT 1", "SELECT"},
        {"/* a comment */ INSERT INTO t VALUES (1)", "INSERT"},
        {"/* a */ -- b\n ( update t SET a = 1)", "UPDATE"},
        {"# a MySQL comment\nSELECT 1", "SELECT"},
        {"begin", "BEGIN"},
        {"START TRANSACTION", "START"},
        {"COMMIT", "COMMIT"},
        {"rollback", "ROLLBACK"},
        {"SET NAMES utf8mb4", "SET"},
        {"SHOW TABLES", "SHOW"},
        {"CREATE TABLE t (a int)", "CREATE"},
        {"EXPLAIN SELECT 1", "EXPLAIN"},
        {"select*from t", "SELECT"},
        {"FOOBAR 1", "OTHER"},
        {"SELECTED 1", "OTHER"},
        {"", "OTHER"},
        {"   ", "OTHER"},
        {"/* unterminated SELECT", "OTHER"},
        {"123", "OTHER"},
        {"'SELECT'", "OTHER"},
        {"çSELECT", "OTHER"},
        {"SELECTSELECTSELECT", "OTHER"},
    };
    for (const auto& [sql, want] : cases) EXPECT_EQ(sqlStatementType(sql), want) << sql;
}

}  // namespace
