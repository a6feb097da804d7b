// Agora re-saves the oracle's checkpoints; tests/oracle/check_roundtrip.py then loads them in transformers.
#include <fstream>
#include <set>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <gtest/gtest.h>

#include "models/checkpoint.h"
#include "tests/test_util.h"

namespace agora {
namespace {

using testing::FixtureDir;

void ResaveAndReload(const std::string& name, const SaveOptions& options, const std::string& out_name) {
  auto in = LoadModel(FixtureDir("AGORA_MODEL_FIXTURES") / name, {at::kFloat, at::kCPU});
  ASSERT_TRUE(in.ok()) << in.status();
  const auto out_dir = FixtureDir("AGORA_ROUNDTRIP_OUT") / out_name;
  std::filesystem::remove_all(out_dir);
  ASSERT_TRUE(SaveModel(in->model, out_dir, options).ok());
  // Agora reads back exactly what it wrote.
  auto back = LoadModel(out_dir, {at::kFloat, at::kCPU});
  ASSERT_TRUE(back.ok()) << back.status();
  auto a = in->model->named_parameters(), b = back->model->named_parameters();
  for (const auto& item : a) EXPECT_TRUE(at::equal(item.value(), b[item.key()])) << item.key();
}

TEST(CheckpointRoundTrip, SingleFileFp32) {
  for (const char* name : {"llama2_mha", "llama3_gqa", "tied_headdim"}) ResaveAndReload(name, {}, name);
}

TEST(CheckpointRoundTrip, ShardedFp32) {
  SaveOptions sharded;
  sharded.max_shard_bytes = 100'000;  // a few shards for a 0.6 MB model
  ResaveAndReload("llama3_gqa", sharded, "llama3_gqa.sharded");
  const auto dir = FixtureDir("AGORA_ROUNDTRIP_OUT") / "llama3_gqa.sharded";
  std::ifstream index_file(dir / "model.safetensors.index.json");
  ASSERT_TRUE(index_file.good());
  std::set<std::string> shards;
  const nlohmann::json index = nlohmann::json::parse(index_file);
  for (const auto& [tensor, file] : index["weight_map"].items()) shards.insert(file);
  EXPECT_GE(shards.size(), 5u);
  for (const std::string& shard : shards) EXPECT_TRUE(std::filesystem::exists(dir / shard)) << shard;
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors"));
}

}  // namespace
}  // namespace agora
