#include "storage/chunk.hpp"

#include <algorithm>
#include <cassert>

#include "storage/codec.hpp"
#include "storage/keys.hpp"
#include "storage/model.hpp"

namespace pulse::storage {

void chunk_encoder::begin(std::string& out, std::size_t count, std::int64_t first_ts,
                          std::uint64_t first_seq) {
  out_ = &out;
  prev_ts_ = first_ts;
  prev_seq_ = first_seq;
  prev_n_ = 0;
  out.push_back(static_cast<char>(chunk_version));
  codec::put_varint(out, count);
}

void chunk_encoder::add(std::int64_t ts, std::uint64_t seq, const chunk_value* values,
                        std::size_t n) {
  assert(n >= 1 && n <= max_metrics_per_reading);
  assert(ts >= prev_ts_);
  auto& out = *out_;
  codec::put_varint(out, static_cast<std::uint64_t>(ts - prev_ts_));
  // Wrapping difference: any two u64 are one zigzag varint apart.
  codec::put_varint(out, codec::zigzag(static_cast<std::int64_t>(seq - prev_seq_)));
  bool same = n == prev_n_;
  for (std::size_t i = 0; same && i < n; ++i) same = values[i].metric == prev_ids_[i];
  codec::put_varint(out, (static_cast<std::uint64_t>(n) << 1) | (same ? 1 : 0));
  for (std::size_t i = 0; i < n; ++i) {
    if (!same) {
      codec::put_varint(out, values[i].metric);
      prev_ids_[i] = values[i].metric;
    }
    codec::put_double(out, values[i].value);
  }
  prev_n_ = n;
  prev_ts_ = ts;
  prev_seq_ = seq;
}

chunk_row encode_chunk(std::vector<chunk_row>& rows, const std::vector<chunk_value>& values,
                       std::string& out) {
  assert(!rows.empty());
  if (!std::is_sorted(rows.begin(), rows.end(), row_less))
    std::sort(rows.begin(), rows.end(), row_less);
  chunk_encoder enc;
  enc.begin(out, rows.size(), rows.front().ts, rows.front().seq);
  for (const auto& r : rows) enc.add(r.ts, r.seq, values.data() + r.first, r.count);
  return rows.front();
}

bool decode_chunk(std::string_view data, std::int64_t first_ts, std::uint64_t first_seq,
                  decoded_chunk& out) {
  const auto rows_before = out.rows.size();
  const auto values_before = out.values.size();
  auto fail = [&] {
    out.rows.resize(rows_before);
    out.values.resize(values_before);
    return false;
  };
  if (first_ts < 0 || first_ts > max_ts) return false;
  codec::reader r(data);
  std::uint8_t version;
  std::uint64_t count;
  if (!r.get_u8(version) || version != chunk_version || !r.get_varint(count) || count == 0)
    return false;
  // Each reading takes at least 3 framing bytes and one 8-byte value: bound
  // the reservation by what the input can actually hold.
  if (count > r.remaining() / 11) return false;
  out.rows.reserve(rows_before + count);
  std::int64_t ts = first_ts;
  std::uint64_t seq = first_seq;
  std::uint32_t ids[max_metrics_per_reading];
  std::size_t prev_n = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t dts, dseq, header;
    if (!r.get_varint(dts) || !r.get_varint(dseq) || !r.get_varint(header)) return fail();
    if (dts > static_cast<std::uint64_t>(max_ts - ts)) return fail();
    auto next_ts = ts + static_cast<std::int64_t>(dts);
    auto next_seq = seq + static_cast<std::uint64_t>(codec::unzigzag(dseq));
    // Strictly increasing (ts, seq); the first reading may equal the base.
    if (i > 0 && dts == 0 && next_seq <= seq) return fail();
    ts = next_ts;
    seq = next_seq;
    auto n = header >> 1;
    bool same = header & 1;
    if (n == 0 || n > max_metrics_per_reading) return fail();
    if (same && (i == 0 || n != prev_n)) return fail();
    chunk_row row;
    row.ts = ts;
    row.seq = seq;
    row.first = static_cast<std::uint32_t>(out.values.size());
    row.count = static_cast<std::uint16_t>(n);
    for (std::uint64_t k = 0; k < n; ++k) {
      chunk_value v;
      if (!same && !r.get_varint32(ids[k])) return fail();
      v.metric = ids[k];
      if (!r.get_double(v.value)) return fail();
      out.values.push_back(v);
    }
    prev_n = n;
    out.rows.push_back(row);
  }
  if (!r.done()) return fail();
  return true;
}

}  // namespace pulse::storage
