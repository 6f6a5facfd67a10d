// One GET of a NetProbe agent's API with the command line's connection settings (TLS
// CA, --insecure, basic auth, timeout), as a value: the body of a 200 answer, or an
// error that says what went wrong (unreachable, TLS refused, 401, the agent's error
// message for another status). Each call uses its own client: safe from any thread.
#pragma once

#include <map>
#include <string>

#include <netprobe/util/error.hpp>

#include "cli.hpp"

namespace netprobe::cli {

[[nodiscard]] Result<std::string> agentGet(const Connection& conn, const std::string& path,
                                           const std::map<std::string, std::string>& query);

}  // namespace netprobe::cli
