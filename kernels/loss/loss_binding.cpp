#include "kernels/loss/loss_binding.h"

#include <ATen/ATen.h>

#include "util/ignore_label.h"

namespace agora::loss {

kernels::LossDType KernelDType(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return kernels::LossDType::kFloat32;
    case at::kBFloat16: return kernels::LossDType::kBFloat16;
    case at::kHalf: return kernels::LossDType::kFloat16;
    default: TORCH_CHECK(false, "cross-entropy kernels: unsupported dtype ", type);
  }
}

void CheckLaunch(cudaError_t error, const char* kernel) {
  TORCH_CHECK(error == cudaSuccess, kernel, ": CUDA launch failed: ", cudaGetErrorString(error));
}

void CheckFloatType(const at::Tensor& t, const char* function, const char* name) {
  const at::ScalarType type = t.scalar_type();
  TORCH_CHECK(type == at::kFloat || type == at::kBFloat16 || type == at::kHalf, function, ": ", name,
              " must be float32, bfloat16 or float16, got ", type);
}

void CheckOptions(const CrossEntropyOptions& o, const char* function) {
  TORCH_CHECK(o.label_smoothing >= 0 && o.label_smoothing <= 1, function, ": label_smoothing must be in [0, 1], got ",
              o.label_smoothing);
  TORCH_CHECK(o.z_loss >= 0, function, ": z_loss must be >= 0, got ", o.z_loss);
  TORCH_CHECK(o.vocab_tile >= 0 && o.tile_bytes > 0, function, ": vocab_tile must be >= 0 and tile_bytes > 0");
}

void CheckTargets(const at::Tensor& targets, int64_t rows, int64_t vocab, const at::Device& device,
                  const char* function) {
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == rows, function, ": targets must be [", rows, "], got ",
              targets.sizes());
  TORCH_CHECK(targets.scalar_type() == at::kLong, function, ": targets must be int64, got ", targets.scalar_type());
  TORCH_CHECK(targets.device() == device, function, ": targets are on ", targets.device(), ", the inputs on ", device);
  at::Tensor bad = targets.ne(kIgnoreLabel).logical_and(targets.lt(0).logical_or(targets.ge(vocab)));
  if (bad.any().item<bool>()) {
    const int64_t row = bad.nonzero()[0][0].item<int64_t>();
    TORCH_CHECK(false, function, ": target ", targets[row].item<int64_t>(), " of row ", row,
                " is outside the vocabulary [0, ", vocab, ") and is not the ignore index ", kIgnoreLabel);
  }
}

}  // namespace agora::loss
