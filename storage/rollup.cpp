#include "storage/rollup.hpp"

#include <algorithm>
#include <cmath>

#include "storage/codec.hpp"
#include "storage/keys.hpp"

namespace pulse::storage {

namespace {

// Knuth's TwoSum: s + err == a + b exactly (for finite inputs without overflow).
inline void two_sum(double a, double b, double& s, double& err) {
  s = a + b;
  double bb = s - a;
  err = (a - (s - bb)) + (b - bb);
}

// sum() is hi + lo; a zero lo carries hi's sign so that a sum of -0.0 terms
// stays -0.0 as in IEEE arithmetic (-0.0 + +0.0 would give +0.0).
inline double signed_zero_lo(double hi, double lo) { return lo == 0 ? std::copysign(0.0, hi) : lo; }

// Adds the double-double (b_hi, b_lo) into (hi, lo) and renormalizes so that
// hi is the double nearest the sum: then sum() = hi + lo rounds the same way
// whatever order the terms came in (up to an error of ~2^-104 relative).
inline void dd_add(double& hi, double& lo, double b_hi, double b_lo) {
  double s, e;
  two_sum(hi, b_hi, s, e);
  if (!std::isfinite(s)) {
    // Past DBL_MAX the error terms are inf - inf = NaN; keep the infinite sum.
    hi = s;
    lo = 0;
    return;
  }
  e += lo + b_lo;
  if (e == 0) {
    hi = s;
    lo = 0;
  } else {
    two_sum(s, e, hi, lo);
  }
  lo = signed_zero_lo(hi, lo);
}

inline bool before(std::int64_t ts_a, std::uint64_t seq_a, std::int64_t ts_b, std::uint64_t seq_b) {
  return ts_a != ts_b ? ts_a < ts_b : seq_a < seq_b;
}

// min/max treat -0.0 as below +0.0 so that the result is independent of order.
inline bool less_for_min(double v, double cur) { return v < cur || (v == cur && std::signbit(v)); }
inline bool greater_for_max(double v, double cur) {
  return v > cur || (v == cur && !std::signbit(v));
}

}  // namespace

void aggregate::add(double v, std::int64_t ts, std::uint64_t seq) {
  if (count == 0) {
    count = 1;
    sum_hi = v;
    sum_lo = signed_zero_lo(v, 0);
    min = max = first = last = v;
    first_ts = last_ts = ts;
    first_seq = last_seq = seq;
    return;
  }
  ++count;
  dd_add(sum_hi, sum_lo, v, 0);
  if (less_for_min(v, min)) min = v;
  if (greater_for_max(v, max)) max = v;
  if (before(ts, seq, first_ts, first_seq)) {
    first = v;
    first_ts = ts;
    first_seq = seq;
  }
  if (before(last_ts, last_seq, ts, seq)) {
    last = v;
    last_ts = ts;
    last_seq = seq;
  }
}

void aggregate::merge(const aggregate& o) {
  if (o.count == 0) return;
  if (count == 0) {
    *this = o;
    return;
  }
  count += o.count;
  dd_add(sum_hi, sum_lo, o.sum_hi, o.sum_lo);
  if (less_for_min(o.min, min)) min = o.min;
  if (greater_for_max(o.max, max)) max = o.max;
  if (before(o.first_ts, o.first_seq, first_ts, first_seq)) {
    first = o.first;
    first_ts = o.first_ts;
    first_seq = o.first_seq;
  }
  if (before(last_ts, last_seq, o.last_ts, o.last_seq)) {
    last = o.last;
    last_ts = o.last_ts;
    last_seq = o.last_seq;
  }
}

aggregate& rollup_row::at(std::uint32_t metric) {
  auto i = std::lower_bound(entries.begin(), entries.end(), metric,
                            [](const rollup_entry& e, std::uint32_t m) { return e.metric < m; });
  if (i == entries.end() || i->metric != metric) {
    rollup_entry e;
    e.metric = metric;
    i = entries.insert(i, e);
  }
  return i->agg;
}

const aggregate* rollup_row::find(std::uint32_t metric) const {
  auto i = std::lower_bound(entries.begin(), entries.end(), metric,
                            [](const rollup_entry& e, std::uint32_t m) { return e.metric < m; });
  if (i == entries.end() || i->metric != metric) return nullptr;
  return &i->agg;
}

void rollup_row::merge(const rollup_row& other) {
  for (const auto& e : other.entries) at(e.metric).merge(e.agg);
}

void encode_rollup_row(const rollup_row& row, std::string& out) {
  out.push_back(static_cast<char>(rollup_version));
  std::size_t n = 0;
  for (const auto& e : row.entries) n += e.agg.count > 0;
  codec::put_varint(out, n);
  for (const auto& e : row.entries) {
    const auto& a = e.agg;
    if (a.count == 0) continue;
    codec::put_varint(out, e.metric);
    codec::put_varint(out, a.count);
    codec::put_double(out, a.sum_hi);
    codec::put_double(out, a.sum_lo);
    codec::put_double(out, a.min);
    codec::put_double(out, a.max);
    codec::put_double(out, a.first);
    codec::put_double(out, a.last);
    codec::put_varint(out, static_cast<std::uint64_t>(a.first_ts));
    codec::put_varint(out, static_cast<std::uint64_t>(a.last_ts - a.first_ts));
    codec::put_varint(out, a.first_seq);
    codec::put_varint(out, a.last_seq);
  }
}

bool decode_rollup_row(std::string_view data, rollup_row& out) {
  out.clear();
  auto fail = [&] {
    out.clear();
    return false;
  };
  codec::reader r(data);
  std::uint8_t version;
  std::uint64_t n;
  if (!r.get_u8(version) || version != rollup_version || !r.get_varint(n)) return false;
  // An entry takes at least 48 bytes of doubles plus 6 varint bytes.
  if (n > r.remaining() / 54) return false;
  out.entries.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    rollup_entry e;
    auto& a = e.agg;
    std::uint64_t first_ts, span;
    if (!r.get_varint32(e.metric) || !r.get_varint(a.count) || !r.get_double(a.sum_hi) ||
        !r.get_double(a.sum_lo) || !r.get_double(a.min) || !r.get_double(a.max) ||
        !r.get_double(a.first) || !r.get_double(a.last) || !r.get_varint(first_ts) ||
        !r.get_varint(span) || !r.get_varint(a.first_seq) || !r.get_varint(a.last_seq))
      return fail();
    if (a.count == 0 || first_ts > static_cast<std::uint64_t>(max_ts) ||
        span > static_cast<std::uint64_t>(max_ts) - first_ts)
      return fail();
    if (!out.entries.empty() && e.metric <= out.entries.back().metric) return fail();
    a.first_ts = static_cast<std::int64_t>(first_ts);
    a.last_ts = a.first_ts + static_cast<std::int64_t>(span);
    if (span == 0 && a.last_seq < a.first_seq) return fail();
    out.entries.push_back(e);
  }
  if (!r.done()) return fail();
  return true;
}

}  // namespace pulse::storage
