// netprobe::l7 - HPACK (RFC 7541) header block decoding for the HTTP/2 parser: the
// static table, the per-connection dynamic table (one per direction), integers, string
// literals and the Huffman code. Bounded: the dynamic table holds at most its size
// limit of bytes (name + value + 32 per entry), decoded strings at most 16 KiB.
//
// A decoder whose stream lost a header block (bytes not captured) no longer knows its
// dynamic table: it is marked stale and still decodes what does not depend on it
// (static-table references and literals); a reference into the dynamic table then
// yields an unknown field (empty name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

namespace netprobe::l7 {

// Decodes a Huffman-coded string (RFC 7541 5.2 and Appendix B); false when the input is
// not a valid code (EOS inside, padding longer than 7 bits or not all ones) or the
// output would exceed max_out.
[[nodiscard]] bool hpackHuffmanDecode(std::string_view in, std::string& out, std::size_t max_out = 16384);

class HpackDecoder {
public:
    using FieldFn = std::function<void(std::string_view name, std::string_view value)>;
    // limit: the largest dynamic table size an encoder may switch to (the decoder's
    // SETTINGS_HEADER_TABLE_SIZE; larger updates are errors). The table starts at
    // HTTP/2's initial 4096 bytes, or at the limit when that is lower.
    explicit HpackDecoder(std::size_t limit = 65536) : limit_(limit), max_size_(limit < 4096 ? limit : 4096) {}

    // One complete header block. false: malformed (the decoder is stale from then on).
    bool decode(std::string_view block, const FieldFn& on_field);
    // A header block was not seen whole: the dynamic table is unknown from now on.
    void markStale() { stale_ = true; entries_.clear(); size_ = 0; }
    [[nodiscard]] bool stale() const { return stale_; }

private:
    void insert(std::string_view name, std::string_view value);
    void evict(std::size_t max);
    // Index 1..61: static; 62..: dynamic (newest first). false: out of range.
    bool lookup(std::uint64_t index, std::string_view& name, std::string_view& value, bool& unknown) const;

    std::size_t limit_;
    std::size_t max_size_;  // the current maximum (size updates)
    std::size_t size_ = 0;
    std::deque<std::pair<std::string, std::string>> entries_;  // newest first
    bool stale_ = false;
};

}  // namespace netprobe::l7
