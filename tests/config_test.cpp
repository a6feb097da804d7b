#include <cmath>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/config.h"
#include "models/rope.h"

namespace agora {
namespace {

using ::testing::HasSubstr;

TEST(LlamaConfig, Llama2DefaultsFollowTransformers) {
  auto c = ParseLlamaConfig(R"({"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
      "num_hidden_layers": 32, "num_attention_heads": 32, "rms_norm_eps": 1e-5, "vocab_size": 32000,
      "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16", "architectures": ["LlamaForCausalLM"]})",
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 32);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeType::kDefault);
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c->torch_dtype, "float16");
  EXPECT_FALSE(c->tie_word_embeddings);
}

TEST(LlamaConfig, Llama31WithLlama3RopeAndEosList) {
  auto c = ParseLlamaConfig(R"({"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
      "rope_theta": 500000.0, "max_position_embeddings": 131072, "eos_token_id": [128001, 128008, 128009],
      "bos_token_id": 128000, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "dtype": "bfloat16"})",
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeType::kLlama3);
  EXPECT_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c->torch_dtype, "bfloat16");
}

TEST(LlamaConfig, TransformersV5RopeParameters) {
  auto c = ParseLlamaConfig(R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
      "rope_parameters": {"rope_theta": 1234.0, "rope_type": "linear", "factor": 2.0}})", "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_theta, 1234.0);
  EXPECT_EQ(c->rope_scaling.type, RopeType::kLinear);
  // and it survives being written back
  auto again = ParseLlamaConfig(LlamaConfigToJson(*c), "again");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->rope_theta, 1234.0);
  EXPECT_EQ(again->rope_scaling.factor, 2.0);
}

TEST(LlamaConfig, UnsupportedOrMalformedValuesAreClearErrors) {
  struct Case {
    const char* json;
    const char* message;
  } cases[] = {
      {R"({"hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"rope_type": "yarn", "factor": 4}})",
       "rope_scaling.rope_type 'yarn' is not supported"},
      {R"({"hidden_size": 64, "num_attention_heads": 4, "hidden_act": "gelu"})", "'hidden_act' = \"gelu\" is not supported"},
      {R"({"hidden_size": "64"})", "'hidden_size' must be an integer, got \"64\""},
      {R"({"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3})",
       "num_attention_heads (4) must be a multiple of num_key_value_heads (3)"},
      {R"({"model_type": "mistral"})", "model_type \"mistral\" is not supported"},
      {R"({"hidden_size": 64, "num_attention_heads": 4, "torch_dtype": "float8"})", "torch_dtype 'float8' is not supported"},
      {R"({"hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"rope_type": "llama3", "factor": 8}})",
       "lacks 'low_freq_factor'"},
      {R"({"hidden_size": 64, "num_attention_heads": 4, "attention_bias": true})", "'attention_bias' = true is not supported"},
      {R"({"hidden_size": 64, "num_attention_heads": 4, "quantization_config": {}})", "'quantization_config' is not supported"},
      {R"([1, 2])", "expected a JSON object"},
      {R"({"hidden_size": 64,)", "not valid JSON"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseLlamaConfig(c.json, "/models/x/config.json");
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_THAT(parsed.status().message(), HasSubstr("/models/x/config.json: ")) << c.json;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.message)) << c.json;
  }
  EXPECT_THAT(LoadLlamaConfig("/nonexistent/config.json").status().message(), HasSubstr("/nonexistent/config.json"));
}

// The llama3 frequency rule evaluated independently in float64, straight from its definition.
TEST(Rope, Llama3FrequenciesMatchFloat64Definition) {
  LlamaConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling = {RopeType::kLlama3, 8.0, 1.0, 4.0, 8192};
  at::Tensor inv = RopeInverseFrequencies(c);
  ASSERT_EQ(inv.size(0), 64);
  for (int64_t i = 0; i < 64; ++i) {
    double f = 1.0 / std::pow(500000.0, 2.0 * i / 128.0);
    const double wavelen = 2 * M_PI / f;
    if (wavelen > 8192.0 / 1.0) {
      f /= 8.0;
    } else if (wavelen >= 8192.0 / 4.0) {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      f = (1 - smooth) * f / 8.0 + smooth * f;
    }
    EXPECT_NEAR(inv[i].item<float>(), f, 2e-6 * f) << "frequency " << i;
  }
}

}  // namespace
}  // namespace agora
