#include "cli/generation_requests.h"

#include <fstream>
#include <limits>
#include <set>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace agora::cli {
namespace {

using nlohmann::json;

// nlohmann's get<int64_t>() casts a float (1.5, 1e300) to an integer, which for large values is undefined
// behaviour: integers are taken only from JSON integers that fit.
int64_t Integer(const json& value) {
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw std::invalid_argument("integer too large");
  if (!value.is_number_integer()) throw std::invalid_argument(absl::StrCat("expected an integer, got ", value.dump()));
  return value.get<int64_t>();
}

std::vector<int64_t> Integers(const json& value) {
  if (!value.is_array()) throw std::invalid_argument("expected a list of integers");
  std::vector<int64_t> out;
  for (const json& v : value) out.push_back(Integer(v));
  return out;
}

// The request in `j` over `defaults`; the error names the field.
absl::Status ParseRequest(const json& j, const SamplingOptions& defaults, RequestLine& r) {
  if (!j.is_object()) return absl::InvalidArgumentError("expected a JSON object");
  r.sampling = defaults;
  SamplingOptions& s = r.sampling;
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "id") {
        if (!value.is_string() && !value.is_number_integer())
          return absl::InvalidArgumentError("id: expected a string or an integer");
        r.id = value.is_string() ? value.get<std::string>() : value.dump();
      } else if (key == "prompt") {
        r.prompt = value.get<std::string>();
      } else if (key == "prompt_ids") {
        r.prompt_ids = Integers(value);
      } else if (key == "messages") {
        if (!value.is_array() || value.empty())
          return absl::InvalidArgumentError("messages: expected a list of {role, content}");
        Conversation c;
        for (const json& m : value)
          c.messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
        r.messages = std::move(c);
      } else if (key == "max_new_tokens") {
        s.max_new_tokens = Integer(value);
      } else if (key == "temperature") {
        s.temperature = value.get<double>();
      } else if (key == "top_k") {
        s.top_k = Integer(value);
      } else if (key == "top_p") {
        s.top_p = value.get<double>();
      } else if (key == "min_p") {
        s.min_p = value.get<double>();
      } else if (key == "repetition_penalty") {
        s.repetition_penalty = value.get<double>();
      } else if (key == "no_repeat_ngram_size") {
        s.no_repeat_ngram_size = Integer(value);
      } else if (key == "seed") {
        if (!value.is_number_unsigned()) return absl::InvalidArgumentError("seed: expected an integer >= 0");
        s.seed = value.get<uint64_t>();
      } else if (key == "stop") {
        s.stop_strings = value.is_string() ? std::vector<std::string>{value.get<std::string>()}
                                           : value.get<std::vector<std::string>>();
      } else if (key == "logit_bias") {
        if (!value.is_object()) return absl::InvalidArgumentError("logit_bias: expected {\"token id\": bias}");
        for (const auto& [token, bias] : value.items()) {
          int64_t id = 0;
          if (!absl::SimpleAtoi(token, &id) || id < 0)
            return absl::InvalidArgumentError(absl::StrCat("logit_bias: '", token, "' is not a token id"));
          s.logit_bias.emplace_back(id, bias.get<double>());
        }
      } else if (key == "adapter") {
        r.use_adapter = value.get<bool>();
      } else if (key == "choices") {
        r.choices = value.get<std::vector<std::string>>();
        if (r.choices.empty()) return absl::InvalidArgumentError("choices: expected at least one");
      } else if (key == "integer_range") {
        const std::vector<int64_t> range = Integers(value);
        // hi - lo in unsigned arithmetic: the signed difference of [-2^63, 2^63 - 1] would overflow.
        if (range.size() != 2 || range[0] > range[1] ||
            static_cast<uint64_t>(range[1]) - static_cast<uint64_t>(range[0]) >= 10000)
          return absl::InvalidArgumentError("integer_range: expected [lo, hi] with lo <= hi, at most 10000 values");
        for (int64_t v = range[0];; ++v) {  // stops at hi itself: v <= hi would step past INT64_MAX
          r.choices.push_back(std::to_string(v));
          if (v == range[1]) break;
        }
      } else {
        return absl::InvalidArgumentError(absl::StrCat("unknown field '", key, "'"));
      }
    } catch (const std::exception& e) {  // nlohmann's type errors, Integer's
      return absl::InvalidArgumentError(absl::StrCat(key, ": ", e.what()));
    }
  }
  if (r.id.empty()) return absl::InvalidArgumentError("id: required");
  if (r.prompt.has_value() + r.messages.has_value() + r.prompt_ids.has_value() != 1)
    return absl::InvalidArgumentError("give exactly one of prompt, messages and prompt_ids");
  if (s.temperature < 0 || s.top_p <= 0 || s.top_p > 1 || s.min_p < 0 || s.min_p > 1 || s.repetition_penalty <= 0 ||
      s.top_k < 0 || s.no_repeat_ngram_size < 0)
    return absl::InvalidArgumentError(
        "sampling: expected temperature >= 0, 0 < top_p <= 1, 0 <= min_p <= 1, repetition_penalty > 0, top_k >= 0, "
        "no_repeat_ngram_size >= 0");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<RequestLine>> ReadRequestLines(const std::filesystem::path& path,
                                                          const SamplingOptions& defaults, bool skip_bad_lines,
                                                          int64_t* skipped) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::vector<RequestLine> requests;
  std::set<std::string> ids;
  int64_t number = 0;
  for (std::string text; std::getline(in, text);) {
    ++number;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    RequestLine r;
    r.line = number;
    absl::Status status;
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    status = j.is_discarded() ? absl::InvalidArgumentError("not valid JSON") : ParseRequest(j, defaults, r);
    if (status.ok() && !ids.insert(r.id).second)
      status = absl::InvalidArgumentError(absl::StrCat("id '", r.id, "' was already used"));
    if (!status.ok()) {
      if (!skip_bad_lines)
        return absl::InvalidArgumentError(absl::StrCat(path.string(), ":", number, ": ", status.message()));
      ++*skipped;
      continue;
    }
    requests.push_back(std::move(r));
  }
  return requests;
}

}  // namespace agora::cli
