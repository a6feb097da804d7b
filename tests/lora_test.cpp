// LoRA against independent references:
//  - the forward equals W x + (alpha/r) B A x computed in float64, for an fp32 and a bf16 base;
//  - fresh adapters are initialised as PEFT does (A ~ U(+-1/sqrt(in)), B = 0) and freeze the base;
//  - adapters PEFT 0.21 made load here and give PEFT's logits (fp32, <= 1e-5), rsLoRA included;
//  - an adapter trained here is written as a PEFT folder and a merged HF model (tests/oracle/check_lora_export.py
//    then loads both with PEFT / transformers and compares with the logits written here); merging keeps the
//    logits; training changes only adapter parameters and gives the base no gradient;
//  - activation checkpointing (frozen embedding) still gives adapters the plain gradients;
//  - bad adapter folders are refused with the file and the key or tensor named, leaving no adapter behind;
//  - the size of a Llama-2-7B-shaped LoRA checkpoint (rank 8 on q and v), measured by writing it.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/checkpoint.h"
#include "models/lora.h"
#include "models/tensor_file.h"
#include "tests/test_util.h"
#include "trainer/adamw.h"
#include "trainer/objectives/sft.h"
#include "trainer/training_checkpoint.h"
#include "util/atomic_file.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using agora::testing::FixtureDir;
using agora::testing::ReadTensors;
using agora::testing::RelativeError;
using ::testing::HasSubstr;

at::Generator Gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

at::Tensor Logits(LlamaForCausalLM& model, const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  return model->Logits(model->forward(ids, DefaultPositions(ids.size(0), ids.size(1), at::kCPU), AttentionMask{}));
}

LlamaForCausalLM Base(at::ScalarType dtype = at::kFloat, bool activation_checkpointing = false) {
  ModelOptions options{dtype, at::kCPU};
  options.activation_checkpointing = activation_checkpointing;
  auto loaded = LoadModel(FixtureDir("AGORA_MODEL_FIXTURES") / "llama2_mha", options);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded->model;
}

// Gives every adapter random B (fresh adapters have B = 0 and change nothing).
void RandomizeB(LlamaForCausalLM& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = Gen(seed);
  for (auto& [name, param] : LoraParameters(model))
    if (name.find("lora_B") != std::string::npos) param.copy_(at::randn(param.sizes(), gen) * 0.1);
}

// One random sequence as a training batch: every token but the first trained.
DeviceBatch RandomSequence(int64_t vocab, int64_t n, uint64_t seed) {
  const at::Tensor ids = at::randint(3, vocab, {1, n}, Gen(seed), at::kLong);
  DeviceBatch batch{.input_ids = ids,
                    .labels = ids.clone(),
                    .position_ids = DefaultPositions(1, n, at::kCPU),
                    .cu_seqlens = at::tensor({int64_t{0}, n}, at::kLong),
                    .sample_index = at::zeros({n}, at::kInt),
                    .sequence_id = at::zeros({n}, at::kLong),
                    .sequence_group = at::zeros({1}, at::kLong),
                    .sequence_score = at::zeros({1}, at::kFloat),
                    .num_samples = 1,
                    .num_groups = 1,
                    .trained_tokens = n - 1,
                    .tokens = n};
  batch.labels[0][0] = -100;
  return batch;
}

TEST(LoraForward, EqualsBasePlusScaledBAInFloat64) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    LinearImpl linear(24, 40, ModelOptions{dtype, at::kCPU});
    at::Generator gen = Gen(1);
    at::NoGradGuard no_grad;
    linear.weight.copy_(at::randn({40, 24}, gen));
    linear.lora_A = std::make_shared<LinearImpl>(24, 4, ModelOptions{});
    linear.lora_B = std::make_shared<LinearImpl>(4, 40, ModelOptions{});
    linear.lora_A->weight.copy_(at::randn({4, 24}, gen));
    linear.lora_B->weight.copy_(at::randn({40, 4}, gen));
    linear.lora_scaling = 8.0 / 4.0;
    const at::Tensor x = at::randn({3, 5, 24}, gen).to(dtype);
    const at::Tensor y = linear.forward(x);
    EXPECT_EQ(y.scalar_type(), dtype);
    const at::Tensor xd = x.to(at::kDouble), w = linear.weight.to(at::kDouble);
    const at::Tensor a = linear.lora_A->weight.to(at::kDouble), b = linear.lora_B->weight.to(at::kDouble);
    const at::Tensor expected = at::matmul(xd, w.t()) + 2.0 * at::matmul(at::matmul(xd, a.t()), b.t());
    EXPECT_LE(RelativeError(y, expected), dtype == at::kFloat ? 1e-5 : 1e-2) << c10::toString(dtype);
  }
}

TEST(LoraInit, AdaptersStartAsPeftDoesAndFreezeTheBase) {
  LlamaForCausalLM model = Base();
  const at::Tensor before = Logits(model, at::arange(3, 12).view({1, 9}));
  LoraConfig config;
  config.rank = 4;
  config.alpha = 8;
  config.targets = {"q_proj", "down_proj"};
  ASSERT_TRUE(AddLora(model, config, Gen(3)).ok());
  const auto adapters = LoraParameters(model);
  ASSERT_EQ(adapters.size(), 2u * 2u * 2u);  // 2 layers x 2 targets x (A, B)
  EXPECT_EQ(adapters[0].first, "model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(adapters[3].first, "model.layers.0.mlp.down_proj.lora_B.weight");
  for (const auto& [name, p] : adapters) {
    EXPECT_EQ(p.scalar_type(), at::kFloat) << name;
    if (name.find("lora_B") != std::string::npos) {
      EXPECT_EQ(p.abs().max().item<double>(), 0.0) << name;
    } else {
      const double bound = 1.0 / std::sqrt(static_cast<double>(p.size(1)));
      EXPECT_LE(p.abs().max().item<double>(), bound) << name;
      EXPECT_GT(p.abs().max().item<double>(), 0.9 * bound) << name << ": should fill U(-bound, bound)";
    }
  }
  for (const auto& item : model->named_parameters())
    EXPECT_EQ(item.value().requires_grad(), IsLoraParameterName(item.key())) << item.key() << ": only adapters train";
  EXPECT_TRUE(at::equal(Logits(model, at::arange(3, 12).view({1, 9})), before)) << "B = 0: the output is unchanged";
  EXPECT_DOUBLE_EQ(config.scaling(), 2.0);
  config.use_rslora = true;
  EXPECT_DOUBLE_EQ(config.scaling(), 4.0);
  EXPECT_FALSE(AddLora(model, config, Gen(3)).ok()) << "adapters twice";
  EXPECT_THAT(std::string(ParseLoraTargets("q_proj,lm_head").status().message()), HasSubstr("'lm_head'"));
  EXPECT_THAT(std::string(ParseLoraTargets("v_proj, v_proj").status().message()), HasSubstr("twice"));
  EXPECT_EQ(*ParseLoraTargets(" q_proj , gate_proj"), (std::vector<std::string>{"q_proj", "gate_proj"}));
}

TEST(LoraPeft, PeftAdaptersGivePeftLogits) {
  const fs::path fixtures = FixtureDir("AGORA_LORA_FIXTURES");
  auto ref = ReadTensors(fixtures / "peft_logits.safetensors");
  for (const char* name : {"peft_all", "peft_rslora"}) {
    LlamaForCausalLM model = Base();
    EXPECT_LE(RelativeError(Logits(model, ref.at("input_ids")), ref.at("logits_base")), 1e-5);
    auto config = LoadPeftAdapter(model, fixtures / name);
    ASSERT_TRUE(config.ok()) << config.status();
    const double error = RelativeError(Logits(model, ref.at("input_ids")), ref.at(std::string("logits_") + name));
    std::printf("%s (rank %lld, scaling %g): logits relative error vs PEFT %.3g\n", name,
                static_cast<long long>(config->rank), config->scaling(), error);
    EXPECT_LE(error, 1e-5) << name;
  }
}

TEST(LoraPeft, TrainedAdapterExportsAsPeftAndMerged) {
  const fs::path out = FixtureDir("AGORA_LORA_OUT");
  fs::remove_all(out);
  LlamaForCausalLM model = Base();
  LoraConfig config;
  config.rank = 4;
  config.alpha = 16;
  config.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  ASSERT_TRUE(AddLora(model, config, Gen(5)).ok());
  // A few real training steps on random tokens, so B is no longer zero.
  std::vector<TrainableParameter> trainable;
  for (auto& [name, p] : LoraParameters(model)) trainable.push_back({name, p.requires_grad_(true), true});
  AdamW adam(std::move(trainable), AdamWOptions{});
  const DeviceBatch batch = RandomSequence(model->config().vocab_size, 24, 6);
  for (int step = 0; step < 3; ++step) {
    PackedTokenNll(model, batch, HeadLoss::kTorch).sum().backward();
    adam.Step(1e-2);
  }
  ASSERT_GT(LoraParameters(model)[1].second.abs().max().item<double>(), 0.0) << "B moved";

  const at::Tensor probe = at::randint(3, model->config().vocab_size, {2, 13}, Gen(8), at::kLong);
  const at::Tensor adapted = Logits(model, probe);
  const absl::Status saved = SavePeftAdapter(model, config, "llama2_mha", out / "agora_adapter");
  ASSERT_TRUE(saved.ok()) << saved;
  MergeLora(model);
  EXPECT_TRUE(LoraParameters(model).empty());
  EXPECT_LE(RelativeError(Logits(model, probe), adapted), 1e-5) << "merging keeps the function";
  ASSERT_TRUE(SaveModel(model, out / "agora_merged").ok());
  // Ids as float32 (exact below 2^24): the tensor writer takes the dtypes of weights.
  ASSERT_TRUE(SaveTensors(out / "agora_logits.safetensors", {{"input_ids", probe.to(at::kFloat)}, {"logits", adapted}}).ok());

  // The adapter folder loads back here too, onto a fresh base.
  LlamaForCausalLM again = Base();
  auto loaded = LoadPeftAdapter(again, out / "agora_adapter");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->targets, config.targets);
  EXPECT_TRUE(at::equal(Logits(again, probe), adapted));
}

TEST(LoraTraining, OnlyAdaptersChangeAndTheBaseGetsNoGradient) {
  LlamaForCausalLM model = Base();
  std::map<std::string, at::Tensor> base;
  for (const auto& item : model->named_parameters()) base[item.key()] = item.value().clone();
  LoraConfig config;
  config.targets = {"q_proj", "v_proj", "up_proj"};
  ASSERT_TRUE(AddLora(model, config, Gen(9)).ok());
  std::vector<TrainableParameter> trainable;
  for (auto& [name, p] : LoraParameters(model)) trainable.push_back({name, p.requires_grad_(true), true});
  AdamW adam(std::move(trainable), AdamWOptions{0.9, 0.999, 1e-8, 0.1});
  const DeviceBatch batch = RandomSequence(model->config().vocab_size, 16, 10);
  for (int step = 0; step < 3; ++step) {
    PackedTokenNll(model, batch, HeadLoss::kTorch).sum().backward();
    for (const auto& [name, before] : base)
      ASSERT_FALSE(model->named_parameters()[name].grad().defined()) << name << " got a gradient";
    adam.Step(1e-2);
  }
  for (const auto& item : model->named_parameters()) {
    if (IsLoraParameterName(item.key())) continue;
    EXPECT_TRUE(at::equal(item.value(), base.at(item.key()))) << item.key() << " changed";
  }
  for (const auto& [name, p] : LoraParameters(model))
    if (name.find("lora_B") != std::string::npos) EXPECT_GT(p.abs().max().item<double>(), 0.0) << name;
}

TEST(LoraTraining, ActivationCheckpointingGivesAdaptersThePlainGradients) {
  // The 7B recipes combine both: a frozen embedding means the first checkpointed layer's input needs no
  // gradient, and the adapters inside must still get theirs.
  // Checkpointing is fixed when a model is built: two models with the same weights and the same adapters.
  LoraConfig config;
  config.targets = {"q_proj", "v_proj", "down_proj"};
  auto adapted = [&](bool checkpointing) {
    LlamaForCausalLM m = Base(at::kFloat, checkpointing);
    EXPECT_TRUE(AddLora(m, config, Gen(12)).ok());
    RandomizeB(m, 13);
    return m;
  };
  LlamaForCausalLM model = adapted(false), checkpointed = adapted(true);
  const DeviceBatch batch = RandomSequence(model->config().vocab_size, 16, 14);
  auto gradients = [&](LlamaForCausalLM& m) {
    std::vector<at::Tensor> grads;
    PackedTokenNll(m, batch, HeadLoss::kTorch).sum().backward();
    for (auto& [name, p] : LoraParameters(m)) grads.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    return grads;
  };
  const auto plain = gradients(model), recomputed = gradients(checkpointed);
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_TRUE(recomputed[i].defined()) << LoraParameters(model)[i].first << " got no gradient";
    EXPECT_LE(RelativeError(recomputed[i], plain[i]), 1e-6) << LoraParameters(model)[i].first;
  }
}

TEST(LoraPeft, BadAdapterFoldersAreRefusedNamingFileAndKey) {
  const fs::path fixtures = FixtureDir("AGORA_LORA_FIXTURES");
  const fs::path dir = FixtureDir("AGORA_LORA_OUT").parent_path() / "lora_bad";
  const nlohmann::json good = nlohmann::json::parse(std::ifstream(fixtures / "peft_all" / "adapter_config.json"));
  auto write = [&](const nlohmann::json& config, const std::map<std::string, at::Tensor>& tensors) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    ASSERT_TRUE(WriteStringAtomically(dir / "adapter_config.json", config.dump()).ok());
    ASSERT_TRUE(SaveTensors(dir / "adapter_model.safetensors", tensors).ok());
  };
  auto tensors = ReadTensors(fixtures / "peft_all" / "adapter_model.safetensors");
  struct Case {
    std::string key;
    nlohmann::json value;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{{"use_dora", true, "\"use_dora\" true is not supported"},
                                         {"peft_type", "IA3", "\"peft_type\" must be \"LORA\""},
                                         {"rank_pattern", {{"q_proj", 8}}, "\"rank_pattern\" (per-module"},
                                         {"target_modules", {"q_proj", "lm_head"}, "'lm_head' is not one of"},
                                         {"modules_to_save", {"lm_head"}, "\"modules_to_save\" is not supported"}}) {
    nlohmann::json config = good;
    config[c.key] = c.value;
    write(config, tensors);
    LlamaForCausalLM model = Base();
    absl::Status status = LoadPeftAdapter(model, dir).status();
    EXPECT_THAT(std::string(status.message()), HasSubstr((dir / "adapter_config.json").string())) << c.key;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message)) << c.key;
  }
  // A missing tensor: the error names it, and the model is left without adapters.
  const std::string dropped = "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight";
  auto fewer = tensors;
  fewer.erase(dropped);
  write(good, fewer);
  LlamaForCausalLM model = Base();
  absl::Status missing = LoadPeftAdapter(model, dir).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr(dropped));
  EXPECT_TRUE(LoraParameters(model).empty());
  for (const auto& item : model->named_parameters()) EXPECT_TRUE(item.value().requires_grad()) << item.key();
  // A tensor of the wrong shape.
  auto misshapen = tensors;
  misshapen["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] = at::zeros({3, 64});
  write(good, misshapen);
  EXPECT_THAT(std::string(LoadPeftAdapter(model, dir).status().message()), HasSubstr("has shape [3, 64]"));
}

TEST(LoraCheckpoint, Llama2_7BShapedRank8QvCheckpointIsMegabytes) {
  // Llama-2-7B's shapes; the base weights are allocated but never touched or written (the OS backs them lazily).
  LlamaConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 32;
  c.head_dim = 128;
  LlamaForCausalLM model(c, ModelOptions{at::kBFloat16, at::kCPU});
  LoraConfig config;  // rank 8, alpha 16, q_proj and v_proj: the common 7B setting
  ASSERT_TRUE(AddLora(model, config, Gen(1)).ok());
  std::vector<TrainableParameter> trainable;
  int64_t numel = 0;
  for (auto& [name, p] : LoraParameters(model)) {
    trainable.push_back({name, p.requires_grad_(true), true});
    numel += p.numel();
  }
  EXPECT_EQ(numel, 32 * 2 * (8 * 4096 + 4096 * 8));
  AdamW adam(std::move(trainable), AdamWOptions{});
  const fs::path dir = FixtureDir("AGORA_LORA_OUT").parent_path() / "lora_7b_checkpoint";
  fs::remove_all(dir);
  CheckpointManager manager(dir, 1, "meta-llama/Llama-2-7b-hf", config);
  TrainerState state;
  state.step = 1;
  auto saved = manager.Save(model, adam, state);
  ASSERT_TRUE(saved.ok()) << saved.status();
  int64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(*saved)) bytes += static_cast<int64_t>(entry.file_size());
  std::printf("Llama-2-7B-shaped LoRA checkpoint (rank 8, q_proj+v_proj, %lld adapter parameters): %.1f MB "
              "(adapter %.1f MB, optimizer state %.1f MB)\n",
              static_cast<long long>(numel), bytes / 1e6, fs::file_size(*saved / "adapter_model.safetensors") / 1e6,
              fs::file_size(*saved / "optimizer.safetensors") / 1e6);
  EXPECT_LT(bytes, 60'000'000);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agora
