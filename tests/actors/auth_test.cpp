// Tests of the tokens file (both forms, every error naming its line), the
// rights each token gets, and the Authorization header parsing.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "actors/auth.hpp"

namespace {

using namespace pulse;
using auth::token_store;

constexpr std::string_view ini_example = R"(# Pulse tokens
[device]
s3cret-meter7 = "meter-7"
fleet-token = "meter-*"
any-device = "*"
two-sites = "site-a:*, site-b:*,meter-9"

[reader]
dashboard-token = ""
)";

constexpr std::string_view lines_example = R"(# Pulse tokens
device meter-7 s3cret-meter7
device meter-* fleet-token
device * any-device
device site-a:*,site-b:*,meter-9 two-sites

reader dashboard-token
)";

token_store parse_ok(std::string_view text) {
  std::string error;
  auto store = token_store::parse(text, error);
  INFO(error);
  REQUIRE(store);
  CHECK(error.empty());
  return std::move(*store);
}

// Parsing fails with an error that starts with the line and mentions `what`.
void check_error(std::string_view text, std::size_t line, const std::string& what) {
  std::string error;
  auto store = token_store::parse(text, error);
  INFO("error: " << error);
  CHECK(!store);
  CHECK(error.rfind("line " + std::to_string(line) + ": ", 0) == 0);
  CHECK(error.find(what) != std::string::npos);
}

void check_example_rights(const token_store& s) {
  CHECK(s.size() == 5);
  CHECK(s.count(auth::role::device) == 4);
  CHECK(s.count(auth::role::reader) == 1);
  // Exact id.
  CHECK(s.may_write("s3cret-meter7", "meter-7"));
  CHECK_FALSE(s.may_write("s3cret-meter7", "meter-70"));
  CHECK_FALSE(s.may_write("s3cret-meter7", "meter-"));
  CHECK_FALSE(s.may_write("s3cret-meter7", "Meter-7"));
  // Prefix.
  CHECK(s.may_write("fleet-token", "meter-7"));
  CHECK(s.may_write("fleet-token", "meter-"));
  CHECK(s.may_write("fleet-token", "meter-battery:1"));
  CHECK_FALSE(s.may_write("fleet-token", "meter"));
  CHECK_FALSE(s.may_write("fleet-token", "battery:1:data"));
  // Any device.
  CHECK(s.may_write("any-device", "battery:1:data"));
  CHECK(s.may_write("any-device", "x"));
  // Several patterns.
  CHECK(s.may_write("two-sites", "site-a:meter-1"));
  CHECK(s.may_write("two-sites", "site-b:meter-1"));
  CHECK(s.may_write("two-sites", "meter-9"));
  CHECK_FALSE(s.may_write("two-sites", "site-c:meter-1"));
  CHECK_FALSE(s.may_write("two-sites", "meter-90"));
  // Reading is for reader tokens only.
  CHECK(s.may_read("dashboard-token"));
  CHECK_FALSE(s.may_write("dashboard-token", "meter-7"));
  for (auto t : {"s3cret-meter7", "fleet-token", "any-device", "two-sites"}) {
    INFO(t);
    CHECK_FALSE(s.may_read(t));
  }
  // Unknown tokens may do nothing.
  CHECK_FALSE(s.may_write("nope", "meter-7"));
  CHECK_FALSE(s.may_read("nope"));
}

struct temp_file {
  std::filesystem::path path;
  explicit temp_file(std::string_view content) {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("pulse-auth-test-" + std::to_string(rd()) + std::to_string(rd()) + ".tokens");
    std::ofstream out{path, std::ios::binary};
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

}  // namespace

TEST_CASE("INI form: device tokens write their devices, reader tokens read") {
  check_example_rights(parse_ok(ini_example));
}

TEST_CASE("line form: device tokens write their devices, reader tokens read") {
  check_example_rights(parse_ok(lines_example));
}

TEST_CASE("a token listed in both roles writes and reads") {
  for (auto text : {std::string_view{"[reader]\nboth = \"\"\n[device]\nboth = \"meter-*\"\n"},
                    std::string_view{"reader both\ndevice meter-* both\n"}}) {
    auto s = parse_ok(text);
    CHECK(s.size() == 1);
    CHECK(s.count(auth::role::device) == 1);
    CHECK(s.count(auth::role::reader) == 1);
    CHECK(s.may_read("both"));
    CHECK(s.may_write("both", "meter-1"));
    CHECK_FALSE(s.may_write("both", "battery-1"));
  }
}

TEST_CASE("comments, blank lines, spaces, tabs, CRLF and a BOM are accepted") {
  auto s = parse_ok(
      "\xEF\xBB\xBF\r\n  # comment\r\n; another\r\n\r\n\t[ device ]\t\r\n"
      "  tok-1\t=  \"meter-7\"  \r\n# K\xC3\xBCmmel in a comment is fine\r\n[reader]\r\nr-1 = "
      "\"\"");
  CHECK(s.size() == 2);
  CHECK(s.may_write("tok-1", "meter-7"));
  CHECK(s.may_read("r-1"));

  auto l = parse_ok("\r\n# c\r\n\tdevice   meter-7\t tok-1  \r\nreader r-1\r\n");
  CHECK(l.may_write("tok-1", "meter-7"));
  CHECK(l.may_read("r-1"));
}

TEST_CASE("tokens: base64 characters, '=' padding and 256 characters") {
  std::string longest(256, 'a');
  auto s = parse_ok("[device]\nab+/cd== = \"meter-7\"\nA-._~z=\"meter-8\"\n" + longest +
                    " = \"*\"\n[reader]\nxyz= = \"\"\n");
  CHECK(s.may_write("ab+/cd==", "meter-7"));
  CHECK_FALSE(s.may_write("ab+/cd=", "meter-7"));
  CHECK(s.may_write("A-._~z", "meter-8"));  // the last '=' before the quote separates
  CHECK(s.may_write(longest, "meter-1"));
  CHECK(s.may_read("xyz="));
  CHECK_FALSE(s.may_read("xyz"));

  auto l = parse_ok("device meter-7 ab+/cd==\nreader " + longest + "\n");
  CHECK(l.may_write("ab+/cd==", "meter-7"));
  CHECK(l.may_read(longest));
}

TEST_CASE("only the exact token is accepted") {
  auto s = parse_ok("device * fleet-token\nreader dashboard-token\n");
  for (auto wrong : {"", "fleet-toke", "fleet-tokenX", "Fleet-token", "fleet-token ",
                     " fleet-token", "fleet-tokeN", "*"}) {
    INFO("'" << wrong << "'");
    CHECK_FALSE(s.may_write(wrong, "meter-7"));
    CHECK(s.find(wrong).none());
  }
  CHECK_FALSE(s.may_read(std::string(1000, 'a')));
  CHECK_FALSE(s.may_read(std::string_view{"dashboard-token\0", 16}));
  CHECK(s.may_read("dashboard-token"));
}

TEST_CASE("tokens are compared byte for byte, lengths included") {
  using auth::detail::constant_time_equal;
  CHECK(constant_time_equal("fleet-token", "fleet-token"));
  CHECK(constant_time_equal("", ""));
  CHECK_FALSE(constant_time_equal("fleet-tokeN", "fleet-token"));
  CHECK_FALSE(constant_time_equal("Fleet-token", "fleet-token"));
  CHECK_FALSE(constant_time_equal("fleet-toke", "fleet-token"));
  CHECK_FALSE(constant_time_equal("fleet-token2", "fleet-token"));
  CHECK_FALSE(constant_time_equal("", "fleet-token"));
  CHECK_FALSE(constant_time_equal("fleet-token", ""));
  CHECK_FALSE(constant_time_equal(std::string_view{"ab\0", 3}, "ab"));
}

TEST_CASE("a grant keeps a token's rights without the token") {
  auto s = parse_ok("device meter-*,battery:1 fleet-token\nreader dashboard-token\n");
  auto g = s.find("fleet-token");
  CHECK_FALSE(g.none());
  CHECK(g.may_write("meter-1"));
  CHECK(g.may_write("battery:1"));
  CHECK_FALSE(g.may_write("battery:10"));
  CHECK_FALSE(g.may_read());
  auto r = s.find("dashboard-token");
  CHECK(r.may_read());
  CHECK_FALSE(r.may_write("meter-1"));
  auth::grant nobody;
  CHECK(nobody.none());
  CHECK_FALSE(nobody.may_read());
  CHECK_FALSE(nobody.may_write("meter-1"));
}

TEST_CASE("'*' does not let through what is not a device id") {
  auto s = parse_ok("device * any\ndevice meter-* fleet\n");
  for (auto bad : {"", "meter 7", "meter/7", "meter-7\n", "meter-*"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(s.may_write("any", bad));
  }
  CHECK_FALSE(s.may_write("any", std::string(129, 'm')));
  CHECK_FALSE(s.may_write("fleet", "meter-" + std::string(123, 'x')));  // 129 characters
  CHECK(s.may_write("fleet", "meter-" + std::string(122, 'x')));        // 128
  CHECK(s.may_write("any", std::string(128, 'm')));
}

TEST_CASE("INI form errors name the line and what is wrong") {
  check_error("[device]\ns3cret \"meter-7\"\n", 2, "missing '='");
  check_error("[device]\ns3cret\n", 2, "missing '='");
  check_error("[device]\ns3cret = meter-7\n", 2, "double quotes");
  check_error("[device]\ns3cret = \"meter-7\n", 2, "double-quoted");
  check_error("[device]\ns3cret = meter-7 \"meter-8\"\n", 2, "double quotes");
  check_error("[device]\ns3cret = \"meter-7\" \"meter-8\"\n", 2, "double-quoted");
  check_error("[device]\ns3cret = \"meter-7\" # x\n", 2, "double-quoted");
  check_error("# tokens\n\n[devices]\n", 3, "unknown section [devices]");
  check_error("[device]\na = \"meter-7\"\n[owner]\n", 3, "unknown section [owner]");
  check_error("[device\n", 1, "must end with ']'");
  check_error("[device]\na = \"meter 7\"\n", 2, "bad device pattern 'meter 7'");
  check_error("[device]\na = \"me*ter\"\n", 2, "bad device pattern 'me*ter'");
  check_error("[device]\na = \"**\"\n", 2, "bad device pattern '**'");
  check_error("[device]\na = \"meter/7\"\n", 2, "bad device pattern");
  check_error("[device]\na = \"" + std::string(129, 'm') + "\"\n", 2, "bad device pattern");
  check_error("[device]\na = \"" + std::string(128, 'm') + "*\"\n", 2, "bad device pattern");
  check_error("[device]\na = \"meter-7,,meter-8\"\n", 2, "empty device pattern");
  check_error("[device]\na = \"meter-7,\"\n", 2, "empty device pattern");
  check_error("[device]\na = \"\"\n", 2, "at least one device");
  check_error("[device]\na = \"  \"\n", 2, "at least one device");
  check_error("[reader]\na = \"meter-*\"\n", 2, "reader token takes no devices");
  check_error("[device]\n = \"meter-7\"\n", 2, "token is empty");
  check_error("[device]\n== = \"meter-7\"\n", 2, "only '=' padding");
  check_error("[device]\nse cret = \"meter-7\"\n", 2, "other than letters");
  check_error("[device]\nsec=ret = \"meter-7\"\n", 2, "other than letters");
  check_error("[device]\n" + std::string(257, 'a') + " = \"meter-7\"\n", 2,
              "longer than 256 characters");
  check_error("[device]\na = \"meter-7\"\nb = \"meter-8\"\na = \"meter-9\"\n", 4,
              "already listed as a device token on line 2");
  check_error("[reader]\nr = \"\"\n[device]\nr = \"*\"\n[reader]\nr = \"\"\n", 6,
              "already listed as a reader token on line 2");
}

TEST_CASE("line form errors name the line and what is wrong") {
  check_error("device meter-7\n", 1, "expected: device <devices> <token>");
  check_error("device meter-7 tok extra\n", 1, "expected: device <devices> <token>");
  check_error("reader\n", 1, "expected: reader <token>");
  check_error("reader a b\n", 1, "expected: reader <token>");
  check_error("# c\nreader r\nwriter w\n", 3, "expected 'device <devices> <token>'");
  check_error("Device meter-7 tok\n", 1, "expected 'device <devices> <token>'");
  check_error("reader r\n[device]\n", 2, "did not start with one");
  check_error("device meter_7* tok\ndevice meter-7? tok2\n", 2, "bad device pattern 'meter-7?'");
  check_error("device meter-7 tok\ndevice meter-8 tok2\ndevice meter-* tok\n", 3,
              "already listed as a device token on line 1");
  check_error("reader tok\nreader tok\n", 2, "already listed as a reader token on line 1");
  check_error("reader " + std::string(257, 'x') + "\n", 1, "longer than 256 characters");
  check_error("device meter-7 tok\"en\n", 1, "other than letters");
  check_error("reader s3cret = \"\"\n", 1, "expected: reader <token>");
}

TEST_CASE("binary junk and stray control characters are refused with their line") {
  check_error(std::string_view{"device meter-7 tok\n\x7f"
                               "ELF\x02\x01\x01\0\0\0",
                               29},
              2, "byte 0x7f at column 1");
  check_error(std::string_view{"reader a\nreader b\0c\n", 20}, 2, "byte 0x00 at column 9");
  check_error("reader a\r\r\n", 1, "byte 0x0d");  // a CR that is not CRLF
  check_error("[device]\na = \"meter-\xC3\xA9\"\n", 2, "byte 0xc3 at column 12");  // non-ASCII
  check_error("\xFF\xFE[\0d\0e\0", 1, "byte 0xff at column 1");                    // UTF-16
}

TEST_CASE("errors never repeat the token") {
  const std::string secret = "Sup3rSecretValue";
  for (auto text : {"[device]\n" + secret + " = \"meter 7\"\n", "[device]\n" + secret + "\n",
                    "[reader]\n" + secret + " = \"x\"\n", "device " + secret + "\n",
                    "device meter?7 " + secret + "\n", secret + " meter-7\n",
                    "reader " + secret + "\nreader " + secret + "\n"}) {
    std::string error;
    CHECK_FALSE(token_store::parse(text, error));
    INFO(error);
    CHECK_FALSE(error.empty());
    CHECK(error.find(secret) == std::string::npos);
  }
}

TEST_CASE("a file without tokens is an error") {
  for (auto text : {"", "\n\n", "# only comments\n; and this\n", "[device]\n[reader]\n"}) {
    std::string error;
    CHECK_FALSE(token_store::parse(text, error));
    CHECK(error.find("no tokens") != std::string::npos);
  }
}

TEST_CASE("load names the file in every error") {
  std::string error;
  SECTION("a file that does not exist") {
    auto missing = std::filesystem::temp_directory_path() / "pulse-auth-test-does-not-exist";
    CHECK_FALSE(token_store::load(missing.string(), error));
    CHECK(error.rfind(missing.string() + ": cannot open", 0) == 0);
    CHECK(error.find("No such file") != std::string::npos);
  }
  SECTION("a directory") {
    auto dir = std::filesystem::temp_directory_path().string();
    CHECK_FALSE(token_store::load(dir, error));
    CHECK(error == dir + ": is a directory, not a tokens file");
  }
  SECTION("a bad line") {
    temp_file f{"[device]\nok = \"meter-7\"\n\n[mystery]\n"};
    CHECK_FALSE(token_store::load(f.path.string(), error));
    CHECK(error.rfind(f.path.string() + ":4: unknown section [mystery]", 0) == 0);
  }
  SECTION("an empty file") {
    temp_file f{""};
    CHECK_FALSE(token_store::load(f.path.string(), error));
    CHECK(error.rfind(f.path.string() + ": no tokens", 0) == 0);
  }
  SECTION("a good file") {
    temp_file f{lines_example};
    auto s = token_store::load(f.path.string(), error);
    INFO(error);
    REQUIRE(s);
    check_example_rights(*s);
  }
}

TEST_CASE("configs/tokens.example parses") {
  std::string error;
  auto s = token_store::load(PULSE_SOURCE_DIR "/configs/tokens.example", error);
  INFO(error);
  REQUIRE(s);
  CHECK(s->count(auth::role::device) > 0);
  CHECK(s->count(auth::role::reader) > 0);
}

TEST_CASE("bearer_token takes the token out of an Authorization header") {
  using auth::bearer_token;
  CHECK(bearer_token("Bearer abc123") == "abc123");
  CHECK(bearer_token("bearer abc123") == "abc123");
  CHECK(bearer_token("BEARER abc123") == "abc123");
  CHECK(bearer_token("BeArEr ab+/c==") == "ab+/c==");
  CHECK(bearer_token("  Bearer   abc123  ") == "abc123");
  CHECK(bearer_token("Bearer\tabc123\t") == "abc123");
  CHECK(bearer_token("") == "");
  CHECK(bearer_token("   ") == "");
  CHECK(bearer_token("Bearer") == "");
  CHECK(bearer_token("Bearer ") == "");
  CHECK(bearer_token("Bearer    ") == "");
  CHECK(bearer_token("Bearerabc123") == "");
  CHECK(bearer_token("Bearer abc 123") == "");
  CHECK(bearer_token("Basic dXNlcjpwYXNz") == "");
  CHECK(bearer_token("Token abc123") == "");
  CHECK(bearer_token("abc123") == "");
  CHECK(bearer_token("Bear abc123") == "");
  CHECK(bearer_token("Digest abc123") == "");
  CHECK(bearer_token("Bearex abc123") == "");
}

TEST_CASE("admin tokens: both forms, only admin rights, garbage refused", "[auth]") {
  auto lines = parse_ok("admin ops-token\nreader r-tok\nadmin r-tok\ndevice m-1 d-tok\n");
  CHECK(lines.count(auth::role::admin) == 2);
  CHECK(lines.find("ops-token").may_admin());
  CHECK_FALSE(lines.find("ops-token").may_read());
  CHECK_FALSE(lines.find("ops-token").may_write("m-1"));
  CHECK(lines.find("r-tok").may_admin());
  CHECK(lines.find("r-tok").may_read());
  CHECK_FALSE(lines.find("d-tok").may_admin());
  CHECK_FALSE(lines.find("unknown").may_admin());
  CHECK_FALSE(auth::grant{}.may_admin());

  auto ini = parse_ok("[admin]\nops = \"\"\n[device]\nd = \"m-*\"\n");
  CHECK(ini.find("ops").may_admin());
  CHECK_FALSE(ini.find("d").may_admin());

  check_error("admin\n", 1, "expected: admin <token>");
  check_error("admin a b\n", 1, "expected: admin <token>");
  check_error("admin t\nadmin t\n", 2, "already listed as an admin token on line 1");
  check_error("[admin]\nops = \"m-1\"\n", 2, "an admin token takes no devices");
  check_error("[admins]\n", 1, "expected [device], [reader] or [admin]");
  check_error("admin bad token!\n", 1, "expected: admin <token>");
  check_error("admin t@k\n", 1, "");
}
