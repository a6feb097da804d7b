// Text from a dataset through the shipped tokenizers (the tiny model's tokenizer.model and the byte-level BPE
// seed of the tokenizer.json target): every id in range, any text decodable, and any id sequence (in range or
// not, taken from the input's bytes) decodable without reading outside the vocabulary.
#include <cstring>

#include "data/bpe_tokenizer.h"
#include "data/sentencepiece_tokenizer.h"
#include "fuzz/fuzz_support.h"

namespace {

const std::vector<std::unique_ptr<agora::Tokenizer>>& Tokenizers() {
  static const auto* const tokenizers = [] {
    auto* list = new std::vector<std::unique_ptr<agora::Tokenizer>>;
    auto sentencepiece = agora::SentencePieceTokenizer::Load(AGORA_FUZZ_SENTENCEPIECE_MODEL);
    auto bpe = agora::BpeTokenizer::Load(AGORA_FUZZ_BPE_TOKENIZER_JSON);
    if (!sentencepiece.ok() || !bpe.ok()) {
      std::fprintf(stderr, "cannot load the fuzz tokenizers\n");
      std::abort();
    }
    list->push_back(*std::move(sentencepiece));
    list->push_back(*std::move(bpe));
    return list;
  }();
  return *tokenizers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = agora::fuzz::AsText(data, size);
  std::vector<int32_t> raw_ids(size / 4);
  if (!raw_ids.empty()) std::memcpy(raw_ids.data(), data, raw_ids.size() * 4);
  for (const auto& tokenizer : Tokenizers()) {
    for (const bool special : {false, true}) {
      const std::vector<int32_t> ids = tokenizer->Encode(text, {.parse_special = special});
      for (const int32_t id : ids) AGORA_FUZZ_CHECK(id >= 0 && id < tokenizer->vocab_size());
      tokenizer->Decode(ids);
    }
    tokenizer->Decode(raw_ids);
  }
  return 0;
}
