#include "sim/server_message.hpp"

#include <simdjson.h>

namespace pulse::sim {

server_message parse_server_message(std::string_view text) {
  server_message out;
  // The simulator reads ~100k of these a second: simdjson, one parser per thread.
  thread_local simdjson::ondemand::parser parser;
  simdjson::padded_string padded(text);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) {
    out.kind = server_message::malformed;
    return out;
  }
  simdjson::ondemand::object root;
  if (doc.get_object().get(root)) {
    out.kind = server_message::malformed;
    return out;
  }
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) break;
    simdjson::ondemand::object body;
    if (field.value().get_object().get(body)) {
      out.kind = server_message::malformed;
      return out;
    }
    if (key == "ack") out.kind = server_message::ack;
    else if (key == "welcome") out.kind = server_message::welcome;
    else if (key == "error") out.kind = server_message::error;
    else return out;
    for (auto f : body) {
      std::string_view k;
      if (f.unescaped_key().get(k)) break;
      std::string_view s;
      std::uint64_t n = 0;
      if (k == "device" && !f.value().get_string().get(s)) out.device = s;
      else if ((k == "seq" || k == "last_seq") && !f.value().get_uint64().get(n)) {
        out.seq = n;
        out.has_seq = true;
      } else if (k == "code" && !f.value().get_string().get(s)) out.code = s;
      else if (k == "message" && !f.value().get_string().get(s)) out.message = s;
    }
    return out;
  }
  return out;
}

std::string close_cause(std::string_view reason) {
  constexpr std::string_view by_server = "closed by server: ";
  if (reason.rfind("closed by client", 0) == 0) return "client";
  if (reason.rfind(by_server, 0) != 0) return "lost";
  auto rest = reason.substr(by_server.size());
  auto digits = rest.substr(0, rest.find(' '));
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return "lost";
  return std::string(digits);
}

}  // namespace pulse::sim
