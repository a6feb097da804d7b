// The kernel lab's CPU reference: the same tiled flash-attention algorithm the CUDA kernels run (same tiles, same
// online softmax, same backward recomputation), in plain float C++ over the same FlashAttentionParams. It is what
// the algorithm is checked with on machines without a GPU (tests against float64 math attention), and the
// readable statement of what every CUDA thread block does. Slow on purpose: one row at a time, no SIMD.
#pragma once

#include "kernels/attention/flash_attention_params.h"

namespace agora::kernels {

// q, k, v, o: float; writes o and lse.
void FlashAttentionForwardCpu(const FlashAttentionParams& params);

// q, k, v, o, dout: float; lse from the forward; writes delta, dq_accum (must be zero on entry), dq, dk, dv.
void FlashAttentionBackwardCpu(const FlashAttentionParams& params);

}  // namespace agora::kernels
