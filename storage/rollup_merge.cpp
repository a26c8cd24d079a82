#include "storage/rollup_merge.hpp"

#include <rocksdb/merge_operator.h>

#include "storage/rollup.hpp"

namespace pulse::storage {

namespace {

class rollup_merge final : public rocksdb::MergeOperator {
 public:
  const char* Name() const override { return "pulse.rollup_row.v1"; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    rollup_row sum, part;
    if (in.existing_value &&
        !decode_rollup_row({in.existing_value->data(), in.existing_value->size()}, sum))
      return false;
    for (const auto& op : in.operand_list) {
      if (!decode_rollup_row({op.data(), op.size()}, part)) return false;
      sum.merge(part);
    }
    out->new_value.clear();
    encode_rollup_row(sum, out->new_value);
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice&, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger*) const override {
    rollup_row sum, part;
    for (const auto& op : operands) {
      if (!decode_rollup_row({op.data(), op.size()}, part)) return false;
      sum.merge(part);
    }
    new_value->clear();
    encode_rollup_row(sum, *new_value);
    return true;
  }

  bool AllowSingleOperand() const override { return false; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> make_rollup_merge_operator() {
  return std::make_shared<rollup_merge>();
}

}  // namespace pulse::storage
