// UTF-8 helpers, class lookup and the GPT-2 byte mapping (see unicode.h).
#include "runtime/unicode.h"

#include <algorithm>
#include <array>

namespace spw::rt::unicode {

namespace {

std::array<uint8_t, 128> make_ascii_flags() {
  std::array<uint8_t, 128> t{};
  for (uint32_t c = 0; c < 128; ++c) {
    uint8_t f = 0;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) f = kLetter;
    else if (c >= '0' && c <= '9') f = kNumber;
    else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) f = kWhitespace;
    t[c] = f;
  }
  return t;
}
const std::array<uint8_t, 128> kAscii = make_ascii_flags();

// bytes_to_unicode() of GPT-2: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order.
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // all images are < 0x144
  ByteMap() {
    from_cp.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = printable ? uint32_t(b) : next++;
      from_cp[to_cp[b]] = int16_t(b);
    }
  }
};
const ByteMap kByteMap;

}  // namespace

uint8_t flags(uint32_t cp) {
  if (cp < 128) return kAscii[cp];
  const auto* begin = detail::kRanges;
  const auto* end = detail::kRanges + detail::kRangeCount;
  const auto* it = std::upper_bound(begin, end, cp, [](uint32_t v, const detail::CodepointRange& r) {
    return v < r.first;
  });
  if (it == begin) return 0;
  --it;
  return cp <= it->last ? it->flag : 0;
}

int decode_one(std::string_view s, size_t pos, uint32_t* cp) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  int len = 0;
  uint32_t v = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) len = 2, v = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0) len = 3, v = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0) len = 4, v = b0 & 0x07, min = 0x10000;
  if (len == 0 || pos + len > s.size()) {
    *cp = kInvalidBase + b0;
    return 1;
  }
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<uint8_t>(s[pos + i]);
    if ((b & 0xC0) != 0x80) {
      *cp = kInvalidBase + b0;
      return 1;
    }
    v = (v << 6) | (b & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
    *cp = kInvalidBase + b0;
    return 1;
  }
  *cp = v;
  return len;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string to_utf8(uint32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

size_t incomplete_utf8_tail(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto b = static_cast<uint8_t>(s[s.size() - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

uint32_t byte_to_codepoint(uint8_t b) { return kByteMap.to_cp[b]; }

int codepoint_to_byte(uint32_t cp) { return cp < kByteMap.from_cp.size() ? kByteMap.from_cp[cp] : -1; }

}  // namespace spw::rt::unicode
