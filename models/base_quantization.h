// How the frozen base of a LoRA run is stored (recipe key lora.quantize_base), apart from the quantisation code so
// a recipe can name it without torch.
#pragma once

#include <string>

namespace agora {

enum class BaseQuantization {
  kNone,  // the projections in the model's dtype
  kNf4,   // QLoRA: 4-bit NormalFloat, blocks of 64, double-quantised scales (kernels/quant/nf4.h): 0.516 bytes/param
  kInt8,  // LLM.int8()'s row-wise absmax int8 (without outlier columns): 1 byte/param plus a scale per row
};

inline std::string BaseQuantizationName(BaseQuantization q) {
  return q == BaseQuantization::kNone ? "none" : q == BaseQuantization::kNf4 ? "nf4" : "int8";
}

}  // namespace agora
