#pragma once
// The `rollups` column family's merge operator: a rollup row written as a
// Merge operand is merged (rollup_row::merge: count, exact double-double sum,
// min, max, first/last by (ts, seq)) into whatever the key holds, by RocksDB
// when it reads the key or compacts it. So the write path adds a partial row
// without reading the stored one (issue 13: no reads on the write path). The
// merge is associative and commutative, so operands may be combined in any
// grouping. A malformed operand or stored row fails the read or compaction
// with Corruption (nothing is guessed).

#include <memory>

namespace rocksdb {
class MergeOperator;
}

namespace pulse::storage {

std::shared_ptr<rocksdb::MergeOperator> make_rollup_merge_operator();

}  // namespace pulse::storage
