// tokenizer.model (a sentencepiece ModelProto, protobuf wire format): refused, or a tokenizer whose ids for a
// fixed text are in its vocabulary.
#include "data/sentencepiece_tokenizer.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<std::unique_ptr<agora::SentencePieceTokenizer>> tokenizer =
      agora::SentencePieceTokenizer::FromBytes(agora::fuzz::AsText(data, size), "fuzz/tokenizer.model");
  if (!tokenizer.ok()) return 0;
  const std::string text = "Hello, world! 12345 \xc3\xa9t\xc3\xa9 \xe2\x96\x81 <s></s>\n\n  tabs\t\xff";
  const std::vector<int32_t> ids = (*tokenizer)->Encode(text);
  for (const int32_t id : ids) AGORA_FUZZ_CHECK(id >= 0 && id < (*tokenizer)->vocab_size());
  (*tokenizer)->Decode(ids);
  return 0;
}
