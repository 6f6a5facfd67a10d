// ebpf::tlsProbes against this machine's OpenSSL library, checked with binutils' nm and
// objdump (the oracle): where the TLS uprobes go and why no single-step is needed there.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <netprobe/ebpf/tls_probes.hpp>

#include "support/command_output.hpp"

namespace netprobe::ebpf {
namespace {

using netprobe::test::commandOutput;

// Debian's libssl3 of this machine (nginx, curl and openssl of scripts/setup-deps.sh
// depend on it), in its multiarch directory (/usr/lib/x86_64-linux-gnu, ...aarch64...).
std::string libssl() {
    for (const char* dir : {"/usr/lib", "/lib"}) {
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
            if (!e.path().filename().string().ends_with("-linux-gnu")) continue;
            const std::string p = (e.path() / "libssl.so.3").string();
            if (::access(p.c_str(), R_OK) == 0) return p;
        }
    }
    return {};
}

#define NP_REQUIRE_LIBSSL(lib) ASSERT_FALSE((lib).empty()) << "libssl.so.3 missing: run scripts/setup-deps.sh"

struct Fn {
    std::uint64_t addr = 0, size = 0;
};

// nm -D -S: "0000000000035430 0000000000000083 T SSL_read@@OPENSSL_3.0.0"
std::map<std::string, Fn> exported(const std::string& lib) {
    std::map<std::string, Fn> out;
    std::istringstream in(commandOutput("nm -D -S --defined-only " + lib));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string addr, size, type, name;
        if (!(f >> addr >> size >> type >> name)) continue;  // (symbols without a size have 3 fields)
        name = name.substr(0, name.find('@'));
        if (name == "SSL_read" || name == "SSL_read_ex" || name == "SSL_write" || name == "SSL_write_ex")
            out[name] = {std::stoull(addr, nullptr, 16), std::stoull(size, nullptr, 16)};
    }
    return out;
}

std::string disassemble(const std::string& lib, std::uint64_t from, std::uint64_t to) {
    char range[96];
    std::snprintf(range, sizeof range, " --start-address=0x%llx --stop-address=0x%llx ",
                  static_cast<unsigned long long>(from), static_cast<unsigned long long>(to));
    return commandOutput("objdump -d" + std::string(range) + lib);
}

// Targets of the direct calls objdump decodes in a function ("call   35290 <...>").
std::set<std::uint64_t> calls(const std::string& lib, const Fn& f) {
    std::set<std::uint64_t> out;
    const std::string text = disassemble(lib, f.addr, f.addr + f.size);
    static const std::regex call(R"(\scall\s+([0-9a-f]+) <)");
    for (std::sregex_iterator it(text.begin(), text.end(), call), end; it != end; ++it)
        out.insert(std::stoull((*it)[1].str(), nullptr, 16));
    return out;
}

// objdump's first instruction at an address: "41 55   push   %r13" -> {"41 55", "push   %r13"}
std::pair<std::string, std::string> instruction(const std::string& lib, std::uint64_t at) {
    std::istringstream in(disassemble(lib, at, at + 16));
    std::string line;
    char prefix[32];
    std::snprintf(prefix, sizeof prefix, "%llx:", static_cast<unsigned long long>(at));
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string a = line.substr(line.find_first_not_of(' '), colon + 1 - line.find_first_not_of(' '));
        if (a != prefix) continue;
        std::istringstream f(line.substr(colon + 1));
        std::string field, bytes, insn;
        std::getline(f, field, '\t');  // empty (tab after the colon)
        std::getline(f, bytes, '\t');
        std::getline(f, insn);
        while (!bytes.empty() && bytes.back() == ' ') bytes.pop_back();
        while (!bytes.empty() && bytes.front() == ' ') bytes.erase(bytes.begin());
        return {bytes, insn};
    }
    return {};
}

std::string fileBytes(const std::string& path, std::uint64_t offset, std::size_t n) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    std::string raw(n, '\0');
    f.read(raw.data(), static_cast<std::streamsize>(n));
    std::string hex;
    for (unsigned char c : raw) {
        char b[4];
        std::snprintf(b, sizeof b, "%s%02x", hex.empty() ? "" : " ", c);
        hex += b;
    }
    return hex;
}

TEST(TlsProbes, OpenSslCalleesAreTheCommonCallTargetsAndBeginWithAPush) {
    const std::string lib = libssl();
    NP_REQUIRE_LIBSSL(lib);
    auto fns = exported(lib);
    ASSERT_EQ(fns.size(), 4u) << "nm found " << fns.size() << " of the SSL_read/SSL_write symbols";
    auto probes = tlsProbes(lib, TlsProbeMode::Auto);
    ASSERT_TRUE(probes.has_value()) << probes.error().message;
#if !defined(__x86_64__)
    // The callee search decodes x86-64 calls: elsewhere Auto probes the exported entries.
    auto entries = tlsProbes(lib, TlsProbeMode::Exported);
    ASSERT_TRUE(entries.has_value()) << entries.error().message;
    ASSERT_EQ(probes->size(), entries->size());
    for (std::size_t i = 0; i < probes->size(); ++i) {
        EXPECT_FALSE((*probes)[i].internal);
        EXPECT_EQ((*probes)[i].address, (*entries)[i].address) << (*probes)[i].function;
    }
    return;
#endif
    ASSERT_EQ(probes->size(), 2u);
    struct Want {
        const char* a;
        const char* b;
        TlsCall call;
    };
    const Want wants[] = {{"SSL_read", "SSL_read_ex", TlsCall::ReadEx}, {"SSL_write", "SSL_write_ex", TlsCall::WriteEx}};
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& p = (*probes)[i];
        const auto& w = wants[i];
        SCOPED_TRACE(p.function);
        EXPECT_TRUE(p.internal);
        EXPECT_EQ(p.call, w.call);
        EXPECT_EQ(p.function, std::string(w.a) + "/" + w.b + " callee");
        // objdump: both exported functions call it...
        EXPECT_TRUE(calls(lib, fns[w.a]).contains(p.address)) << std::hex << p.address;
        EXPECT_TRUE(calls(lib, fns[w.b]).contains(p.address)) << std::hex << p.address;
        // ...its first instruction is a push (which the kernel emulates)...
        auto [bytes, insn] = instruction(lib, p.address);
        EXPECT_TRUE(insn.starts_with("push")) << insn;
        // ...and the file offset holds those bytes.
        ASSERT_FALSE(bytes.empty());
        EXPECT_EQ(fileBytes(lib, p.offset, (bytes.size() + 1) / 3), bytes);
        // The exported function's own first instruction is not one the kernel emulates.
        EXPECT_FALSE(instruction(lib, fns[w.a].addr).second.starts_with("push"));
    }
}

TEST(TlsProbes, ExportedModeProbesEachExportedEntry) {
    const std::string lib = libssl();
    NP_REQUIRE_LIBSSL(lib);
    auto fns = exported(lib);
    auto probes = tlsProbes(lib, TlsProbeMode::Exported);
    ASSERT_TRUE(probes.has_value()) << probes.error().message;
    std::map<std::string, TlsCall> got;
    for (const auto& p : *probes) {
        EXPECT_FALSE(p.internal);
        ASSERT_TRUE(fns.contains(p.function)) << p.function;
        EXPECT_EQ(p.address, fns[p.function].addr) << p.function;  // no endbr64 in Debian's build
        got[p.function] = p.call;
    }
    EXPECT_EQ(got, (std::map<std::string, TlsCall>{{"SSL_read", TlsCall::Read},
                                                   {"SSL_read_ex", TlsCall::ReadEx},
                                                   {"SSL_write", TlsCall::Write},
                                                   {"SSL_write_ex", TlsCall::WriteEx}}));
}

TEST(TlsProbes, FilesThatAreNoOpenSslLibraryAreErrors) {
    char text[] = "/tmp/netprobe-tls-probes-XXXXXX";
    int fd = mkstemp(text);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "not an ELF file\n", 16), 16);
    ::close(fd);
    auto r = tlsProbes(text, TlsProbeMode::Auto);
    ::unlink(text);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("is not an ELF file"), std::string::npos) << r.error().message;

    auto none = tlsProbes("/bin/true", TlsProbeMode::Auto);  // an ELF file without OpenSSL's symbols
    ASSERT_FALSE(none.has_value());
    EXPECT_NE(none.error().message.find("no SSL_read/SSL_write symbols"), std::string::npos) << none.error().message;

    auto missing = tlsProbes("/nonexistent/libssl.so.3", TlsProbeMode::Auto);
    ASSERT_FALSE(missing.has_value());
    EXPECT_NE(missing.error().message.find("open /nonexistent/libssl.so.3"), std::string::npos) << missing.error().message;
}

}  // namespace
}  // namespace netprobe::ebpf
