#include "kernels/attention/flash_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace agora::kernels {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Element (b, pos, h, 0) of a tensor laid out per `s`.
template <typename T>
T* Row(T* base, const Strides& s, int b, int pos, int h) {
  return base + b * s.batch + pos * s.row + h * s.head;
}

float Dot(const float* a, const float* b, int n) {
  float acc = 0.f;
  for (int i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// Sample `i`'s [begin, end) in a batch row.
void SampleRange(const FlashAttentionParams& p, int i, int& begin, int& end) {
  begin = p.cu_seqlens ? p.cu_seqlens[i] : 0;
  end = p.cu_seqlens ? p.cu_seqlens[i + 1] : p.seqlen;
}

// Whether query `qi` may see key `kj` (both offsets inside one sample of length `len`).
bool Visible(const FlashAttentionParams& p, int qi, int kj, int len) { return kj < len && (!p.causal || kj <= qi); }

}  // namespace

// One "thread block" per (batch row, sample, query head, query tile), as in the CUDA grid.
void FlashAttentionForwardCpu(const FlashAttentionParams& p) {
  const int D = p.head_dim, group = p.heads_q / p.heads_kv;
  const float* q = static_cast<const float*>(p.q);
  const float* k = static_cast<const float*>(p.k);
  const float* v = static_cast<const float*>(p.v);
  float* o = static_cast<float*>(p.o);
  // scores are kept in log2 units (t = s * log2e) so that exp becomes exp2, the GPU's native instruction.
  const float scale_log2 = p.scale * kLog2e;
  std::vector<float> t(kFwdKeyTile), acc(D);
  for (int b = 0; b < p.batch; ++b)
    for (int sample = 0; sample < p.num_samples; ++sample) {
      int begin, end;
      SampleRange(p, sample, begin, end);
      const int len = end - begin;
      for (int h = 0; h < p.heads_q; ++h)
        for (int q0 = 0; q0 < len; q0 += kFwdQueryTile) {
          // A causal query tile sees no key beyond its last row: stop the key loop there.
          const int k_stop = p.causal ? std::min(len, q0 + kFwdQueryTile) : len;
          for (int qi = q0; qi < std::min(len, q0 + kFwdQueryTile); ++qi) {
            const float* q_row = Row(q, p.q_strides, b, begin + qi, h);
            // Running max m and running sum l = sum_j exp2(t_j - m) over the keys seen so far; acc = sum_j
            // exp2(t_j - m) v_j. A new tile with a larger max rescales both by exp2(m_old - m_new).
            float m = kNegInf, l = 0.f;
            std::fill(acc.begin(), acc.end(), 0.f);
            for (int k0 = 0; k0 < k_stop; k0 += kFwdKeyTile) {
              float tile_max = kNegInf;
              for (int j = 0; j < kFwdKeyTile; ++j) {
                const int kj = k0 + j;
                t[j] = Visible(p, qi, kj, len)
                           ? Dot(q_row, Row(k, p.k_strides, b, begin + kj, h / group), D) * scale_log2
                           : kNegInf;
                tile_max = std::max(tile_max, t[j]);
              }
              const float m_new = std::max(m, tile_max);
              if (m_new == kNegInf) continue;  // nothing visible yet (cannot happen for a valid row; kept for safety)
              const float correction = std::exp2(m - m_new);  // exp2(-inf) = 0 on the first visible tile
              l *= correction;
              for (float& a : acc) a *= correction;
              for (int j = 0; j < kFwdKeyTile; ++j) {
                if (t[j] == kNegInf) continue;
                const float pj = std::exp2(t[j] - m_new);
                l += pj;
                const float* v_row = Row(v, p.v_strides, b, begin + k0 + j, h / group);
                for (int d = 0; d < D; ++d) acc[d] += pj * v_row[d];
              }
              m = m_new;
            }
            float* o_row = Row(o, p.o_strides, b, begin + qi, h);
            for (int d = 0; d < D; ++d) o_row[d] = acc[d] / l;
            // lse in natural-log units: log(sum_j exp(s_j)) = (m + log2 l) / log2e.
            p.lse[(static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen + begin + qi] = (m + std::log2(l)) / kLog2e;
          }
        }
    }
}

// FlashAttention-2's backward. With P = softmax(S) recomputed from the saved lse (P_ij = exp(s_ij - lse_i)):
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - delta) with delta_i = rowsum(dO_i * O_i),
//   dQ = scale * dS K,  dK = scale * dS^T Q.
// One "thread block" per (batch row, sample, key/value head, key tile): it owns dK and dV of its keys, summed over
// every query head of the group and every query tile, so they need no atomics; dQ is summed across key tiles in
// the fp32 dq_accum (atomics on the GPU) and converted at the end.
void FlashAttentionBackwardCpu(const FlashAttentionParams& p) {
  const int D = p.head_dim, group = p.heads_q / p.heads_kv;
  const float* q = static_cast<const float*>(p.q);
  const float* k = static_cast<const float*>(p.k);
  const float* v = static_cast<const float*>(p.v);
  const float* o = static_cast<const float*>(p.o);
  const float* dout = static_cast<const float*>(p.dout);
  const float scale_log2 = p.scale * kLog2e;
  auto lse_index = [&](int b, int h, int pos) { return (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen + pos; };
  const Strides accum_strides{static_cast<int64_t>(p.seqlen) * p.heads_q * D, static_cast<int64_t>(p.heads_q) * D, D};

  // Pre-pass (its own small kernel on the GPU): delta = rowsum(dO * O).
  for (int b = 0; b < p.batch; ++b)
    for (int pos = 0; pos < p.seqlen; ++pos)
      for (int h = 0; h < p.heads_q; ++h)
        p.delta[lse_index(b, h, pos)] =
            Dot(Row(dout, p.dout_strides, b, pos, h), Row(o, p.o_strides, b, pos, h), D);

  std::vector<float> dk_tile(static_cast<size_t>(kBwdKeyTile) * D), dv_tile(dk_tile.size());
  for (int b = 0; b < p.batch; ++b)
    for (int sample = 0; sample < p.num_samples; ++sample) {
      int begin, end;
      SampleRange(p, sample, begin, end);
      const int len = end - begin;
      for (int hk = 0; hk < p.heads_kv; ++hk)
        for (int k0 = 0; k0 < len; k0 += kBwdKeyTile) {
          std::fill(dk_tile.begin(), dk_tile.end(), 0.f);
          std::fill(dv_tile.begin(), dv_tile.end(), 0.f);
          // Causal: queries before the tile's first key see none of its keys; start at the tile holding k0.
          const int q_start = p.causal ? k0 / kBwdQueryTile * kBwdQueryTile : 0;
          for (int h = hk * group; h < (hk + 1) * group; ++h)
            for (int q0 = q_start; q0 < len; q0 += kBwdQueryTile)
              for (int qi = q0; qi < std::min(len, q0 + kBwdQueryTile); ++qi) {
                const float* q_row = Row(q, p.q_strides, b, begin + qi, h);
                const float* do_row = Row(dout, p.dout_strides, b, begin + qi, h);
                const float lse_log2 = p.lse[lse_index(b, h, begin + qi)] * kLog2e;
                const float delta = p.delta[lse_index(b, h, begin + qi)];
                float* dq_row = Row(p.dq_accum, accum_strides, b, begin + qi, h);
                for (int j = 0; j < kBwdKeyTile; ++j) {
                  const int kj = k0 + j;
                  if (!Visible(p, qi, kj, len)) continue;  // P_ij = 0: contributes nothing
                  const float* k_row = Row(k, p.k_strides, b, begin + kj, hk);
                  const float* v_row = Row(v, p.v_strides, b, begin + kj, hk);
                  const float pij = std::exp2(Dot(q_row, k_row, D) * scale_log2 - lse_log2);
                  const float dpij = Dot(do_row, v_row, D);
                  const float dsij = pij * (dpij - delta);
                  for (int d = 0; d < D; ++d) {
                    dv_tile[j * D + d] += pij * do_row[d];
                    dk_tile[j * D + d] += p.scale * dsij * q_row[d];
                    dq_row[d] += p.scale * dsij * k_row[d];
                  }
                }
              }
          for (int j = 0; j < std::min(kBwdKeyTile, len - k0); ++j) {
            float* dk_row = Row(static_cast<float*>(p.dk), p.dk_strides, b, begin + k0 + j, hk);
            float* dv_row = Row(static_cast<float*>(p.dv), p.dv_strides, b, begin + k0 + j, hk);
            std::copy_n(&dk_tile[j * D], D, dk_row);
            std::copy_n(&dv_tile[j * D], D, dv_row);
          }
        }
    }

  // Post-pass (its own kernel on the GPU): dq = dq_accum in the output type.
  for (int b = 0; b < p.batch; ++b)
    for (int pos = 0; pos < p.seqlen; ++pos)
      for (int h = 0; h < p.heads_q; ++h)
        std::copy_n(Row(p.dq_accum, accum_strides, b, pos, h), D, Row(static_cast<float*>(p.dq), p.dq_strides, b, pos, h));
}

}  // namespace agora::kernels
