// `agora <command> [flags]`: dispatches to one command per file. Flags are Abseil flags; the dashed spelling
// users know from other tools (--max-new-tokens) is accepted as well as the underscore one. Every command's
// errors come back as one line and a non-zero exit; an exception that escapes a command (a bug: commands return
// statuses) is caught here and reported the same way, never as an abort with a backtrace.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cli/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(const std::vector<char*>& positional_args);
  const char* usage;                // what `agora --help` and `agora <command> --help` print first
  std::vector<const char*> flags;   // what `agora <command> --help` lists
};

const std::vector<Command>& Commands() {
  using namespace agora::cli;
  static const std::vector<const char*> kServing = {"model", "adapter", "chat_template", "device", "dtype",
                                                    "max_sequences", "prefix_cache_blocks"};
  auto serving = [](std::vector<const char*> own) {
    own.insert(own.begin(), kServing.begin(), kServing.end());
    return own;
  };
  static const std::vector<Command> commands = {
      {"train", RunTrain,
       "  train     --config RECIPE.yaml [key=value ...]   fine-tune as the recipe says (recipes/ has examples)\n",
       {"config"}},
      {"memory", RunMemory,
       "  memory    --config RECIPE.yaml [--world_size N] [--model_config config.json] [key=value ...]\n"
       "            per-GPU memory of the recipe's training step at each distributed.sharding level\n",
       {"config", "world_size", "model_config", "gpu_memory_gib", "reserve_gib", "json"}},
      {"generate", RunGenerate,
       "  generate  --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]\n"
       "            [--seed S] [--device auto|cpu|cuda] [--dtype auto|float32|bfloat16|float16]\n"
       "            [--adapter LORA_DIR] [--chat-template llama2|llama3|plain|vicuna]\n"
       "  generate  --model DIR --requests IN.jsonl --out OUT.jsonl   many requests, resumable (see the README)\n",
       serving({"prompt", "prompt_file", "requests", "out", "on_bad_line", "max_new_tokens", "temperature", "top_k",
                "top_p", "seed"})},
      {"eval", RunEval,
       "  eval      --model DIR [--adapter LORA_DIR] --task FILE[,FILE] [--out RESULTS.json]\n"
       "            multiple choice by log-likelihood (TruthfulQA mc_task.json, BIG-bench task.json, JSONL);\n"
       "            [--generate PROMPTS.jsonl --generate_out PREFIX]: base and tuned answers side by side\n",
       serving({"task", "out", "details", "generate", "generate_out", "max_new_tokens", "commit"})},
      {"export", RunExport,
       "  export    --adapter LORA_DIR --out DIR [--merge --model BASE_DIR [--dtype D]]\n"
       "            a clean PEFT adapter folder, or (--merge) a full HF model with the adapter folded in\n"
       "  export    --checkpoint SHARDED_STEP_DIR --model BASE_DIR --out DIR\n"
       "            a checkpoint sharded at distributed.sharding=parameters as a full HF model folder\n",
       {"adapter", "out", "merge", "model", "dtype", "checkpoint"}},
      {"simulate", RunSimulate,
       "  simulate  --config RECIPE.yaml [key=value ...]   make alignment data by simulated interaction (sandbox,\n"
       "            matrix, self_align) with the model; closed_loop.rounds=K: simulate -> train -> eval, K times\n",
       {"config"}},
      {"data", RunData,
       "  data      sandbox-to-groups --out FILE [--self-critic-ratio R] [--realignment-ratio R] [--seed S] LOG...\n"
       "            Stable Alignment's sandbox interaction logs -> its grouped training file (sandbox_groups)\n",
       {"out", "self_critic_ratio", "realignment_ratio", "seed"}},
      {"tokenize", RunTokenize,
       "  tokenize  --model DIR [--chat-template T] TEXT | --file F\n"
       "            the token ids and pieces of a text (with a template: as a user turn's generation prompt)\n",
       {"model", "chat_template", "file"}},
  };
  return commands;
}

constexpr char kLaunchUsage[] =
    "  launch    --nproc N [--master_port P] <command> [args ...]\n"
    "            N data-parallel ranks of `agora <command>` on this node (torchrun's variables; see the README)\n";

std::string Usage() {
  std::string usage = "agora <command> [flags]\ncommands:\n";
  for (const Command& c : Commands()) usage += c.usage;
  return usage + kLaunchUsage + "run `agora <command> --help` for its flags";
}

// `agora <command> --help`: the command's usage and its flags, with their help text and default.
void PrintCommandHelp(const Command& command) {
  std::string help = absl::StrCat("agora ", command.name, "\n", command.usage, "flags:\n");
  for (const char* name : command.flags) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    absl::StrAppend(&help, "  --", absl::StrReplaceAll(name, {{"_", "-"}}), "  ", flag->Help(), " (default: '",
                    flag->DefaultValue(), "')\n");
  }
  std::fputs(help.c_str(), stdout);
}

// "--max-new-tokens=3" -> "--max_new_tokens=3": Abseil flag names are identifiers.
std::string UnderscoreFlagName(const char* arg) {
  std::string s(arg);
  if (s.rfind("--", 0) != 0) return s;
  const size_t end = std::min(s.find('='), s.size());
  for (size_t i = 2; i < end; ++i)
    if (s[i] == '-') s[i] = '_';
  return s;
}

// The first line of an exception's text: torch's carry a C++ backtrace after it.
std::string FirstLine(const char* what) {
  const std::string text = what;
  return text.substr(0, text.find('\n'));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage = Usage();
  absl::SetProgramUsageMessage(usage);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fprintf(stderr, "%s\n", usage.c_str());
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  // Everything after launch's own flags belongs to the ranks' command: not for this process's flag parser.
  if (name == "launch") return agora::cli::RunLaunch(argc - 2, argv + 2);
  const Command* command = nullptr;
  for (const Command& c : Commands())
    if (c.name == name) command = &c;
  if (command == nullptr) {
    std::fprintf(stderr, "agora: unknown command '%s'\n%s\n", name.c_str(), usage.c_str());
    return 2;
  }
  // argv without the command word, flag names normalised, for Abseil's parser.
  std::vector<std::string> args = {argv[0]};
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      PrintCommandHelp(*command);
      return 0;
    }
    args.push_back(UnderscoreFlagName(argv[i]));
  }
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  try {
    std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
    return command->run(positional);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agora %s: internal error: %s\n", command->name, FirstLine(e.what()).c_str());
    return 1;
  }
}
