// netprobe::ebpf::tlsProbes - where in an OpenSSL library (libssl.so*) the TLS plaintext
// uprobes go.
//
// A uprobe replaces an instruction with a breakpoint. After the trap the kernel either
// emulates the instruction (on x86-64: push of a register, call/jmp/jcc, nop) or copies it
// to a page of its own and single-steps it there: a second trap, a debug exception that
// costs several microseconds in a virtual machine. OpenSSL 3's SSL_read and SSL_write
// begin with "sub $N,%rsp" (single-stepped), but each is a thin wrapper: SSL_read and
// SSL_read_ex both call one internal function (ssl_read_internal(s, buf, num,
// &readbytes)), SSL_write and SSL_write_ex another, and those begin with pushes. So on
// x86-64 the probes go on the common callee when one is found and checked:
//   - it is the target of a direct call (e8 rel32) in both exported functions, the only
//     such common target inside the library's .text;
//   - its first instruction (after an endbr64, which the probe then skips) is a push.
// Anything else (another architecture, another build, an inlined callee): the exported
// functions' entries, as before. The probed functions are per library file.
//
//   auto probes = tlsProbes("/usr/lib/x86_64-linux-gnu/libssl.so.3", TlsProbeMode::Auto);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::ebpf {

// The argument layout of a probed function: which program reads it.
enum class TlsCall : std::uint8_t {
    Read,      // SSL_read(ssl, buf, int num) -> bytes or <= 0
    ReadEx,    // SSL_read_ex / ssl_read_internal(ssl, buf, num, size_t *readbytes) -> > 0 on success
    Write,     // SSL_write(ssl, buf, int num) -> bytes or <= 0
    WriteEx,   // SSL_write_ex / ssl_write_internal(ssl, buf, num, size_t *written) (OpenSSL 1.1.1-3.2;
               // from 3.3 a flags argument comes before the pointer: that write is probed at the
               // exported entries)
};

struct TlsProbe {
    std::string function;   // "SSL_read", or "SSL_read/SSL_read_ex callee" for the internal one
    TlsCall call = TlsCall::Read;
    std::uint64_t address = 0; // virtual address of the probed instruction (as objdump shows it)
    std::uint64_t offset = 0;  // its file offset (a uprobe's offset)
    bool internal = false;     // the exported functions' common callee
};

enum class TlsProbeMode : std::uint8_t {
    Auto,      // the internal callees where found and checked, else the exported entries
    Exported,  // the exported functions' entries only
};

// The probe points of one library file. An error for a file that cannot be read as ELF
// or has none of SSL_read, SSL_read_ex, SSL_write, SSL_write_ex.
[[nodiscard]] Result<std::vector<TlsProbe>> tlsProbes(const std::string& path, TlsProbeMode mode);

}  // namespace netprobe::ebpf
