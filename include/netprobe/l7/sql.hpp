// netprobe::l7 - SQL text as the L7 parsers report it: never a literal.
//
// normalizeSql replaces every literal of a statement (quoted strings, dollar-quoted
// strings, numbers, hex/bit strings) with "?", drops comments and collapses white space,
// so statements that differ only in their values group together and no value a client
// sent leaves the agent. A statement cut short by the capture is normalized as far as it
// goes and ends in "..." (an unterminated literal is still replaced, never shown).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace netprobe::l7 {

enum class SqlDialect { Postgres, MySql };

// max: bytes of the result (a longer one is cut at a token boundary and ends in "...").
[[nodiscard]] std::string normalizeSql(std::string_view sql, SqlDialect dialect, bool truncated = false,
                                       std::size_t max = 256);

// The statement's type: its first keyword in upper case when it is one of SQL's
// statement keywords (SELECT, INSERT, UPDATE, DELETE, BEGIN, COMMIT, CREATE, WITH, ...),
// else "OTHER" (a bounded label).
[[nodiscard]] std::string sqlStatementType(std::string_view sql);

}  // namespace netprobe::l7
