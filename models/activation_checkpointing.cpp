#include "models/activation_checkpointing.h"

#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace agora {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The block travels to backward inside the autograd context, which stores IValues: a capsule holds it.
struct Block : torch::CustomClassHolder {
  explicit Block(std::function<at::Tensor(const at::Tensor&)> f) : fn(std::move(f)) {}
  std::function<at::Tensor(const at::Tensor&)> fn;
};

class Checkpoint : public torch::autograd::Function<Checkpoint> {
 public:
  // Grad mode is off inside a custom Function's forward, so the block records no graph here.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, c10::intrusive_ptr<Block> block) {
    ctx->save_for_backward({x});
    at::Tensor out = block->fn(x);
    ctx->saved_data["block"] = c10::IValue::make_capsule(std::move(block));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto block = c10::static_intrusive_pointer_cast<Block>(ctx->saved_data["block"].toCapsule());
    at::Tensor out;
    {
      at::AutoGradMode enable_grad(true);
      out = block->fn(x);
    }
    torch::autograd::backward({out}, {grad_outputs[0]});
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

at::Tensor CheckpointedCall(std::function<at::Tensor(const at::Tensor&)> block, const at::Tensor& x) {
  // A Function only enters the graph when an input requires grad. With a frozen embedding the first layer's
  // input does not, and the layer's own trainable parameters would silently get no gradient: mark the input.
  at::Tensor input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return Checkpoint::apply(input, c10::make_intrusive<Block>(std::move(block)));
}

}  // namespace agora
