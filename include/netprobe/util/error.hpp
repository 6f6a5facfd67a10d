// Errors as values: every function that touches the OS returns Result<T>.
#pragma once

#include <expected>
#include <string>

namespace netprobe {

struct Error {
    int code = 0;          // errno value (positive), 0 when not an OS error
    std::string message;   // what failed, with context ("attach XDP to veth0: ...")

    [[nodiscard]] std::string what() const;
};

template <class T>
using Result = std::expected<T, Error>;

// Build an Error from a positive or negative errno (libbpf returns -errno).
[[nodiscard]] Error errnoError(int err, std::string context);
// Build an Error that is not an OS error.
[[nodiscard]] Error makeError(std::string message);

}  // namespace netprobe
