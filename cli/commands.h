// One entry point per `agora` command; each returns the process exit code.
#pragma once

#include <vector>

namespace agora::cli {

int RunData(const std::vector<char*>& positional_args);
int RunEval(const std::vector<char*>& positional_args);
int RunExport(const std::vector<char*>& positional_args);
int RunLaunch(int argc, char** argv);  // its own argument parsing: the rest is the ranks' command
int RunGenerate(const std::vector<char*>& positional_args);
int RunMemory(const std::vector<char*>& positional_args);
int RunSimulate(const std::vector<char*>& positional_args);
int RunTokenize(const std::vector<char*>& positional_args);
int RunTrain(const std::vector<char*>& positional_args);

}  // namespace agora::cli
