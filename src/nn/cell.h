/* cell.h - recurrent cells (GRU, LSTM, plain RNN) as tables of kernels.
 *
 * A cell never sees the input vector itself: every cell's input enters only
 * through the input projection gi = x W_ih^T + b_ih, of width G*H (G gates),
 * which the caller computes (a GEMM for dense inputs, a row gather of an
 * N x G*H table for one-hot input) and whose gradient dgi the cell returns.
 * That keeps the embedding modes orthogonal to the cells.
 *
 * The recurrent part: gh = h_prev W_hh^T + b_hh, W_hh is (G*H, H) row-major
 * (PyTorch's weight_hh layout, gate blocks in PyTorch order: GRU r,z,n;
 * LSTM i,f,g,o).
 *   GRU  (nn.GRUCell): r = s(gi_r + gh_r), z = s(gi_z + gh_z),
 *        n = tanh(gi_n + r * gh_n), h = (1 - z) * n + z * h_prev
 *   LSTM (nn.LSTMCell): i,f,o = s(.), g = tanh(.), c = f*c_prev + i*g,
 *        h = o * tanh(c)
 *   RNN  (nn.RNNCell): h = act(gi + gh), act = tanh or relu
 *
 * State rows are (state_mult * H) floats: [h | c] for the LSTM, [h] else.
 * Gradients are truncated at one step (GRU4Rec): backward needs only this
 * step's cache and returns no gradient for the previous state.
 *
 * Each kernel exists in float (training/inference) and double (the finite-
 * difference gradient checks); both are compiled from one source.  Kernels
 * take outputs first and accumulate parameter gradients with +=.
 *
 * forward: when no backward follows (inference) cache may be NULL and
 * state_new may alias state_prev (an in-place step).  scratch is clobbered.
 * The float kernels use GEMM through rr_sgemm (OpenBLAS) and act.h's
 * vectorised exp/tanh (a few ulps); the double ones the reference GEMM and
 * libm.  Kernels are reentrant: threads may run them on disjoint buffers. */
#ifndef RR_CELL_H
#define RR_CELL_H

#include <stddef.h>

typedef enum rr_cell_kind { RR_CELL_GRU = 0, RR_CELL_LSTM, RR_CELL_RNN_TANH, RR_CELL_RNN_RELU } rr_cell_kind;

#define RR_CELL_DECLARE(T, SFX)                                                                    \
    /* state_new (B, sH); cache (B, cH) for backward */                                            \
    typedef void (*rr_cell_fwd_##SFX)(T *state_new, T *cache, size_t B, size_t H,                  \
                                      const T *gi /* (B, GH) */, const T *state_prev /* (B, sH) */, \
                                      const T *Whh /* (GH, H) */, const T *bhh /* (GH) */,           \
                                      T *scratch /* (B, GH) */);                                     \
    /* dgi (B, GH) is overwritten; dWhh (GH, H) and dbhh (GH) accumulate.                          \
     * dh (B, H): gradient w.r.t. this step's output h. */                                         \
    typedef void (*rr_cell_bwd_##SFX)(T *dgi, T *dWhh, T *dbhh, size_t B, size_t H, const T *dh,   \
                                      const T *state_prev, const T *cache, const T *Whh,           \
                                      T *scratch /* (B, GH) */);

RR_CELL_DECLARE(float, f32)
RR_CELL_DECLARE(double, f64)

typedef struct rr_cell_ops {
    const char *name;      /* "gru", "lstm", "rnn" */
    rr_cell_kind kind;
    size_t gates;          /* G */
    size_t state_mult;     /* state floats per unit */
    size_t cache_mult;     /* cache floats per unit per row */
    rr_cell_fwd_f32 forward;
    rr_cell_bwd_f32 backward;
    rr_cell_fwd_f64 forward_f64;
    rr_cell_bwd_f64 backward_f64;
} rr_cell_ops;

const rr_cell_ops *rr_cell_get(rr_cell_kind kind);

/* GRU4Rec initialisation of a (rows, cols) weight made of `blocks` gate
 * blocks stacked along rows: each block uniform in +-sqrt(6/(fan_in+fan_out))
 * with fan_in = cols, fan_out = rows / blocks. */
struct rr_rng;
void rr_init_uniform_blocks(float *w, size_t rows, size_t cols, size_t blocks, struct rr_rng *rng);

#endif
