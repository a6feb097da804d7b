#include "trainer/rng_state.h"

#include <cstring>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace agora {
namespace {

std::string Encode(const at::Tensor& state) {
  at::Tensor bytes = state.contiguous();
  std::string raw(static_cast<const char*>(bytes.data_ptr()), bytes.nbytes());
  std::string out;
  absl::Base64Escape(raw, &out);
  return out;
}

at::Device DeviceOf(const std::string& key) {
  return key == "cpu" ? at::Device(at::kCPU) : at::Device(key);
}

}  // namespace

std::map<std::string, std::string> CaptureRngStates() {
  std::map<std::string, std::string> out;
  out["cpu"] = Encode(at::globalContext().defaultGenerator(at::kCPU).get_state());
  if (at::hasCUDA()) {
    for (int i = 0; i < static_cast<int>(at::getNumGPUs()); ++i) {
      const at::Device device(at::kCUDA, static_cast<at::DeviceIndex>(i));
      out[device.str()] = Encode(at::globalContext().defaultGenerator(device).get_state());
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> RestoreRngStates(const std::map<std::string, std::string>& states) {
  std::vector<std::string> skipped;
  for (const auto& [key, encoded] : states) {
    const at::Device device = DeviceOf(key);
    if (device.is_cuda() && (!at::hasCUDA() || device.index() >= static_cast<int>(at::getNumGPUs()))) {
      skipped.push_back(key);
      continue;
    }
    std::string raw;
    if (!absl::Base64Unescape(encoded, &raw))
      return absl::DataLossError(absl::StrCat("RNG state of ", key, " is not valid base64"));
    at::Tensor state = at::empty({static_cast<int64_t>(raw.size())}, at::kByte);
    std::memcpy(state.data_ptr(), raw.data(), raw.size());
    at::Generator generator = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state);
  }
  return skipped;
}

}  // namespace agora
