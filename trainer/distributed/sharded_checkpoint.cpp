#include "trainer/distributed/sharded_checkpoint.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "models/safetensors.h"
#include "models/tensor_file.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kFormat[] = "agora-sharded-state/1";
constexpr char kOptimizerFile[] = "optimizer.safetensors";

struct SavedMember {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t numel = 0;
};

struct SavedGroup {
  std::string name;
  int64_t numel = 0;
  int64_t shard_numel = 0;
  std::vector<SavedMember> members;
};

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// sharding.json, every field checked: errors name the file and the group.
absl::StatusOr<std::pair<int64_t, std::vector<SavedGroup>>> ParseSharding(const std::string& text,
                                                                          const std::string& origin) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) { return absl::InvalidArgumentError(absl::StrCat(origin, ": ", what)); };
  if (!j.is_object() || !j.contains("format") || j["format"] != kFormat)
    return bad(absl::StrCat("not a sharded training state (\"format\" must be \"", kFormat, "\")"));
  if (!j.contains("world_size") || !j["world_size"].is_number_unsigned() || j["world_size"].get<uint64_t>() < 1 ||
      j["world_size"].get<uint64_t>() > 1'000'000)
    return bad("\"world_size\" must be an integer in [1, 1000000]");
  const auto world = j["world_size"].get<int64_t>();
  if (!j.contains("groups") || !j["groups"].is_array()) return bad("\"groups\" must be an array");
  std::vector<SavedGroup> groups;
  for (const json& g : j["groups"]) {
    SavedGroup group;
    if (!g.is_object() || !g.contains("name") || !g["name"].is_string()) return bad("a group without a \"name\"");
    group.name = g["name"].get<std::string>();
    auto count = [&](const char* key) -> absl::StatusOr<int64_t> {
      if (!g.contains(key) || !g[key].is_number_unsigned() || g[key].get<uint64_t>() > (uint64_t{1} << 50))
        return bad(absl::StrCat("group ", group.name, ": \"", key, "\" must be a non-negative integer"));
      return g[key].get<int64_t>();
    };
    AGORA_ASSIGN_OR_RETURN(group.numel, count("numel"));
    AGORA_ASSIGN_OR_RETURN(group.shard_numel, count("shard_numel"));
    if (group.shard_numel * world < group.numel)
      return bad(absl::StrCat("group ", group.name, ": ", world, " shards of ", group.shard_numel, " cannot hold ",
                              group.numel, " values"));
    if (!g.contains("members") || !g["members"].is_array())
      return bad(absl::StrCat("group ", group.name, ": \"members\" must be an array"));
    for (const json& m : g["members"]) {
      SavedMember member;
      if (!m.is_object() || !m.contains("name") || !m["name"].is_string() || !m.contains("offset") ||
          !m["offset"].is_number_unsigned() || !m.contains("shape") || !m["shape"].is_array())
        return bad(absl::StrCat("group ", group.name, ": a member needs \"name\", \"shape\" and \"offset\""));
      member.name = m["name"].get<std::string>();
      member.offset = m["offset"].get<int64_t>();
      for (const json& d : m["shape"]) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40))
          return bad(absl::StrCat(member.name, ": \"shape\" must hold non-negative integers"));
        member.shape.push_back(d.get<int64_t>());
      }
      member.numel = Product(member.shape);
      if (member.offset < 0 || member.offset > group.numel || member.numel > group.numel - member.offset)
        return bad(absl::StrCat(member.name, ": [", member.offset, ", ", member.offset + member.numel,
                                ") is outside group ", group.name, " of ", group.numel, " values"));
      group.members.push_back(std::move(member));
    }
    groups.push_back(std::move(group));
  }
  return std::make_pair(world, std::move(groups));
}

// An unsharded checkpoint: optimizer.safetensors keyed "<name>.<kind>".
class UnshardedState : public SavedTrainingState {
 public:
  explicit UnshardedState(std::map<std::string, at::Tensor> tensors) : tensors_(std::move(tensors)) {}
  bool sharded() const override { return false; }
  absl::StatusOr<at::Tensor> Get(const std::string& name, const std::string& kind) override {
    const auto it = tensors_.find(absl::StrCat(name, ".", kind));
    if (it == tensors_.end())
      return absl::NotFoundError(absl::StrCat("optimizer state lacks tensor ", name, ".", kind));
    return it->second;
  }

 private:
  std::map<std::string, at::Tensor> tensors_;
};

// A sharded checkpoint: a parameter's tensor is cut from its group's flat, put back together from every rank
// file's slice (one group's flat is kept, the one last asked for: restoring walks the groups in order).
class ShardedState : public SavedTrainingState {
 public:
  ShardedState(fs::path dir, int64_t world, std::vector<SavedGroup> groups,
               std::vector<std::unique_ptr<SafetensorsFile>> files)
      : dir_(std::move(dir)), world_(world), groups_(std::move(groups)), files_(std::move(files)) {
    for (size_t g = 0; g < groups_.size(); ++g)
      for (size_t m = 0; m < groups_[g].members.size(); ++m) where_[groups_[g].members[m].name] = {g, m};
  }
  bool sharded() const override { return true; }

  absl::StatusOr<at::Tensor> Get(const std::string& name, const std::string& kind) override {
    const auto it = where_.find(name);
    if (it == where_.end())
      return absl::NotFoundError(absl::StrCat((dir_ / kShardingFile).string(), " has no tensor ", name));
    const SavedGroup& group = groups_[it->second.first];
    const SavedMember& member = group.members[it->second.second];
    if (cached_group_ != it->second.first || cached_kind_ != kind) {
      std::vector<at::Tensor> parts;
      for (int64_t r = 0; r < world_; ++r) {
        const SafetensorsFile& file = *files_[static_cast<size_t>(r)];
        const std::string key = absl::StrCat(group.name, ".", kind);
        const TensorInfo* info = file.Find(key);
        if (info == nullptr) return absl::NotFoundError(absl::StrCat(file.path().string(), " lacks tensor ", key));
        const std::optional<at::ScalarType> dtype = TorchDType(info->dtype);
        if (!dtype || info->shape != std::vector<int64_t>{group.shard_numel})
          return absl::InvalidArgumentError(absl::StrFormat("%s: tensor %s must be a float vector of %d values",
                                                            file.path().string(), key, group.shard_numel));
        parts.push_back(TensorOverBytes(file.Data(*info), info->shape, *dtype));
      }
      cached_flat_ = at::cat(parts).narrow(0, 0, group.numel);
      cached_group_ = it->second.first;
      cached_kind_ = kind;
    }
    return cached_flat_.narrow(0, member.offset, member.numel).view(member.shape);
  }

 private:
  fs::path dir_;
  int64_t world_;
  std::vector<SavedGroup> groups_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, size_t>> where_;  // name -> (group, member)
  size_t cached_group_ = SIZE_MAX;
  std::string cached_kind_;
  at::Tensor cached_flat_;
};

// This rank's slice of `group`'s flat of `kind`, cut from the saved whole tensors of its members.
absl::StatusOr<at::Tensor> CutShard(SavedTrainingState& saved, const FlatGroup& group, const std::string& kind,
                                    int64_t rank, at::ScalarType dtype) {
  at::Tensor shard = at::zeros({group.shard_numel}, at::TensorOptions().dtype(dtype));
  const int64_t lo = rank * group.shard_numel, hi = lo + group.shard_numel;
  for (const FlatMember& m : group.members) {
    const int64_t begin = std::max(lo, m.offset), end = std::min(hi, m.offset + m.param.numel());
    if (begin >= end) continue;
    AGORA_ASSIGN_OR_RETURN(const at::Tensor whole, saved.Get(m.name, kind));
    if (whole.numel() != m.param.numel())
      return absl::InvalidArgumentError(absl::StrCat("saved ", m.name, ".", kind, " has ", whole.numel(),
                                                     " values; this run's parameter has ", m.param.numel()));
    shard.narrow(0, begin - lo, end - begin).copy_(whole.reshape(-1).narrow(0, begin - m.offset, end - begin));
  }
  return shard;
}

}  // namespace

std::string RankFileName(int64_t rank) { return absl::StrFormat("rank_%05d.safetensors", rank); }

std::string ShardingMetadataJson(const ShardedParameters& sharded) {
  json groups = json::array();
  for (const FlatGroup& group : sharded.groups()) {
    if (!group.trainable) continue;
    json members = json::array();
    for (const FlatMember& m : group.members)
      members.push_back({{"name", m.name}, {"shape", m.param.sizes().vec()}, {"offset", m.offset}});
    groups.push_back({{"name", group.name},
                      {"numel", group.numel},
                      {"shard_numel", group.shard_numel},
                      {"dtype", c10::toString(group.shard.scalar_type())},
                      {"members", members}});
  }
  const json j{{"format", kFormat},
               {"world_size", sharded.world_size()},
               {"level", ShardingLevelName(sharded.level())},
               {"groups", groups}};
  return j.dump(1) + "\n";
}

std::map<std::string, at::Tensor> RankShardTensors(const ShardedParameters& sharded, const AdamW& optimizer) {
  std::map<std::string, at::Tensor> out = optimizer.StateTensors();
  for (const FlatGroup& group : sharded.groups())
    if (group.trainable) out[group.name + ".param"] = group.shard;
  return out;
}

absl::StatusOr<std::unique_ptr<SavedTrainingState>> SavedTrainingState::Open(const fs::path& dir) {
  if (!fs::exists(dir / kShardingFile)) {
    AGORA_ASSIGN_OR_RETURN(auto tensors, LoadTensors(dir / kOptimizerFile));
    return std::make_unique<UnshardedState>(std::move(tensors));
  }
  const fs::path path = dir / kShardingFile;
  AGORA_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  AGORA_ASSIGN_OR_RETURN(auto parsed, ParseSharding(text, path.string()));
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  for (int64_t r = 0; r < parsed.first; ++r) {
    AGORA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(dir / RankFileName(r)));
    files.push_back(std::move(file));
  }
  return std::make_unique<ShardedState>(dir, parsed.first, std::move(parsed.second), std::move(files));
}

absl::Status RestoreOptimizer(SavedTrainingState& saved, AdamW& optimizer, ShardedParameters* sharded,
                              int64_t steps) {
  at::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> state;
  const std::map<std::string, at::Tensor> mine = optimizer.StateTensors();
  if (sharded == nullptr) {
    for (const auto& [key, target] : mine) {
      const size_t dot = key.rfind('.');
      AGORA_ASSIGN_OR_RETURN(state[key], saved.Get(key.substr(0, dot), key.substr(dot + 1)));
    }
    if (saved.sharded()) {  // the weights too: a run sharded at level parameters has no model files
      for (const TrainableParameter& p : optimizer.parameters()) {
        AGORA_ASSIGN_OR_RETURN(const at::Tensor whole, saved.Get(p.name, "param"));
        if (!whole.sizes().equals(p.param.sizes()))
          return absl::InvalidArgumentError(absl::StrCat("saved ", p.name, " has shape ", c10::str(whole.sizes()),
                                                         ", expected ", c10::str(p.param.sizes())));
        p.param.detach().copy_(whole);
      }
    }
    return optimizer.LoadState(state, steps);
  }
  for (const FlatGroup& group : sharded->groups()) {
    if (!group.trainable) continue;
    for (const char* kind : {"exp_avg", "exp_avg_sq", "master"}) {
      const std::string key = absl::StrCat(group.name, ".", kind);
      if (mine.count(key) == 0) continue;
      AGORA_ASSIGN_OR_RETURN(state[key], CutShard(saved, group, kind, sharded->rank(), at::kFloat));
    }
    // An unsharded checkpoint's weights were loaded into the model, from which the shards were cut already.
    if (saved.sharded()) {
      AGORA_ASSIGN_OR_RETURN(const at::Tensor param,
                             CutShard(saved, group, "param", sharded->rank(), group.shard.scalar_type()));
      group.shard.copy_(param);
    }
  }
  AGORA_RETURN_IF_ERROR(optimizer.LoadState(state, steps));
  return sharded->AfterStep();  // the whole-stored parameters from their restored shards
}

}  // namespace agora
