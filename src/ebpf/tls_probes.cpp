// netprobe::ebpf::tlsProbes - the probe points of an OpenSSL library, read with libelf.
#include <netprobe/ebpf/tls_probes.hpp>

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <netprobe/util/fd.hpp>

namespace netprobe::ebpf {
namespace {

struct Symbol {
    std::uint64_t addr = 0;  // virtual address
    std::uint64_t size = 0;
};

struct Segment {
    std::uint64_t vaddr, offset, filesz;
};

struct ElfClose {
    void operator()(Elf* e) const { elf_end(e); }
};

class Image {
public:
    static Result<Image> open(const std::string& path) {
        Image im;
        im.fd_ = util::UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!im.fd_) return std::unexpected(errnoError(errno, "TLS probes: open " + path));
        if (elf_version(EV_CURRENT) == EV_NONE) return std::unexpected(makeError("TLS probes: libelf is unusable"));
        im.elf_.reset(elf_begin(im.fd_.get(), ELF_C_READ, nullptr));
        if (!im.elf_ || elf_kind(im.elf_.get()) != ELF_K_ELF)
            return std::unexpected(makeError("TLS probes: " + path + " is not an ELF file"));
        GElf_Ehdr eh{};
        if (!gelf_getehdr(im.elf_.get(), &eh)) return std::unexpected(makeError("TLS probes: " + path + ": no ELF header"));
        im.machine_ = eh.e_machine;
        std::size_t nph = 0;
        if (elf_getphdrnum(im.elf_.get(), &nph) == 0) {
            for (std::size_t i = 0; i < nph; ++i) {
                GElf_Phdr ph{};
                if (gelf_getphdr(im.elf_.get(), static_cast<int>(i), &ph) && ph.p_type == PT_LOAD)
                    im.segments_.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz});
            }
        }
        std::size_t shstrndx = 0;
        if (elf_getshdrstrndx(im.elf_.get(), &shstrndx) != 0)
            return std::unexpected(makeError("TLS probes: " + path + ": no section names"));
        Elf_Scn* dynsym = nullptr;
        Elf_Scn* symtab = nullptr;
        for (Elf_Scn* scn = elf_nextscn(im.elf_.get(), nullptr); scn; scn = elf_nextscn(im.elf_.get(), scn)) {
            GElf_Shdr sh{};
            if (!gelf_getshdr(scn, &sh)) continue;
            const char* name = elf_strptr(im.elf_.get(), shstrndx, sh.sh_name);
            if (name && std::strcmp(name, ".text") == 0) im.text_ = {sh.sh_addr, sh.sh_addr + sh.sh_size};
            if (sh.sh_type == SHT_DYNSYM) dynsym = scn;
            if (sh.sh_type == SHT_SYMTAB) symtab = scn;
        }
        for (Elf_Scn* scn : {dynsym, symtab}) {
            if (!scn) continue;
            GElf_Shdr sh{};
            if (!gelf_getshdr(scn, &sh) || sh.sh_entsize == 0) continue;
            Elf_Data* data = elf_getdata(scn, nullptr);
            if (!data) continue;
            const std::size_t n = sh.sh_size / sh.sh_entsize;
            for (std::size_t i = 0; i < n; ++i) {
                GElf_Sym sym{};
                if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
                if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
                const char* name = elf_strptr(im.elf_.get(), sh.sh_link, sym.st_name);
                if (!name) continue;
                for (const char* wanted : {"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_write_ex2"})
                    if (std::strcmp(name, wanted) == 0) im.symbols_.try_emplace(wanted, Symbol{sym.st_value, sym.st_size});
            }
        }
        return im;
    }

    [[nodiscard]] std::optional<Symbol> symbol(const std::string& name) const {
        auto it = symbols_.find(name);
        if (it == symbols_.end()) return std::nullopt;
        return it->second;
    }
    [[nodiscard]] bool x86_64() const { return machine_ == EM_X86_64; }

    // File offset of a virtual address inside a loaded segment.
    [[nodiscard]] std::optional<std::uint64_t> fileOffset(std::uint64_t vaddr) const {
        for (const auto& s : segments_)
            if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) return vaddr - s.vaddr + s.offset;
        return std::nullopt;
    }

    // Up to n bytes of code at a virtual address (fewer at a segment's end).
    [[nodiscard]] std::vector<std::uint8_t> code(std::uint64_t vaddr, std::size_t n) const {
        std::vector<std::uint8_t> out;
        for (const auto& s : segments_) {
            if (vaddr < s.vaddr || vaddr >= s.vaddr + s.filesz) continue;
            n = static_cast<std::size_t>(std::min<std::uint64_t>(n, s.vaddr + s.filesz - vaddr));
            out.resize(n);
            const ssize_t got = ::pread(fd_.get(), out.data(), n, static_cast<off_t>(vaddr - s.vaddr + s.offset));
            out.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
            break;
        }
        return out;
    }

    [[nodiscard]] bool inText(std::uint64_t vaddr) const { return vaddr >= text_.first && vaddr < text_.second; }

private:
    util::UniqueFd fd_;
    std::unique_ptr<Elf, ElfClose> elf_;
    unsigned machine_ = 0;
    std::vector<Segment> segments_;
    std::pair<std::uint64_t, std::uint64_t> text_{0, 0};
    std::map<std::string, Symbol, std::less<>> symbols_;
};

constexpr std::size_t kMaxScan = 512;  // bytes of an exported wrapper searched for calls

// Bytes to skip before an instruction the kernel emulates, or nullopt: an endbr64 (f3 0f
// 1e fa) is skipped; what follows must be a push of a register (50+r, or 41 50+r for
// r8-r15), which leaves the arguments' registers and the return address untouched.
std::optional<std::uint64_t> pushAt(const std::vector<std::uint8_t>& b) {
    std::size_t i = 0;
    if (b.size() >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa) i = 4;
    if (i < b.size() && b[i] >= 0x50 && b[i] <= 0x57) return i;
    if (i + 1 < b.size() && b[i] == 0x41 && b[i + 1] >= 0x50 && b[i + 1] <= 0x57) return i;
    return std::nullopt;
}

// Targets of the byte patterns e8 rel32 in a function that land in .text (a scan, not a
// decode: a false match inside another instruction is weeded out by the caller's checks).
std::set<std::uint64_t> callTargets(const Image& im, const Symbol& fn) {
    std::set<std::uint64_t> out;
    const auto b = im.code(fn.addr, static_cast<std::size_t>(std::min<std::uint64_t>(fn.size ? fn.size : 64, kMaxScan)));
    for (std::size_t i = 0; i + 5 <= b.size(); ++i) {
        if (b[i] != 0xe8) continue;
        std::int32_t rel = 0;
        std::memcpy(&rel, &b[i + 1], 4);  // little-endian, as x86-64
        const std::uint64_t target = fn.addr + i + 5 + static_cast<std::int64_t>(rel);
        if (im.inText(target) && (target < fn.addr || target >= fn.addr + fn.size)) out.insert(target);
    }
    return out;
}

// The one function both wrappers call whose entry is a push; nullopt when there is not
// exactly one.
std::optional<std::uint64_t> commonCallee(const Image& im, const Symbol& a, const Symbol& b) {
    const auto ta = callTargets(im, a), tb = callTargets(im, b);
    std::optional<std::uint64_t> found;
    for (std::uint64_t t : ta) {
        if (!tb.contains(t)) continue;
        auto skip = pushAt(im.code(t, 8));
        if (!skip) continue;
        if (found) return std::nullopt;  // ambiguous
        found = t + *skip;
    }
    return found;
}

}  // namespace

Result<std::vector<TlsProbe>> tlsProbes(const std::string& path, TlsProbeMode mode) {
    auto im = Image::open(path);
    if (!im) return std::unexpected(im.error());
    std::vector<TlsProbe> out;
    auto add = [&](std::string function, TlsCall call, std::uint64_t vaddr, bool internal) {
        if (auto off = im->fileOffset(vaddr)) out.push_back({std::move(function), call, vaddr, *off, internal});
    };
    auto exported = [&](const char* name, TlsCall call) {
        auto s = im->symbol(name);
        if (!s) return;
        std::uint64_t at = s->addr;
        if (im->x86_64())
            if (auto skip = pushAt(im->code(s->addr, 8))) at += *skip;
        add(name, call, at, false);
    };
    const auto read = im->symbol("SSL_read"), read_ex = im->symbol("SSL_read_ex");
    const auto write = im->symbol("SSL_write"), write_ex = im->symbol("SSL_write_ex");
    std::optional<std::uint64_t> read_in, write_in;
    if (mode == TlsProbeMode::Auto && im->x86_64()) {
        if (read && read_ex) read_in = commonCallee(*im, *read, *read_ex);
        // From OpenSSL 3.3 (SSL_write_ex2) the internal write takes a flags argument before
        // the count's pointer: a layout not tested here, so the exported entries are kept.
        if (write && write_ex && !im->symbol("SSL_write_ex2")) write_in = commonCallee(*im, *write, *write_ex);
    }
    if (read_in) {
        add("SSL_read/SSL_read_ex callee", TlsCall::ReadEx, *read_in, true);
    } else {
        exported("SSL_read", TlsCall::Read);
        exported("SSL_read_ex", TlsCall::ReadEx);
    }
    if (write_in) {
        add("SSL_write/SSL_write_ex callee", TlsCall::WriteEx, *write_in, true);
    } else {
        exported("SSL_write", TlsCall::Write);
        exported("SSL_write_ex", TlsCall::WriteEx);
    }
    if (out.empty()) return std::unexpected(makeError("TLS probes: " + path + " has no SSL_read/SSL_write symbols"));
    return out;
}

}  // namespace netprobe::ebpf
