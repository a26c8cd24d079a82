// Replay file readers. XLSX is a zip of XML parts (libzip + pugixml); CSV and
// NDJSON are read by hand so errors can name the row and column.

#include "sim/replay.hpp"

#include "wire/codec.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_map>

#include <zip.h>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>

namespace pulse::sim {

namespace {

using json = nlohmann::json;

// An XLSX part bigger than this is not a spreadsheet we can hold in memory.
constexpr zip_uint64_t max_xlsx_part_bytes = 1ull << 30;

// ---------------------------------------------------------------- helpers

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

void strip_bom(std::string_view& s) {
  if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.remove_prefix(3);
}

// JSON string literal for `s`; bytes that are not UTF-8 become U+FFFD rather than throwing.
std::string json_quote(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Shortens a value for an error message.
std::string excerpt(std::string_view s) {
  constexpr std::size_t max = 60;
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "...";
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; keep what follows.
std::string parse_message(const json::parse_error& e) {
  std::string_view m = e.what();
  if (auto p = m.find("] "); p != std::string_view::npos) m.remove_prefix(p + 2);
  return std::string(m);
}

bool parse_int64(std::string_view s, std::int64_t& out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_uint64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.front() == '-') return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_finite_double(std::string_view s, double& out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(out);
}

void append_double(std::string& out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest form that reads back exactly
  out.append(buf, r.ptr);
}

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

enum class ts_status { absent, ok, bad };

// A wire timestamp: ms since epoch as a JSON number, or an RFC 3339 string.
ts_status ts_from_json(const json& v, std::int64_t& out) {
  if (v.is_null()) return ts_status::absent;
  if (v.is_number_unsigned()) {
    auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return ts_status::bad;
    out = static_cast<std::int64_t>(u);
    return ts_status::ok;
  }
  if (v.is_number_integer()) {
    out = v.get<std::int64_t>();
    return ts_status::ok;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::trunc(d) || std::abs(d) > 9.0e15) return ts_status::bad;
    out = static_cast<std::int64_t>(d);
    return ts_status::ok;
  }
  if (v.is_string())
    return parse_rfc3339_ms(v.get_ref<const std::string&>(), out) ? ts_status::ok : ts_status::bad;
  return ts_status::bad;
}

// An OCPP payload (object, or an object encoded as a JSON string) → ts of its first meterValue.
ts_status ocpp_ts(const json& payload, std::int64_t& out, std::string& shown) {
  const json* p = &payload;
  json inner;
  if (payload.is_string()) {
    inner = json::parse(payload.get_ref<const std::string&>(), nullptr, false);
    if (inner.is_discarded()) return ts_status::absent;
    p = &inner;
  }
  if (!p->is_object()) return ts_status::absent;
  auto mv = p->find("meterValue");
  if (mv == p->end() || !mv->is_array() || mv->empty() || !mv->front().is_object())
    return ts_status::absent;
  auto ts = mv->front().find("timestamp");
  if (ts == mv->front().end()) return ts_status::absent;
  shown = ts->dump();
  return ts_from_json(*ts, out);
}

// Collects frames per device, in order of each device's first appearance.
class device_collector {
 public:
  // A frame without a timestamp takes the one of the frame before it, so
  // the stable sort leaves it where the file put it.
  void add(const std::string& device, std::optional<std::int64_t> ts, std::string text) {
    if (ts) last_ts_ = *ts;
    auto [it, inserted] = index_.try_emplace(device, devices_.size());
    if (inserted) devices_.push_back(replay_device{device, {}});
    devices_[it->second].frames.push_back(replay_frame{last_ts_, std::move(text)});
    ++rows_;
  }

  void finish(replay_data& out) {
    for (auto& d : devices_)
      std::stable_sort(d.frames.begin(), d.frames.end(),
                       [](const replay_frame& a, const replay_frame& b) { return a.ts < b.ts; });
    out.devices = std::move(devices_);
    out.rows = rows_;
  }

 private:
  std::vector<replay_device> devices_;
  std::unordered_map<std::string, std::size_t> index_;
  std::int64_t last_ts_ = 0;
  std::size_t rows_ = 0;
};

bool read_text_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  in.seekg(0, std::ios::end);
  auto size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size < 0) {
    error = "cannot read the file";
    return false;
  }
  out.resize(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(out.data(), size)) {
    error = std::string("cannot read: ") + std::strerror(errno);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- XLSX

struct zip_discarder {
  void operator()(zip_t* z) const { zip_discard(z); }  // read-only: nothing to write back
};
using zip_ptr = std::unique_ptr<zip_t, zip_discarder>;

enum class part_status { ok, missing, failed };

part_status read_part(zip_t* z, const std::string& name, std::string& out, std::string& error) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat(z, name.c_str(), ZIP_FL_NOCASE, &st) != 0) return part_status::missing;
  if (!(st.valid & ZIP_STAT_SIZE) || st.size > max_xlsx_part_bytes) {
    error = name + ": unknown or too large size";
    return part_status::failed;
  }
  zip_file_t* f = zip_fopen(z, name.c_str(), ZIP_FL_NOCASE);
  if (!f) {
    error = name + ": " + zip_strerror(z);
    return part_status::failed;
  }
  out.resize(static_cast<std::size_t>(st.size));
  zip_uint64_t total = 0;
  while (total < st.size) {
    auto n = zip_fread(f, out.data() + total, st.size - total);
    if (n < 0) {
      error = name + ": " + zip_file_strerror(f);
      zip_fclose(f);
      return part_status::failed;
    }
    if (n == 0) break;
    total += static_cast<zip_uint64_t>(n);
  }
  zip_fclose(f);
  if (total != st.size) {
    error = name + ": truncated";
    return part_status::failed;
  }
  return part_status::ok;
}

// Element names may carry a namespace prefix ("x:row"); compare local names.
std::string_view local_name(const pugi::xml_node& n) {
  std::string_view s = n.name();
  auto p = s.find(':');
  return p == std::string_view::npos ? s : s.substr(p + 1);
}

pugi::xml_node child_named(const pugi::xml_node& parent, std::string_view name) {
  for (auto c : parent.children())
    if (c.type() == pugi::node_element && local_name(c) == name) return c;
  return {};
}

// Text of a string item (<si> or <is>): plain <t>, or rich-text runs <r><t>.
// Phonetic hints (<rPh>) are not part of the value.
void append_string_item(const pugi::xml_node& item, std::string& out) {
  for (auto c : item.children()) {
    auto n = local_name(c);
    if (n == "t") {
      out += c.text().get();
    } else if (n == "r") {
      if (auto t = child_named(c, "t")) out += t.text().get();
    }
  }
}

// Whitespace-only text such as <t xml:space="preserve"> </t> is content here.
constexpr unsigned xml_parse_options = pugi::parse_default | pugi::parse_ws_pcdata_single;

bool load_xml(const std::string& data, const std::string& part, pugi::xml_document& doc,
              std::string& error) {
  auto r = doc.load_buffer(data.data(), data.size(), xml_parse_options);
  if (!r) {
    error = part + ": not well-formed XML (" + r.description() + " at offset " +
            std::to_string(r.offset) + ")";
    return false;
  }
  return true;
}

// Resolves "worksheets/sheet1.xml" against "xl/", handling "/" and "..".
std::string resolve_part(const std::string& base_dir, const std::string& target) {
  std::string joined =
      !target.empty() && target.front() == '/' ? target.substr(1) : base_dir + target;
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= joined.size()) {
    auto end = joined.find('/', start);
    if (end == std::string::npos) end = joined.size();
    auto seg = joined.substr(start, end - start);
    if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    start = end + 1;
  }
  std::string r;
  for (auto& p : parts) {
    if (!r.empty()) r += '/';
    r += p;
  }
  return r;
}

// The first worksheet named by xl/workbook.xml, or "" if the workbook does not say.
std::string first_sheet_part(zip_t* z) {
  std::string wb_text, rels_text, ignored;
  if (read_part(z, "xl/workbook.xml", wb_text, ignored) != part_status::ok ||
      read_part(z, "xl/_rels/workbook.xml.rels", rels_text, ignored) != part_status::ok)
    return {};
  pugi::xml_document wb, rels;
  if (!load_xml(wb_text, "", wb, ignored) || !load_xml(rels_text, "", rels, ignored)) return {};
  auto sheet = child_named(child_named(child_named(wb, "workbook"), "sheets"), "sheet");
  if (!sheet) return {};
  std::string rid;
  for (auto a : sheet.attributes()) {
    std::string_view n = a.name();
    // The relationships namespace is usually bound to "r", but any prefix is legal.
    if (n.size() > 3 && n.substr(n.size() - 3) == ":id") rid = a.value();
  }
  if (rid.empty()) return {};
  for (auto rel : child_named(rels, "Relationships").children()) {
    if (local_name(rel) != "Relationship" || rid != rel.attribute("Id").value()) continue;
    if (std::string_view(rel.attribute("TargetMode").value()) == "External") return {};
    return resolve_part("xl/", rel.attribute("Target").value());
  }
  return {};
}

// 0-based column of a cell reference such as "AB12", or -1 if it has no letters.
int column_of(std::string_view ref) {
  int col = 0;
  std::size_t i = 0;
  for (; i < ref.size() && std::isalpha(static_cast<unsigned char>(ref[i])); ++i) {
    col = col * 26 + (std::toupper(static_cast<unsigned char>(ref[i])) - 'A' + 1);
    if (col > 1 << 20) return -1;
  }
  return i == 0 ? -1 : col - 1;
}

class sheet_reader {
 public:
  explicit sheet_reader(const std::vector<std::string>& shared) : shared_(shared) {}

  // The cell's value as text: shared string, inline string, or the raw <v>
  // of numbers, booleans, formula strings and errors.
  bool cell_text(const pugi::xml_node& c, std::string& out, std::string& error) const {
    out.clear();
    std::string_view type = c.attribute("t").value();
    if (type == "inlineStr") {
      append_string_item(child_named(c, "is"), out);
      return true;
    }
    std::string_view v = child_named(c, "v").text().get();
    if (type == "s") {
      std::uint64_t index = 0;
      if (!parse_uint64(trim(v), index) || index >= shared_.size()) {
        error = "shared string index \"" + excerpt(v) + "\" out of range (" +
                std::to_string(shared_.size()) + " strings)";
        return false;
      }
      out = shared_[index];
      return true;
    }
    out.assign(v);
    return true;
  }

 private:
  const std::vector<std::string>& shared_;
};

bool load_xlsx(const std::string& path, device_collector& devices, std::string& error) {
  int zerr = 0;
  zip_ptr z{zip_open(path.c_str(), ZIP_RDONLY, &zerr)};
  if (!z) {
    if (zerr == ZIP_ER_NOZIP) {
      error = "not a zip archive, so not an XLSX file";
    } else {
      zip_error_t ze;
      zip_error_init_with_code(&ze, zerr);
      error = std::string("cannot open as XLSX: ") + zip_error_strerror(&ze);
      zip_error_fini(&ze);
    }
    return false;
  }

  std::vector<std::string> shared;
  {
    std::string text;
    auto st = read_part(z.get(), "xl/sharedStrings.xml", text, error);
    if (st == part_status::failed) return false;
    if (st == part_status::ok) {  // absent when every string is inline
      pugi::xml_document doc;
      if (!load_xml(text, "xl/sharedStrings.xml", doc, error)) return false;
      for (auto si : child_named(doc, "sst").children()) {
        if (local_name(si) != "si") continue;
        shared.emplace_back();
        append_string_item(si, shared.back());
      }
    }
  }

  std::string sheet_part = first_sheet_part(z.get());
  std::string sheet_text;
  auto st = part_status::missing;
  if (!sheet_part.empty()) st = read_part(z.get(), sheet_part, sheet_text, error);
  if (st == part_status::missing && sheet_part != "xl/worksheets/sheet1.xml") {
    sheet_part = "xl/worksheets/sheet1.xml";
    st = read_part(z.get(), sheet_part, sheet_text, error);
  }
  if (st == part_status::failed) return false;
  if (st == part_status::missing) {
    error =
        "no worksheet: xl/workbook.xml names none that exists and xl/worksheets/sheet1.xml "
        "is missing";
    return false;
  }
  pugi::xml_document doc;
  if (!load_xml(sheet_text, sheet_part, doc, error)) return false;
  sheet_text = std::string();  // the DOM keeps its own copy
  auto sheet_data = child_named(child_named(doc, "worksheet"), "sheetData");
  if (!sheet_data) {
    error = sheet_part + ": no <sheetData>";
    return false;
  }

  sheet_reader reader{shared};
  int id_col = -1, payload_col = -1;
  bool have_header = false;
  std::uint64_t row_number = 0;
  std::string id_text, payload_text, cell, why;
  for (auto row : sheet_data.children()) {
    if (local_name(row) != "row") continue;
    row_number = row.attribute("r").as_ullong(row_number + 1);
    auto row_name = "row " + std::to_string(row_number);
    id_text.clear();
    payload_text.clear();
    int col = -1;
    for (auto c : row.children()) {
      if (local_name(c) != "c") continue;
      auto ref = c.attribute("r");
      col = ref ? column_of(ref.value()) : col + 1;
      if (col < 0) {
        error = row_name + ": bad cell reference \"" + excerpt(ref.value()) + "\"";
        return false;
      }
      if (have_header && col != id_col && col != payload_col) continue;
      if (!reader.cell_text(c, cell, why)) {
        error = row_name + ": " + why;
        return false;
      }
      if (!have_header) {
        auto name = lower(trim(cell));
        if (name == "charge_point_id" && id_col < 0) id_col = col;
        if (name == "payload" && payload_col < 0) payload_col = col;
      } else if (col == id_col) {
        id_text = cell;
      } else {
        payload_text = cell;
      }
    }
    if (!have_header) {
      if (id_col < 0 || payload_col < 0) {
        error = std::string("missing column") + (id_col < 0 && payload_col < 0 ? "s " : " ") +
                (id_col < 0 ? "charge_point_id" : "") +
                (id_col < 0 && payload_col < 0 ? " and " : "") +
                (payload_col < 0 ? "payload" : "") + " in the header (" + row_name + ")";
        return false;
      }
      have_header = true;
      continue;
    }
    auto id = trim(id_text);
    auto payload = trim(payload_text);
    if (id.empty() && payload.empty()) continue;  // blank or formatting-only row
    if (id.empty()) {
      error = row_name + ": empty charge_point_id";
      return false;
    }
    if (payload.empty()) {
      error = row_name + ": empty payload";
      return false;
    }
    json p;
    try {
      p = json::parse(payload);
      if (p.is_string()) {  // payload stored as a JSON string holding the object
        payload_text = p.get<std::string>();
        payload = trim(payload_text);
        p = json::parse(payload);
      }
    } catch (const json::parse_error& e) {
      error = row_name + ": payload is not valid JSON (" + parse_message(e) + ")";
      return false;
    }
    if (!p.is_object()) {
      error = row_name + ": payload is not a JSON object";
      return false;
    }
    std::int64_t ts = 0;
    std::string shown;
    auto ts_st = ocpp_ts(p, ts, shown);
    if (ts_st == ts_status::bad) {
      error = row_name + ": meterValue[0].timestamp " + excerpt(shown) + " is not an RFC 3339 time";
      return false;
    }
    std::string text;
    text.reserve(payload.size() + id.size() + 40);
    text += "{\"charge_point_id\":";
    text += json_quote(id);
    text += ",\"payload\":";
    text += payload;  // verbatim, so numbers keep the exact digits of the file
    text += '}';
    devices.add(std::string(id),
                ts_st == ts_status::ok ? std::optional<std::int64_t>(ts) : std::nullopt,
                std::move(text));
  }
  if (!have_header) {
    error = sheet_part + ": the worksheet is empty (no header row)";
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- CSV

// Splits CSV text into records as RFC 4180 describes: fields separated by
// commas, optionally quoted, "" for a quote inside quotes, line breaks
// inside quotes, CRLF or LF line ends.
class csv_reader {
 public:
  explicit csv_reader(std::string_view text) : text_(text) {}

  // The next record into `fields`; false at the end or on error (then `error` is set).
  bool next(std::vector<std::string>& fields, std::string& error) {
    fields.clear();
    if (pos_ >= text_.size()) return false;
    record_line_ = line_;
    std::string field;
    bool in_quotes = false, after_quotes = false;
    while (true) {
      if (pos_ >= text_.size()) {
        if (in_quotes) {
          error = "row " + std::to_string(record_line_) + ": unterminated quoted field";
          return false;
        }
        fields.push_back(std::move(field));
        return true;
      }
      char c = text_[pos_];
      if (in_quotes) {
        if (c == '"') {
          if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
            field += '"';
            pos_ += 2;
          } else {
            in_quotes = false;
            after_quotes = true;
            ++pos_;
          }
        } else {
          if (c == '\n') ++line_;
          field += c;
          ++pos_;
        }
        continue;
      }
      ++pos_;
      if (c == ',') {
        fields.push_back(std::move(field));
        field.clear();
        after_quotes = false;
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
        ++line_;
        fields.push_back(std::move(field));
        return true;
      } else if (after_quotes) {
        if (c != ' ' && c != '\t') {
          error = "row " + std::to_string(record_line_) + ": text after a closing quote";
          return false;
        }
      } else if (c == '"' && field.empty()) {
        in_quotes = true;
      } else {
        field += c;
      }
    }
  }

  // Line where the last record started (1-based), which is its row number in
  // a spreadsheet view unless earlier fields held line breaks.
  std::size_t record_line() const { return record_line_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
  std::size_t record_line_ = 1;
};

bool blank_record(const std::vector<std::string>& f) { return f.size() == 1 && trim(f[0]).empty(); }

bool load_csv(std::string_view text, device_collector& devices, std::string& error) {
  strip_bom(text);
  csv_reader csv{text};
  std::vector<std::string> header, fields;
  while (true) {
    if (!csv.next(header, error)) {
      if (error.empty()) error = "no header row";
      return false;
    }
    if (!blank_record(header)) break;
  }
  int device_col = -1, ts_col = -1, seq_col = -1;
  struct metric_col {
    std::size_t index;
    std::string name;
    std::string quoted;  // "name": ready to append
  };
  std::vector<metric_col> metrics;
  std::unordered_map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < header.size(); ++i) {
    std::string name(trim(header[i]));
    if (name.empty()) continue;  // e.g. a trailing comma; its cells must stay empty
    if (!seen.emplace(name, i).second) {
      error = "header: column \"" + excerpt(name) + "\" appears twice";
      return false;
    }
    auto key = lower(name);
    auto claim = [&](int& col, const char* what) {
      if (col >= 0) {
        error = std::string("header: more than one ") + what + " column";
        return false;
      }
      col = static_cast<int>(i);
      return true;
    };
    if (key == "device" || key == "device_id") {
      if (!claim(device_col, "device")) return false;
    } else if (key == "ts") {
      if (!claim(ts_col, "ts")) return false;
    } else if (key == "seq") {
      if (!claim(seq_col, "seq")) return false;
    } else {
      metrics.push_back({i, name, json_quote(name) + ":"});
    }
  }
  if (device_col < 0 || ts_col < 0) {
    error = std::string("header: no ") + (device_col < 0 ? "device (or device_id)" : "") +
            (device_col < 0 && ts_col < 0 ? " and no " : "") + (ts_col < 0 ? "ts" : "") + " column";
    return false;
  }
  if (metrics.empty()) {
    error = "header: no metric columns (every column other than device, ts and seq is a metric)";
    return false;
  }

  std::string frame;
  while (csv.next(fields, error)) {
    if (blank_record(fields)) continue;
    auto row = "row " + std::to_string(csv.record_line());
    if (fields.size() != header.size()) {
      bool extra_empty = fields.size() > header.size() &&
                         std::all_of(fields.begin() + static_cast<long>(header.size()),
                                     fields.end(), [](auto& f) { return trim(f).empty(); });
      if (!extra_empty) {
        error = row + ": " + std::to_string(fields.size()) + " fields, the header has " +
                std::to_string(header.size());
        return false;
      }
    }
    for (std::size_t i = 0; i < header.size(); ++i)
      if (trim(header[i]).empty() && !trim(fields[i]).empty()) {
        error = row + ": a value in column " + std::to_string(i + 1) + ", which has no name";
        return false;
      }
    auto device = trim(fields[device_col]);
    if (device.empty()) {
      error = row + ": empty device";
      return false;
    }
    auto ts_text = trim(fields[ts_col]);
    std::int64_t ts = 0;
    if (ts_text.empty()) {
      error = row + ": empty ts";
      return false;
    }
    if (!parse_int64(ts_text, ts) && !parse_rfc3339_ms(ts_text, ts)) {
      error = row + ", column ts: \"" + excerpt(ts_text) +
              "\" is neither ms since the epoch nor an RFC 3339 time";
      return false;
    }
    frame.clear();
    frame += "{\"device\":";
    frame += json_quote(device);
    if (seq_col >= 0) {
      auto seq_text = trim(fields[seq_col]);
      if (!seq_text.empty()) {
        std::uint64_t seq = 0;
        if (!parse_uint64(seq_text, seq)) {
          error = row + ", column seq: \"" + excerpt(seq_text) + "\" is not an unsigned integer";
          return false;
        }
        frame += ",\"seq\":";
        append_int(frame, seq);
      }
    }
    frame += ",\"ts\":";
    append_int(frame, ts);
    frame += ",\"values\":{";
    std::size_t n = 0;
    for (auto& m : metrics) {
      auto cell = trim(fields[m.index]);
      if (cell.empty()) continue;
      double v = 0;
      if (!parse_finite_double(cell, v)) {
        error = row + ", column " + m.name + ": \"" + excerpt(cell) + "\" is not a finite number";
        return false;
      }
      if (n++) frame += ',';
      frame += m.quoted;
      append_double(frame, v);
    }
    if (n == 0) {
      error = row + ": no metric values";
      return false;
    }
    frame += "}}";
    devices.add(std::string(device), ts, frame);
  }
  return error.empty();
}

// ---------------------------------------------------------------- NDJSON

bool load_ndjson(std::string_view text, device_collector& devices, std::string& error) {
  strip_bom(text);
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    auto line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    auto where = "line " + std::to_string(line_no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      error = where + ": not JSON (" + parse_message(e) + ")";
      return false;
    }
    if (!j.is_object()) {
      error = where + ": not a JSON object (expected a reading, a batch or an OCPP frame)";
      return false;
    }
    std::string device;
    for (const char* key : {"device", "charge_point_id"}) {
      auto it = j.find(key);
      if (it != j.end() && it->is_string()) {
        device = it->get<std::string>();
        break;
      }
    }
    if (trim(device).empty()) {
      error = where + ": no \"device\" or \"charge_point_id\" string";
      return false;
    }
    std::int64_t ts = 0;
    auto st = ts_status::absent;
    std::string shown;
    if (auto it = j.find("ts"); it != j.end()) {
      shown = it->dump();
      st = ts_from_json(*it, ts);
    } else if (auto r = j.find("readings"); r != j.end()) {
      if (r->is_array() && !r->empty() && r->front().is_object()) {
        if (auto t = r->front().find("ts"); t != r->front().end()) {
          shown = t->dump();
          st = ts_from_json(*t, ts);
        }
      }
    } else if (auto p = j.find("payload"); p != j.end()) {
      st = ocpp_ts(*p, ts, shown);
    }
    if (st == ts_status::bad) {
      error = where + ": timestamp " + excerpt(shown) +
              " is neither ms since the epoch nor an RFC 3339 time";
      return false;
    }
    devices.add(device, st == ts_status::ok ? std::optional<std::int64_t>(ts) : std::nullopt,
                std::string(line));
  }
  return true;
}

}  // namespace

bool parse_rfc3339_ms(std::string_view s, std::int64_t& out) {
  // One RFC 3339 parser for the whole project: the wire codec's. Files (CSV
  // exports) often separate date and time with a space, which RFC 3339 allows
  // applications to accept; the wire protocol itself does not.
  std::string text{s};
  if (text.size() > 10 && text[10] == ' ') text[10] = 'T';
  auto ms = wire::parse_rfc3339(text);
  if (!ms) return false;
  out = *ms;
  return true;
}

bool load_replay(const std::string& path, const std::string& format, replay_data& out,
                 std::string& error) {
  error.clear();
  std::string fmt = lower(trim(format));
  if (fmt.empty()) {
    fmt = lower(std::filesystem::path(path).extension().string());
    if (!fmt.empty() && fmt.front() == '.') fmt.erase(0, 1);
    if (fmt != "xlsx" && fmt != "csv" && fmt != "ndjson" && fmt != "jsonl") {
      error = "cannot tell the format from the extension \"" + fmt +
              "\"; name the format (xlsx, csv or ndjson)";
      return false;
    }
  }
  if (fmt == "jsonl") fmt = "ndjson";
  if (fmt != "xlsx" && fmt != "csv" && fmt != "ndjson") {
    error = "unknown format \"" + format + "\" (expected xlsx, csv or ndjson)";
    return false;
  }
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) {
    error = "file not found";
    return false;
  }
  if (std::filesystem::is_directory(status)) {
    error = "is a directory, not a file";
    return false;
  }

  device_collector devices;
  bool ok = false;
  try {
    if (fmt == "xlsx") {
      ok = load_xlsx(path, devices, error);
    } else {
      std::string text;
      if (!read_text_file(path, text, error)) return false;
      ok = fmt == "csv" ? load_csv(text, devices, error) : load_ndjson(text, devices, error);
    }
  } catch (const std::bad_alloc&) {
    error = "out of memory while reading the file";
    return false;
  }
  if (!ok) return false;
  replay_data data;
  devices.finish(data);
  if (data.rows == 0) {
    error = "no data rows";
    return false;
  }
  out = std::move(data);
  return true;
}

}  // namespace pulse::sim
