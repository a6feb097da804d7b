// Sharded data parallelism (ZeRO / FSDP) over the Communicator: the levels of distributed.sharding.
//
// The trainable parameters are laid out in flat groups, one per (decoder layer or the rest, trainable, decayed,
// dtype), members in the model's registration order; a group's flat length is padded to a multiple of the world
// size and rank r owns the slice [r * n, (r + 1) * n). The layout does not depend on the world size except for
// that padding, which is what lets a checkpoint saved at W ranks be re-cut for W' (sharded_checkpoint.h).
//
//   optimizer   AdamW works on each group's shard (moments and fp32 master weights: 1/W of them per rank). The
//               gradient is accumulated in a full fp32 flat per group and all-reduced on the step's last
//               micro-batch, exactly like the unsharded path; after the update the shards are all-gathered back
//               into the (whole) parameters.
//   gradients   + each micro-batch's gradients are reduce-scattered into the rank's fp32 shard accumulator, a
//               decoder layer's as soon as the backward has passed through it (layer hooks, as at level
//               parameters): its .grad is copied into an fp32 flat and dropped, the reduce-scatter runs while the
//               layer below is differentiated, and is waited for when that layer's own starts. No rank keeps a
//               full gradient: one layer's .grad and the previous layer's flat in flight at a time.
//   parameters  + a decoder layer's parameters exist only as shards between uses: the model's weights are views
//               of the layer's flat buffer, whose memory is allocated and all-gathered as the layer's forward
//               starts (the next layer's gather is started at the same time, so it overlaps this layer's compute)
//               and released as it ends; in backward the gather happens again before the layer's backward
//               (prefetching the layer below) and the layer's gradients are reduce-scattered (as at level
//               gradients) and its weights released as soon as it is done. Embeddings, final norm and lm_head stay whole on every rank (FSDP's root unit),
//               their gradients and optimizer state sharded as at level gradients. LoRA: the frozen base layers
//               are sharded; the adapters stay whole (they are small), their optimizer state sharded.
// Every rank issues the same collectives in the same order (layers in order, groups in order).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "models/llama.h"
#include "trainer/adamw.h"
#include "trainer/distributed/communicator.h"
#include "trainer/distributed/sharding_level.h"

namespace agora {

struct FlatMember {
  std::string name;  // HF tensor name
  at::Tensor param;  // the model's parameter
  int64_t offset = 0;  // where it starts in the group's flat
};

struct FlatGroup {
  std::string name;  // "model.layers.3/decay", "model.layers.3/frozen", "root/no_decay", ...
  int64_t layer = -1;  // decoder layer, -1 for the embeddings, final norm and lm_head
  bool trainable = true;
  bool decay = true;
  bool sharded_storage = false;  // level parameters: the members' memory exists only while gathered
  std::vector<FlatMember> members;
  int64_t numel = 0;        // sum of the members' sizes
  int64_t shard_numel = 0;  // ceil(numel / world size): the padded flat holds shard_numel * world size
  at::Tensor shard;         // this rank's slice, in the parameters' dtype (what AdamW updates, when trainable)
  at::Tensor full;          // sharded_storage: the padded flat the members view; its storage freed between uses
  at::Tensor grad_sum;      // level optimizer: the step's full fp32 gradient
  // A reduce-scatter of this micro-batch's gradient in flight: the fp32 flat it reads and the shard it writes.
  std::unique_ptr<PendingCollective> reducing;
  at::Tensor reduce_input;
  at::Tensor reduce_output;
  int64_t optimizer_index = -1;
  std::unique_ptr<PendingCollective> gathering;  // sharded_storage: an all-gather in flight into `full`
  bool gathered = false;
};

struct NamedParameter {
  std::string name;
  at::Tensor param;
  bool trainable = false;
  bool decay = true;
};

// The groups of `params` at `level` for `world_size` ranks, with offsets and shard sizes (no tensor allocated):
// trainable parameters always, and at level parameters the decoder layers' frozen ones too. `keep_adapters_whole`
// (LoRA) keeps trainable layer groups out of sharded storage.
std::vector<FlatGroup> PlanFlatGroups(const std::vector<NamedParameter>& params, ShardingLevel level,
                                      int64_t world_size, bool keep_adapters_whole);

class ShardedParameters : public LayerHooks {
 public:
  // Lays out `params` (every parameter of `model`, trainable or not); at levels gradients and parameters installs
  // itself as the model's layer hooks, and at level parameters releases the layers' full weights, keeping this
  // rank's shards.
  ShardedParameters(Communicator& comm, ShardingLevel level, LlamaForCausalLM model,
                    const std::vector<NamedParameter>& params, bool keep_adapters_whole);
  ~ShardedParameters() override;
  ShardedParameters(const ShardedParameters&) = delete;
  ShardedParameters& operator=(const ShardedParameters&) = delete;

  ShardingLevel level() const { return level_; }
  int64_t world_size() const { return comm_.world_size(); }
  int64_t rank() const { return comm_.rank(); }
  const std::vector<FlatGroup>& groups() const { return groups_; }

  // What AdamW updates: one shard per trainable group, named after the group. Call once, then Attach().
  std::vector<TrainableParameter> OptimizerParameters();
  void Attach(AdamW& optimizer) { optimizer_ = &optimizer; }

  // After each micro-batch's backward: hands the gradients autograd left in the whole parameters' .grad to the
  // optimizer's shards (all-reduced on the last micro-batch at level optimizer; reduce-scattered otherwise).
  absl::Status AfterBackward(bool last_micro_batch);
  // After the optimizer's update: all-gathers the updated shards of whole-stored groups into the parameters.
  absl::Status AfterStep();
  // The global gradient norm: each rank's shards' sum of squares, summed over the ranks.
  absl::StatusOr<double> GradientNorm(const AdamW& optimizer);

  // The first error a collective in a hook met (hooks throw to stop autograd; the loop reports this).
  absl::Status error() const { return error_; }

  // LayerHooks (levels gradients and parameters).
  at::Tensor Enter(int64_t layer, const at::Tensor& hidden) override;
  at::Tensor Leave(int64_t layer, const at::Tensor& hidden) override;

  // Used by the autograd functions of Enter and Leave.
  void GatherLayer(int64_t layer);         // waits until the layer's weights are whole
  void PrefetchLayer(int64_t layer);       // starts gathering them (no-op outside [0, layers))
  void ReleaseLayer(int64_t layer);        // frees the gathered memory
  // Starts reduce-scattering the layer's gradients (dropping its .grad), after finishing the layer above's.
  void ReduceLayerGradients(int64_t layer);

 private:
  void StartGather(FlatGroup& group);
  // Copies the group's .grad into an fp32 flat, drops it and starts the reduce-scatter; Finish waits for it and
  // hands the shard to the optimizer.
  void StartReduceScatter(FlatGroup& group);
  absl::Status FinishReduceScatter(FlatGroup& group);
  void Check(absl::Status status);  // records and throws

  Communicator& comm_;
  ShardingLevel level_;
  LlamaForCausalLM model_;
  std::vector<FlatGroup> groups_;
  std::vector<std::vector<size_t>> layer_groups_;      // sharded-storage groups of each decoder layer
  std::vector<std::vector<size_t>> layer_trainable_;   // trainable groups of each decoder layer
  AdamW* optimizer_ = nullptr;
  at::Tensor backward_anchor_;  // requires grad: puts every layer's Enter node in the backward graph
  absl::Status error_;
};

}  // namespace agora
