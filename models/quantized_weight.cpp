#include "models/quantized_weight.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/custom_function.h>

#include "absl/strings/str_cat.h"
#include "kernels/quant/nf4_binding.h"

namespace agora {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Inside forward and backward there is no Status to return: a failure (a broken storage) becomes a torch error,
// which the commands turn into one error line.
template <typename T>
T Unwrap(absl::StatusOr<T> value) {
  TORCH_CHECK(value.ok(), std::string(value.status().message()));
  return *std::move(value);
}

// The weight travels to backward inside the autograd context, which stores IValues: a capsule holds it.
struct WeightRef : torch::CustomClassHolder {
  explicit WeightRef(std::shared_ptr<const QuantizedWeight> w) : weight(std::move(w)) {}
  std::shared_ptr<const QuantizedWeight> weight;
};

// x W^T with W rebuilt from its codes in both directions: nothing dense outlives the call.
class QuantizedLinearFunction : public torch::autograd::Function<QuantizedLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, c10::intrusive_ptr<WeightRef> ref) {
    const QuantizedWeight* weight = ref->weight.get();
    // NF4: a few rows (decoding) take the fused dequantise + GEMV kernel on CUDA; more rows, or the CPU,
    // dequantise into a scratch weight and multiply.
    const quant::Nf4Weight* nf4 = weight->nf4();
    at::Tensor y = nf4 != nullptr ? Unwrap(quant::Nf4Gemv(x, *nf4, weight->name()))
                                  : at::matmul(x, weight->Dequantize(x.scalar_type()).t());
    ctx->saved_data["weight"] = c10::IValue::make_capsule(std::move(ref));
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto ref = c10::static_intrusive_pointer_cast<WeightRef>(ctx->saved_data["weight"].toCapsule());
    const QuantizedWeight* weight = ref->weight.get();
    const at::Tensor& grad_y = grad_outputs[0];
    return {at::matmul(grad_y, weight->Dequantize(grad_y.scalar_type())), at::Tensor()};
  }
};

}  // namespace

absl::StatusOr<std::shared_ptr<const QuantizedWeight>> QuantizedWeight::Quantize(const at::Tensor& weight,
                                                                                 BaseQuantization kind,
                                                                                 const std::string& name) {
  if (weight.dim() != 2)
    return absl::InvalidArgumentError(absl::StrCat(name, ": only 2-D projection weights are quantised"));
  switch (kind) {
    case BaseQuantization::kNf4: {
      absl::StatusOr<quant::Nf4Weight> nf4 = quant::QuantizeNf4(weight, name);
      if (!nf4.ok()) return nf4.status();
      return std::shared_ptr<const QuantizedWeight>(new QuantizedWeight(name, *std::move(nf4)));
    }
    case BaseQuantization::kInt8: {
      absl::StatusOr<quant::Int8Weight> int8 = quant::QuantizeInt8Rows(weight, name);
      if (!int8.ok()) return int8.status();
      return std::shared_ptr<const QuantizedWeight>(new QuantizedWeight(name, *std::move(int8)));
    }
    case BaseQuantization::kNone: break;
  }
  return absl::InvalidArgumentError(absl::StrCat(name, ": no quantisation asked for"));
}

at::Tensor QuantizedWeight::Dequantize(at::ScalarType dtype) const {
  if (const auto* nf4 = std::get_if<quant::Nf4Weight>(&storage_)) return Unwrap(quant::Nf4Dequantize(*nf4, dtype, name_));
  return Unwrap(quant::DequantizeInt8Rows(std::get<quant::Int8Weight>(storage_), dtype, name_));
}

at::Tensor QuantizedLinear(const at::Tensor& x, std::shared_ptr<const QuantizedWeight> weight) {
  return QuantizedLinearFunction::apply(x, c10::make_intrusive<WeightRef>(std::move(weight)));
}

BaseQuantization QuantizedWeight::kind() const {
  return std::holds_alternative<quant::Nf4Weight>(storage_) ? BaseQuantization::kNf4 : BaseQuantization::kInt8;
}

int64_t QuantizedWeight::numel() const {
  if (const auto* nf4 = std::get_if<quant::Nf4Weight>(&storage_)) return nf4->numel();
  return std::get<quant::Int8Weight>(storage_).codes.numel();
}

int64_t QuantizedWeight::bytes() const {
  return std::visit([](const auto& storage) { return storage.bytes(); }, storage_);
}

}  // namespace agora
