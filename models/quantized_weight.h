// A frozen projection stored quantised, the base of a QLoRA run (recipe key lora.quantize_base): NF4 with
// double-quantised scales (0.516 bytes a parameter) or row-wise int8, built from the checkpoint's tensor as it is
// read (models/checkpoint.cpp), so the dense model never exists in memory. The storage and its kernels are
// kernels/quant; this is what LinearImpl multiplies by.
#pragma once

#include <memory>
#include <string>
#include <variant>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "kernels/quant/nf4.h"
#include "models/base_quantization.h"

namespace agora {

class QuantizedWeight {
 public:
  // `weight` [out, in] in any float dtype, on the device the quantised copy will live on. Errors name `name`.
  static absl::StatusOr<std::shared_ptr<const QuantizedWeight>> Quantize(const at::Tensor& weight,
                                                                         BaseQuantization kind, const std::string& name);

  // The dense weight [out, in] as `dtype`, on the storage's device.
  at::Tensor Dequantize(at::ScalarType dtype) const;

  BaseQuantization kind() const;
  int64_t numel() const;
  int64_t bytes() const;  // what the storage holds: codes and scales
  const std::string& name() const { return name_; }
  const quant::Nf4Weight* nf4() const { return std::get_if<quant::Nf4Weight>(&storage_); }

 private:
  QuantizedWeight(std::string name, std::variant<quant::Nf4Weight, quant::Int8Weight> storage)
      : name_(std::move(name)), storage_(std::move(storage)) {}

  std::string name_;
  std::variant<quant::Nf4Weight, quant::Int8Weight> storage_;
};

// y = x W^T in x's dtype. Autograd reaches x only (the base is frozen), and backward dequantises the weight again
// instead of keeping a dense copy alive per layer: that copy is what QLoRA saves.
at::Tensor QuantizedLinear(const at::Tensor& x, std::shared_ptr<const QuantizedWeight> weight);

}  // namespace agora
