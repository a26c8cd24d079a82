#include "actors/auth.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <system_error>
#include <unordered_map>

#include "storage/model.hpp"

namespace pulse::auth {

namespace {

constexpr std::string_view space = " \t";

std::string_view trim(std::string_view s) {
  auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  auto last = s.find_last_not_of(space);
  return s.substr(first, last - first + 1);
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
// Returns what is wrong, or nullptr.
const char* token_problem(std::string_view t) {
  if (t.empty()) return "the token is empty";
  if (t.size() > max_token_len) return "the token is longer than 256 characters";
  auto body = t.substr(0, t.find_last_not_of('=') + 1);
  if (body.empty()) return "the token is only '=' padding";
  for (char c : body)
    if (!is_alnum(c) && std::string_view{"-._~+/"}.find(c) == std::string_view::npos)
      return "the token has a character other than letters, digits, - . _ ~ + / and "
             "trailing =";
  return nullptr;
}

// SipHash-2-4 (Aumasson and Bernstein): a keyed hash whose outputs say nothing
// useful about its inputs to someone without the key.
std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

std::uint64_t siphash24(const std::uint64_t key[2], std::string_view data) {
  std::uint64_t v0 = key[0] ^ 0x736f6d6570736575ULL;
  std::uint64_t v1 = key[1] ^ 0x646f72616e646f6dULL;
  std::uint64_t v2 = key[0] ^ 0x6c7967656e657261ULL;
  std::uint64_t v3 = key[1] ^ 0x7465646279746573ULL;
  auto round = [&] {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  };
  auto word = [&](std::uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  };
  auto p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size(), full = n - n % 8;
  for (std::size_t i = 0; i < full; i += 8) {
    std::uint64_t m = 0;
    for (int j = 7; j >= 0; --j) m = (m << 8) | p[i + j];  // little endian
    word(m);
  }
  std::uint64_t last = static_cast<std::uint64_t>(n) << 56;
  for (std::size_t j = 0; j < n % 8; ++j)
    last |= static_cast<std::uint64_t>(p[full + j]) << (8 * j);
  word(last);
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// One token as the parser collects it, before it goes into the store.
struct parsed {
  std::string token;
  grant::rights rights;
  std::size_t device_line = 0;  // 0 = not a device token
  std::size_t reader_line = 0;  // 0 = not a reader token
  std::size_t admin_line = 0;   // 0 = not an admin token
};

// Reads a tokens file line by line. Each add_* returns an error message
// without the location (or an empty string); the caller adds file and line.
class file_parser {
 public:
  std::string line(std::string_view text, std::size_t number) {
    line_ = number;
    if (auto problem = bad_character(text); !problem.empty()) return problem;
    text = trim(text);
    if (text.empty() || text.front() == '#' || text.front() == ';') return {};
    if (form_ == form::unknown) form_ = text.front() == '[' ? form::ini : form::lines;
    return form_ == form::ini ? ini_line(text) : plain_line(text);
  }

  std::vector<parsed>& tokens() { return tokens_; }

 private:
  enum class form { unknown, ini, lines };

  // Control characters (tab aside) are refused everywhere, non-ASCII bytes
  // outside comments: a tokens file is ASCII, comments may be UTF-8.
  static std::string bad_character(std::string_view text) {
    auto t = trim(text);
    bool comment = !t.empty() && (t.front() == '#' || t.front() == ';');
    for (std::size_t i = 0; i < text.size(); ++i) {
      auto c = static_cast<unsigned char>(text[i]);
      if ((c < 0x20 && c != '\t') || c == 0x7f || (c >= 0x80 && !comment)) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "byte 0x%02x at column %zu (a tokens file is ASCII text)", c,
                      i + 1);
        return buf;
      }
    }
    return {};
  }

  std::string ini_line(std::string_view text) {
    if (text.front() == '[') {
      if (text.back() != ']') return "a section line must end with ']'";
      auto name = trim(text.substr(1, text.size() - 2));
      if (name == "device") {
        section_ = role::device;
      } else if (name == "reader") {
        section_ = role::reader;
      } else if (name == "admin") {
        section_ = role::admin;
      } else {
        return "unknown section [" + std::string(name.substr(0, 64)) +
               "] (expected [device], [reader] or [admin])";
      }
      return {};
    }
    // <token> = "<value>": tokens may end in '=' padding, so the value's
    // opening quote (never part of a token) is where the value starts.
    auto quote = text.find('"');
    auto eq = text.rfind('=', quote);
    if (eq == std::string_view::npos) return "missing '=' (expected: <token> = \"<devices>\")";
    if (quote == std::string_view::npos || !trim(text.substr(eq + 1, quote - eq - 1)).empty())
      return "the value must be in double quotes (expected: <token> = \"<devices>\")";
    auto value = text.substr(quote + 1);
    if (value.empty() || value.back() != '"' || value.find('"') != value.size() - 1)
      return "the value must be one double-quoted string with nothing after it";
    value.remove_suffix(1);
    auto token = trim(text.substr(0, eq));
    if (section_ == role::device) return add_device(token, value);
    if (!trim(value).empty())
      return std::string(section_ == role::admin ? "an admin" : "a reader") +
             " token takes no devices: its value must be \"\"";
    return add_role(token, section_);
  }

  // device <devices> <token>  |  reader <token>  |  admin <token>
  std::string plain_line(std::string_view text) {
    if (text.front() == '[')
      return "a [section] line, but the file did not start with one (the INI form starts "
             "with its first section)";
    std::vector<std::string_view> fields;
    for (std::size_t i = 0; i < text.size();) {
      auto start = text.find_first_not_of(space, i);
      if (start == std::string_view::npos) break;
      auto end = std::min(text.find_first_of(space, start), text.size());
      fields.push_back(text.substr(start, end - start));
      i = end;
    }
    // No field is echoed: a line with a typo may hold a token.
    if (fields[0] == "device" && fields.size() == 3) return add_device(fields[2], fields[1]);
    if (fields[0] == "reader" && fields.size() == 2) return add_role(fields[1], role::reader);
    if (fields[0] == "admin" && fields.size() == 2) return add_role(fields[1], role::admin);
    if (fields[0] == "device") return "expected: device <devices> <token>";
    if (fields[0] == "reader") return "expected: reader <token>";
    if (fields[0] == "admin") return "expected: admin <token>";
    return "expected 'device <devices> <token>', 'reader <token>' or 'admin <token>'";
  }

  std::string add_device(std::string_view token, std::string_view devices) {
    if (auto problem = token_problem(token)) return problem;
    std::vector<grant::pattern> patterns;
    for (std::size_t i = 0; i <= devices.size();) {
      auto comma = std::min(devices.find(',', i), devices.size());
      auto p = trim(devices.substr(i, comma - i));
      i = comma + 1;
      if (p.empty()) {
        if (devices.find_first_not_of(space) == std::string_view::npos)
          return "a device token needs at least one device (an id, a prefix ending in '*', or "
                 "'*')";
        return "an empty device pattern (between commas?)";
      }
      grant::pattern pat;
      pat.wildcard = p.back() == '*';
      pat.prefix = std::string(pat.wildcard ? p.substr(0, p.size() - 1) : p);
      bool ok = pat.wildcard ? pat.prefix.empty() || (pat.prefix.size() < max_device_len &&
                                                      valid_device_id(pat.prefix))
                             : valid_device_id(pat.prefix);
      if (!ok)
        return "bad device pattern '" + std::string(p.substr(0, 140)) +
               "' (expected an id of [A-Za-z0-9:._-]{1,128}, such an id's prefix followed by "
               "'*', or '*')";
      patterns.push_back(std::move(pat));
    }
    auto& t = find_or_add(token);
    if (t.device_line != 0)
      return "the token is already listed as a device token on line " +
             std::to_string(t.device_line);
    t.device_line = line_;
    t.rights.patterns = std::move(patterns);
    return {};
  }

  // A reader or an admin token (neither takes devices).
  std::string add_role(std::string_view token, role r) {
    if (auto problem = token_problem(token)) return problem;
    auto& t = find_or_add(token);
    auto& line = r == role::admin ? t.admin_line : t.reader_line;
    if (line != 0)
      return std::string("the token is already listed as ") +
             (r == role::admin ? "an admin" : "a reader") + " token on line " +
             std::to_string(line);
    line = line_;
    (r == role::admin ? t.rights.admin : t.rights.reader) = true;
    return {};
  }

  parsed& find_or_add(std::string_view token) {
    auto [it, added] = by_token_.emplace(std::string(token), tokens_.size());
    if (added) tokens_.push_back(parsed{std::string(token), {}, 0, 0, 0});
    return tokens_[it->second];
  }

  form form_ = form::unknown;
  role section_ = role::device;  // unused before the first section: INI starts with one
  std::size_t line_ = 0;
  std::vector<parsed> tokens_;
  // Parsing is not timing-sensitive: a plain map finds duplicates.
  std::unordered_map<std::string, std::size_t> by_token_;
};

bool may_write_device(const grant::rights& r, std::string_view device) {
  if (!valid_device_id(device.data(), device.size())) return false;
  for (auto& p : r.patterns) {
    if (p.wildcard ? device.substr(0, p.prefix.size()) == p.prefix : device == p.prefix)
      return true;
  }
  return false;
}

std::string locate(std::string_view source, std::size_t line, const std::string& what) {
  if (source.empty()) return "line " + std::to_string(line) + ": " + what;
  return std::string(source) + ":" + std::to_string(line) + ": " + what;
}

}  // namespace

bool detail::constant_time_equal(std::string_view presented, std::string_view stored) {
  unsigned diff = presented.size() != stored.size();
  for (std::size_t i = 0; i < stored.size(); ++i) {
    unsigned char a = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= a ^ static_cast<unsigned char>(stored[i]);
  }
  return diff == 0;
}

bool grant::may_write(std::string_view device) const {
  return rights_ && may_write_device(*rights_, device);
}

bool grant::may_read() const { return rights_ && rights_->reader; }

bool grant::may_admin() const { return rights_ && rights_->admin; }

token_store::token_store() {
  std::random_device rd;
  for (auto& k : key_) k = (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

std::optional<token_store> token_store::parse(std::string_view text, std::string& error,
                                              std::string_view source) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a UTF-8 BOM
  file_parser p;
  std::size_t number = 0;
  for (std::size_t start = 0; start < text.size();) {
    auto end = std::min(text.find('\n', start), text.size());
    auto line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF files
    if (auto problem = p.line(line, ++number); !problem.empty()) {
      error = locate(source, number, problem);
      return std::nullopt;
    }
    start = end + 1;
  }
  if (p.tokens().empty()) {
    error = std::string(source.empty() ? "" : std::string(source) + ": ") +
            "no tokens (with auth on, nobody could write or read; leave auth.tokens-file "
            "empty to turn auth off)";
    return std::nullopt;
  }
  token_store store;
  store.entries_.reserve(p.tokens().size());
  for (auto& t : p.tokens()) {
    store.index_.emplace(store.digest(t.token), store.entries_.size());
    store.entries_.push_back(
        entry{std::move(t.token), std::make_shared<const grant::rights>(std::move(t.rights))});
  }
  return store;
}

std::optional<token_store> token_store::load(const std::string& path, std::string& error) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    error = path + ": is a directory, not a tokens file";
    return std::nullopt;
  }
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    error = path + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_file_bytes) {
      error = path + ": larger than 16 MiB, not a tokens file";
      return std::nullopt;
    }
  }
  if (in.bad()) {
    error = path + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  return parse(text, error, path);
}

std::uint64_t token_store::digest(std::string_view token) const { return siphash24(key_, token); }

const token_store::entry* token_store::lookup(std::string_view token) const {
  if (token.empty() || token.size() > max_token_len) return nullptr;
  const entry* found = nullptr;
  auto [first, last] = index_.equal_range(digest(token));
  for (auto it = first; it != last; ++it) {
    auto& e = entries_[it->second];
    if (detail::constant_time_equal(token, e.token)) found = &e;
  }
  return found;
}

grant token_store::find(std::string_view token) const {
  auto e = lookup(token);
  return e ? grant{e->rights} : grant{};
}

bool token_store::may_write(std::string_view token, std::string_view device) const {
  auto e = lookup(token);
  return e && may_write_device(*e->rights, device);
}

bool token_store::may_read(std::string_view token) const {
  auto e = lookup(token);
  return e && e->rights->reader;
}

std::size_t token_store::count(role r) const {
  std::size_t n = 0;
  for (auto& e : entries_)
    n += r == role::reader  ? e.rights->reader
         : r == role::admin ? e.rights->admin
                            : !e.rights->patterns.empty();
  return n;
}

std::string_view bearer_token(std::string_view header) {
  header = trim(header);
  constexpr std::string_view scheme = "bearer";
  if (header.size() <= scheme.size()) return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    char c = header[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[i]) return {};
  }
  if (space.find(header[scheme.size()]) == std::string_view::npos) return {};
  auto token = trim(header.substr(scheme.size()));
  if (token.empty() || token.find_first_of(space) != std::string_view::npos) return {};
  return token;
}

}  // namespace pulse::auth
