#pragma once
// Device, reader and admin tokens (docs/auth.md): the tokens file named by
// `auth.tokens-file`, parsed once at start-up, and the checks the WebSocket
// session (hello) and the HTTP routes (Authorization: Bearer) make against it.
//
// CAF-free and Beast-free on purpose, like query_api: node/ loads the file,
// actors and net/ only ask questions.
// Lifecycle: a token_store is built by load()/parse() and never changes
// afterwards (a changed file takes a restart).
// Concurrency: every const member is safe to call from any number of threads
// at once; a grant is an immutable value, cheap to copy.
// Timing: a token is found through a hash keyed with a per-store random key,
// then compared byte for byte without early exit, so how long a check takes
// does not tell how much of a guessed token was right.
// Errors name the file and line, never the token itself (they end up in logs).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pulse::auth {

// Tokens are 1..max_token_len characters of RFC 6750's b64token:
// [A-Za-z0-9-._~+/] followed by optional '=' padding. That is everything a
// client can send after "Bearer " and covers hex, base64 and base64url secrets.
inline constexpr std::size_t max_token_len = 256;
// load() refuses bigger files (a tokens file is text a person maintains).
inline constexpr std::size_t max_file_bytes = 16 * 1024 * 1024;

enum class role { device, reader, admin };

// What one token may do. A default-constructed grant may do nothing: that is
// what an unknown token gets.
class grant {
 public:
  grant() = default;

  // May the holder write readings of `device`? False for an invalid device id.
  bool may_write(std::string_view device) const;
  // May the holder query over HTTP and subscribe?
  bool may_read() const;
  // May the holder use /admin/ endpoints (POST /admin/backup)?
  bool may_admin() const;
  // Neither: the token is unknown.
  bool none() const { return !rights_; }

  // Device patterns of a device token: an exact id, a trailing-'*' prefix
  // ("meter-*") or "*" (any device). Empty for a reader-only token.
  struct pattern {
    std::string prefix;     // the id, or what precedes the '*'
    bool wildcard = false;  // prefix match instead of exact
  };
  struct rights {
    bool reader = false;
    bool admin = false;
    std::vector<pattern> patterns;  // non-empty iff listed as a device token
  };

 private:
  friend class token_store;
  explicit grant(std::shared_ptr<const rights> r) : rights_(std::move(r)) {}
  std::shared_ptr<const rights> rights_;
};

class token_store {
 public:
  // Reads and parses the tokens file at `path`. On failure: nullopt, and
  // `error` says "<path>:<line>: <what is wrong>" (or "<path>: ..." for a
  // problem with the file as a whole, such as not existing or holding no token).
  static std::optional<token_store> load(const std::string& path, std::string& error);
  // Parses the text of a tokens file; `source` names it in errors (empty:
  // errors start with "line <n>: ").
  static std::optional<token_store> parse(std::string_view text, std::string& error,
                                          std::string_view source = {});

  // The rights of `token`; none() when the token is unknown or malformed.
  // A session keeps the grant rather than the token and checks each reading
  // against it without hashing again.
  grant find(std::string_view token) const;
  // May `token` write readings of `device`?
  bool may_write(std::string_view token, std::string_view device) const;
  // May `token` query and subscribe? Device tokens may not, unless the same
  // token is also listed as a reader token.
  bool may_read(std::string_view token) const;

  // Distinct tokens.
  std::size_t size() const { return entries_.size(); }
  // Tokens holding `r` (a token listed in both roles counts in both).
  std::size_t count(role r) const;

 private:
  struct entry {
    std::string token;
    std::shared_ptr<const grant::rights> rights;
  };
  token_store();
  const entry* lookup(std::string_view token) const;
  std::uint64_t digest(std::string_view token) const;

  std::uint64_t key_[2];  // per-store random key of digest()
  std::vector<entry> entries_;
  // digest -> index into entries_ (a multimap: two tokens may share a digest).
  std::unordered_multimap<std::uint64_t, std::size_t> index_;
};

// The credentials of an "Authorization: Bearer <token>" header value: the
// scheme is case-insensitive, spaces and tabs around the token are skipped.
// Empty when the header is not a bearer token (another scheme, no token, or
// whitespace inside the token).
std::string_view bearer_token(std::string_view authorization_header);

namespace detail {
// Whether a presented token equals a stored one, without an early exit: the
// time depends on the stored token's length only. (The hash lookup finds the
// candidate; this comparison is what decides, should two digests collide.)
bool constant_time_equal(std::string_view presented, std::string_view stored);
}  // namespace detail

}  // namespace pulse::auth
