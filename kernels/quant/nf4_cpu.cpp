// The ATen path of kernels/quant: NF4 with double quantisation and row-wise int8, each a short sequence of ATen ops
// that mirrors bitsandbytes' PyTorch backend (backends/default/ops.py) op for op, so a CPU run reproduces its bits:
// the same reciprocal-then-multiply, the same float32 midpoints, the same bucketize tie rule, torch's own mean.
#include <string>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "kernels/quant/nf4.h"
#include "kernels/quant/quant_checks.h"
#include "util/status_macros.h"

namespace agora::quant {
namespace {

absl::Status CheckFinite(const at::Tensor& weight, const std::string& what, const std::string& name) {
  if (at::isfinite(weight).all().item<bool>()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " of ", name, " (shape ", ShapeString(weight.sizes()),
                                                 "): the weight holds NaN or infinite values"));
}

// A code book of code_books.h as a float32 tensor on `device`.
at::Tensor CodeBook(const float* values, int64_t size, const at::Device& device) {
  return at::from_blob(const_cast<float*>(values), {size}, at::kFloat).to(device, /*non_blocking=*/false, /*copy=*/true);
}

// Codes (int32, the nearest code book entry) and absmax (float32) per block of `block` values of a flat float32
// tensor: bitsandbytes' default quantize_4bit and quantize_blockwise, which share these steps. Full blocks multiply by
// the float32 reciprocal of their absmax; a last partial block divides by its absmax. Values on a midpoint between
// two entries take the lower (bucketize with right=false; bitsandbytes' CUDA NF4 decision tree has the same
// thresholds and rule).
struct Blockwise {
  at::Tensor codes, absmax;
};
Blockwise QuantizeBlockwise(const at::Tensor& values, int64_t block, const at::Tensor& code) {
  const int64_t n = values.numel();
  const int64_t full = n / block * block;
  const at::Tensor blocks = values.narrow(0, 0, full).view({full / block, block});
  at::Tensor absmax = blocks.abs().amax(1);
  // 1e-38 as bitsandbytes clamps: a block of zeros scales to zeros instead of NaN.
  at::Tensor scaled = (blocks * absmax.clamp_min(1e-38).reciprocal().view({-1, 1})).clamp(-1, 1).view(-1);
  if (full < n) {
    const at::Tensor tail = values.narrow(0, full, n - full);
    const at::Tensor tail_absmax = tail.abs().max().clamp_min(1e-38);
    absmax = at::cat({absmax, tail_absmax.unsqueeze(0)});
    scaled = at::cat({scaled, (tail / tail_absmax).clamp(-1, 1)});
  }
  const int64_t entries = code.numel();
  const at::Tensor midpoints = (code.narrow(0, 0, entries - 1) + code.narrow(0, 1, entries - 1)) / 2;
  return {at::bucketize(scaled, midpoints, /*out_int32=*/true, /*right=*/false), absmax};
}

}  // namespace

int64_t Nf4Weight::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Nf4Weight::bytes() const {
  return packed.nbytes() + absmax_codes.nbytes() + absmax2.nbytes() + static_cast<int64_t>(sizeof(offset));
}

int64_t Int8Weight::bytes() const { return codes.nbytes() + absmax.nbytes(); }

absl::Status CheckNf4Weight(const Nf4Weight& w, const std::string& name) {
  const std::string shape = ShapeString(w.shape);
  for (int64_t d : w.shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("NF4 weight ", name, ": shape ", shape, " is negative"));
  }
  const int64_t n = w.numel();
  if (n == 0 || n % kNf4BlockSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat("NF4 weight ", name, ": shape ", shape, " has ", n,
                                                   " elements, not a positive multiple of ", kNf4BlockSize));
  }
  const int64_t blocks = n / kNf4BlockSize;
  struct Part {
    const at::Tensor& tensor;
    const char* field;
    at::ScalarType dtype;
    int64_t size;
  };
  for (const Part& p : {Part{w.packed, "packed", at::kByte, n / 2}, Part{w.absmax_codes, "absmax_codes", at::kByte, blocks},
                        Part{w.absmax2, "absmax2", at::kFloat, (blocks + kAbsmaxBlockSize - 1) / kAbsmaxBlockSize}}) {
    const auto fail = [&](auto&&... why) {
      return absl::InvalidArgumentError(absl::StrCat("NF4 weight ", name, " (shape ", shape, "): ", p.field, " ", why...));
    };
    if (!p.tensor.defined()) return fail("is missing");
    if (p.tensor.scalar_type() != p.dtype) {
      return fail("must be ", c10::toString(p.dtype), ", got ", c10::toString(p.tensor.scalar_type()));
    }
    if (p.tensor.dim() != 1 || p.tensor.size(0) != p.size) {
      return fail("must be [", p.size, "], got ", ShapeString(p.tensor.sizes()));
    }
    if (!p.tensor.is_contiguous()) return fail("must be contiguous");
    if (p.tensor.device() != w.packed.device()) {
      return fail("is on ", p.tensor.device().str(), ", packed on ", w.packed.device().str());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Nf4Weight> QuantizeNf4(const at::Tensor& weight, const std::string& name) {
  AGORA_RETURN_IF_ERROR(CheckFloatDType(weight.scalar_type(), "NF4 quantisation", name));
  const int64_t n = weight.numel();
  if (n == 0 || n % kNf4BlockSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NF4 quantisation of ", name, ": shape ", ShapeString(weight.sizes()), " has ", n,
        " elements, not a positive multiple of ", kNf4BlockSize, " (bitsandbytes' block of one absmax)"));
  }
  AGORA_RETURN_IF_ERROR(CheckFinite(weight, "NF4 quantisation", name));
  const at::Device device = weight.device();

  const Blockwise nf4 = QuantizeBlockwise(weight.reshape(-1).to(at::kFloat), kNf4BlockSize, CodeBook(kNf4Code, 16, device));
  const at::Tensor pairs = nf4.codes.view({-1, 2});
  Nf4Weight out;
  out.packed = (pairs.select(1, 0) * 16 + pairs.select(1, 1)).to(at::kByte);
  out.shape = weight.sizes().vec();

  // Double quantisation: the absmax values are positive and similar, so they are centred on their mean first and
  // the 8-bit dynamic type spends its resolution on the deviations.
  const at::Tensor offset = nf4.absmax.mean();
  const Blockwise scales =
      QuantizeBlockwise(nf4.absmax - offset, kAbsmaxBlockSize, CodeBook(kDynamicMap, 256, device));
  out.absmax_codes = scales.codes.to(at::kByte);
  out.absmax2 = scales.absmax;
  out.offset = offset.item<float>();
  return out;
}

absl::StatusOr<at::Tensor> DequantizeNf4(const Nf4Weight& w, at::ScalarType out_dtype, const std::string& name) {
  AGORA_RETURN_IF_ERROR(CheckNf4Weight(w, name));
  AGORA_RETURN_IF_ERROR(CheckFloatDType(out_dtype, "NF4 dequantisation", name));
  const at::Device device = w.packed.device();
  const int64_t blocks = w.numel() / kNf4BlockSize;
  // Two roundings, as bitsandbytes: dequantize_blockwise's product, then `absmax += offset`.
  const at::Tensor absmax2 = w.absmax2.repeat_interleave(kAbsmaxBlockSize).narrow(0, 0, blocks);
  const at::Tensor absmax =
      CodeBook(kDynamicMap, 256, device).index_select(0, w.absmax_codes.to(at::kLong)) * absmax2 + w.offset;
  const at::Tensor nibbles = at::stack({w.packed.bitwise_right_shift(4), w.packed.bitwise_and(15)}, 1).view(-1);
  const at::Tensor values = CodeBook(kNf4Code, 16, device).index_select(0, nibbles.to(at::kLong));
  return (values.view({blocks, kNf4BlockSize}) * absmax.view({-1, 1})).view(w.shape).to(out_dtype);
}

absl::StatusOr<at::Tensor> LinearNf4(const at::Tensor& x, const Nf4Weight& w, const std::string& name) {
  AGORA_RETURN_IF_ERROR(CheckNf4Weight(w, name));
  AGORA_RETURN_IF_ERROR(CheckLinearInput(x, w.shape, w.packed.device(), name));
  AGORA_ASSIGN_OR_RETURN(const at::Tensor weight, DequantizeNf4(w, at::kFloat, name));
  return at::matmul(x.to(at::kFloat), weight.t()).to(x.scalar_type());
}

absl::StatusOr<Int8Weight> QuantizeInt8Rows(const at::Tensor& weight, const std::string& name) {
  AGORA_RETURN_IF_ERROR(CheckFloatDType(weight.scalar_type(), "int8 quantisation", name));
  if (weight.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("int8 quantisation of ", name, ": needs a 2-D weight [rows, cols], got shape ",
                                                   ShapeString(weight.sizes())));
  }
  AGORA_RETURN_IF_ERROR(CheckFinite(weight, "int8 quantisation", name));
  Int8Weight out;
  out.absmax = weight.abs().amax(1).to(at::kFloat);
  const at::Tensor scale = at::where(out.absmax > 0, out.absmax.reciprocal() * 127.0, 0);
  out.codes = at::round(weight * scale.unsqueeze(-1)).to(at::kChar);
  return out;
}

absl::StatusOr<at::Tensor> DequantizeInt8Rows(const Int8Weight& w, at::ScalarType out_dtype, const std::string& name) {
  AGORA_RETURN_IF_ERROR(CheckFloatDType(out_dtype, "int8 dequantisation", name));
  if (!w.codes.defined() || !w.absmax.defined() || w.codes.scalar_type() != at::kChar ||
      w.absmax.scalar_type() != at::kFloat || w.codes.dim() != 2 || w.absmax.dim() != 1 ||
      w.absmax.size(0) != w.codes.size(0) || w.codes.device() != w.absmax.device()) {
    return absl::InvalidArgumentError(absl::StrCat("int8 weight ", name,
                                                   ": needs int8 codes [rows, cols] and float32 absmax [rows] on one device"));
  }
  return (w.codes * w.absmax.view({-1, 1}) * 7.874015718698502e-3).to(out_dtype);
}

}  // namespace agora::quant
