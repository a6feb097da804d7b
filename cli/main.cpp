// `agora <command> [flags]`: dispatches to one command per file. Flags are Abseil flags; the dashed spelling
// users know from other tools (--max-new-tokens) is accepted as well as the underscore one.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "cli/commands.h"

namespace {

constexpr char kUsage[] =
    "agora <command> [flags]\n"
    "commands:\n"
    "  train     --config RECIPE.yaml [key=value ...]   fine-tune as the recipe says (recipes/ has examples)\n"
    "  generate  --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]\n"
    "            [--seed S] [--device auto|cpu|cuda] [--dtype auto|float32|bfloat16|float16]\n"
    "            [--adapter LORA_DIR] [--chat-template llama2|llama3|plain|vicuna]\n"
    "  generate  --model DIR --requests IN.jsonl --out OUT.jsonl   many requests, resumable (see the README)\n"
    "  eval      --model DIR [--adapter LORA_DIR] --task FILE[,FILE] [--out RESULTS.json]\n"
    "            multiple choice by log-likelihood (TruthfulQA mc_task.json, BIG-bench task.json, JSONL);\n"
    "            [--generate PROMPTS.jsonl --generate_out PREFIX]: base and tuned answers side by side\n"
    "  export    --adapter LORA_DIR --out DIR [--merge --model BASE_DIR [--dtype D]]\n"
    "            a clean PEFT adapter folder, or (--merge) a full HF model with the adapter folded in\n"
    "  simulate  --config RECIPE.yaml [key=value ...]   make alignment data by simulated interaction (sandbox,\n"
    "            matrix, self_align) with the model; closed_loop.rounds=K: simulate -> train -> eval, K times\n"
    "  data      sandbox-to-groups --out FILE [--self-critic-ratio R] [--realignment-ratio R] [--seed S] LOG...\n"
    "            Stable Alignment's sandbox interaction logs -> its grouped training file (sandbox_groups)\n"
    "  launch    --nproc N [--master_port P] <command> [args ...]\n"
    "            N data-parallel ranks of `agora <command>` on this node (torchrun's variables; see the README)\n"
    "run `agora <command> --help` for every flag";

// "--max-new-tokens=3" -> "--max_new_tokens=3": Abseil flag names are identifiers.
std::string UnderscoreFlagName(const char* arg) {
  std::string s(arg);
  if (s.rfind("--", 0) != 0) return s;
  const size_t end = std::min(s.find('='), s.size());
  for (size_t i = 2; i < end; ++i)
    if (s[i] == '-') s[i] = '_';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fprintf(stderr, "%s\n", kUsage);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  // Everything after launch's own flags belongs to the ranks' command: not for this process's flag parser.
  if (command == "launch") return agora::cli::RunLaunch(argc - 2, argv + 2);
  // argv without the command word, flag names normalised, for Abseil's parser.
  std::vector<std::string> args = {argv[0]};
  for (int i = 2; i < argc; ++i) args.push_back(UnderscoreFlagName(argv[i]));
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());

  if (command == "generate") return agora::cli::RunGenerate(positional);
  if (command == "train") return agora::cli::RunTrain(positional);
  if (command == "export") return agora::cli::RunExport(positional);
  if (command == "eval") return agora::cli::RunEval(positional);
  if (command == "data") return agora::cli::RunData(positional);
  if (command == "simulate") return agora::cli::RunSimulate(positional);
  std::fprintf(stderr, "agora: unknown command '%s'\n%s\n", command.c_str(), kUsage);
  return 2;
}
