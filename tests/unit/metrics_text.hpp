// Reads a Prometheus text exposition back for assertions.
#pragma once

#include <map>
#include <sstream>
#include <string>

namespace netprobe::testing {

// name{labels} -> value text, for every sample line.
inline std::map<std::string, std::string> samples(const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto sp = line.rfind(' ');
        out[line.substr(0, sp)] = line.substr(sp + 1);
    }
    return out;
}

}  // namespace netprobe::testing
