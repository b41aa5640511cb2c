/* cells.c - the cell kernel tables (GRU, LSTM, plain RNN) in float and
 * double, and GRU4Rec's weight initialisation.  The kernels themselves are
 * in cell_impl.inc, compiled here once per element type. */
#include <math.h>
#include <string.h>

#include "nn/act.h"
#include "nn/cell.h"
#include "nn/gemm.h"
#include "util/util.h"

#if defined(__GNUC__)
#define RR_FORCE_INLINE static inline __attribute__((always_inline))
#else
#define RR_FORCE_INLINE static inline
#endif

/* float: act.h's vectorisable approximations (a few ulps) */
#define T float
#define SFX f32
#define SIGM rr_fast_sigmf
#define TANH rr_fast_tanhf
#define GEMM rr_sgemm
#include "nn/cell_impl.inc"
#undef T
#undef SFX
#undef SIGM
#undef TANH
#undef GEMM

/* double: libm, for the finite-difference checks */
static inline double sigm_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
#define T double
#define SFX f64
#define SIGM sigm_f64
#define TANH tanh
#define GEMM rr_dgemm_ref
#include "nn/cell_impl.inc"
#undef T
#undef SFX
#undef SIGM
#undef TANH
#undef GEMM

static const rr_cell_ops cell_table[] = {
    {"gru", RR_CELL_GRU, 3, 1, 4, gru_forward_f32, gru_backward_f32, gru_forward_f64,
     gru_backward_f64},
    {"lstm", RR_CELL_LSTM, 4, 2, 5, lstm_forward_f32, lstm_backward_f32, lstm_forward_f64,
     lstm_backward_f64},
    {"rnn", RR_CELL_RNN_TANH, 1, 1, 1, rnn_tanh_forward_f32, rnn_tanh_backward_f32,
     rnn_tanh_forward_f64, rnn_tanh_backward_f64},
    {"rnn", RR_CELL_RNN_RELU, 1, 1, 1, rnn_relu_forward_f32, rnn_relu_backward_f32,
     rnn_relu_forward_f64, rnn_relu_backward_f64},
};

const rr_cell_ops *rr_cell_get(rr_cell_kind kind) {
    size_t k = (size_t)kind;
    if (k >= sizeof cell_table / sizeof cell_table[0]) return NULL;
    return &cell_table[k];
}

/* Each gate block of (rows / blocks, cols) gets its own Glorot-uniform
 * range sqrt(6 / (fan_in + fan_out)), as the original Theano GRU4Rec and the
 * PyTorch port's compatibility initialisation (_init_numpy_weights per gate
 * block, hidasib/GRU4Rec_PyTorch_Official) do: the three gates are three
 * separate (in, H) matrices stacked, not one (in, 3H) matrix. */
void rr_init_uniform_blocks(float *w, size_t rows, size_t cols, size_t blocks, struct rr_rng *rng) {
    RR_ASSERT(blocks > 0 && rows % blocks == 0);
    const size_t brows = rows / blocks;
    const float sigma = (float)sqrt(6.0 / (double)(cols + brows));
    for (size_t i = 0; i < rows * cols; i++)
        w[i] = (2.0f * rr_rng_uniformf(rng) - 1.0f) * sigma;
}
