#include "netprobe/util/error.hpp"

#include <cstring>
#include <cstdlib>

namespace netprobe {

std::string Error::what() const {
    return message;
}

Error errnoError(int err, std::string context) {
    int e = std::abs(err);
    Error out;
    out.code = e;
    out.message = std::move(context);
    out.message += ": ";
    out.message += std::strerror(e);
    return out;
}

Error makeError(std::string message) {
    return Error{0, std::move(message)};
}

}  // namespace netprobe
