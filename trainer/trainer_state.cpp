#include "trainer/trainer_state.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/status_macros.h"

namespace agora {
namespace {

using nlohmann::json;

constexpr char kFormat[] = "agora.trainer_state.v1";

// The value at `path` (keys from the root), which must exist and hold `kind`; errors name the dotted key.
absl::StatusOr<const json*> Field(const json& root, std::initializer_list<const char*> path, json::value_t kind,
                                  const std::string& origin) {
  const json* at = &root;
  const std::string dotted = absl::StrJoin(path, ".");
  for (const char* key : path) {
    const auto it = at->is_object() ? at->find(key) : at->end();
    if (!at->is_object() || it == at->end())
      return absl::InvalidArgumentError(absl::StrCat(origin, ": \"", dotted, "\" is missing"));
    at = &*it;
  }
  const bool matches = kind == json::value_t::number_unsigned ? at->is_number_unsigned()
                       : kind == json::value_t::number_integer ? at->is_number_integer()
                                                               : at->type() == kind;
  if (!matches)
    return absl::InvalidArgumentError(absl::StrCat(origin, ": \"", dotted, "\" has the wrong type: ", at->dump()));
  return at;
}

absl::StatusOr<int64_t> Count(const json& root, std::initializer_list<const char*> path, const std::string& origin) {
  AGORA_ASSIGN_OR_RETURN(const json* value, Field(root, path, json::value_t::number_integer, origin));
  if (value->is_number_unsigned() ? value->get<uint64_t>() > INT64_MAX : value->get<int64_t>() < 0)
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": \"", absl::StrJoin(path, "."), "\" must be in [0, 2^63), got ", value->dump()));
  return value->get<int64_t>();
}

}  // namespace

std::string TrainerStateToJson(const TrainerState& s) {
  json files = json::object();
  for (const auto& [name, digest] : s.files) files[name] = {{"bytes", digest.bytes}, {"crc32c", digest.crc32c}};
  const json j{{"format", kFormat},
               {"step", s.step},
               {"data_position", {{"epoch", s.data.epoch}, {"batch", s.data.batch}}},
               {"skipped_steps", s.skipped_steps},
               {"trained_tokens", s.trained_tokens},
               {"seed", s.seed},
               {"world_size", s.world_size},
               {"global_batch_rows", s.global_batch_rows},
               {"rng_states", s.rng_states},
               {"files", files}};
  return j.dump(2) + "\n";
}

absl::StatusOr<TrainerState> ParseTrainerState(std::string_view json_text, const std::string& origin) {
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(origin, ": not a JSON object"));
  AGORA_ASSIGN_OR_RETURN(const json* format, Field(j, {"format"}, json::value_t::string, origin));
  if (*format != kFormat)
    return absl::InvalidArgumentError(absl::StrCat(origin, ": \"format\" is not ", kFormat));
  TrainerState s;
  AGORA_ASSIGN_OR_RETURN(s.step, Count(j, {"step"}, origin));
  AGORA_ASSIGN_OR_RETURN(s.data.epoch, Count(j, {"data_position", "epoch"}, origin));
  AGORA_ASSIGN_OR_RETURN(s.data.batch, Count(j, {"data_position", "batch"}, origin));
  AGORA_ASSIGN_OR_RETURN(s.skipped_steps, Count(j, {"skipped_steps"}, origin));
  if (s.skipped_steps > s.step)
    return absl::InvalidArgumentError(absl::StrCat(origin, ": \"skipped_steps\" ", s.skipped_steps,
                                                   " exceeds \"step\" ", s.step));
  AGORA_ASSIGN_OR_RETURN(s.trained_tokens, Count(j, {"trained_tokens"}, origin));
  AGORA_ASSIGN_OR_RETURN(const json* seed, Field(j, {"seed"}, json::value_t::number_unsigned, origin));
  s.seed = seed->get<uint64_t>();
  AGORA_ASSIGN_OR_RETURN(s.world_size, Count(j, {"world_size"}, origin));
  if (s.world_size < 1) return absl::InvalidArgumentError(absl::StrCat(origin, ": \"world_size\" must be >= 1"));
  if (j.contains("global_batch_rows")) {
    AGORA_ASSIGN_OR_RETURN(s.global_batch_rows, Count(j, {"global_batch_rows"}, origin));
  }
  AGORA_ASSIGN_OR_RETURN(const json* rng, Field(j, {"rng_states"}, json::value_t::object, origin));
  for (const auto& [name, value] : rng->items()) {
    if (!value.is_string())
      return absl::InvalidArgumentError(absl::StrCat(origin, ": \"rng_states.", name, "\" is not a string"));
    s.rng_states[name] = value.get<std::string>();
  }
  if (j.contains("files")) {
    AGORA_ASSIGN_OR_RETURN(const json* files, Field(j, {"files"}, json::value_t::object, origin));
    for (const auto& [name, entry] : files->items()) {
      const auto bytes = entry.is_object() ? entry.find("bytes") : entry.end();
      const auto crc = entry.is_object() ? entry.find("crc32c") : entry.end();
      if (!entry.is_object() || bytes == entry.end() || !bytes->is_number_unsigned() || crc == entry.end() ||
          !crc->is_number_unsigned() || crc->get<uint64_t>() > UINT32_MAX)
        return absl::InvalidArgumentError(
            absl::StrCat(origin, ": \"files.", name, "\" must be {\"bytes\": N, \"crc32c\": 32-bit N}"));
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        return absl::InvalidArgumentError(absl::StrCat(origin, ": \"files\" names '", name, "', not a file of the checkpoint"));
      s.files[name] = {bytes->get<uint64_t>(), static_cast<uint32_t>(crc->get<uint64_t>())};
    }
  }
  return s;
}

}  // namespace agora
