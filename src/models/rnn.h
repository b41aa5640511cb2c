/* rnn.h - the recurrent session recommender (GRU4Rec and its LSTM / plain
 * RNN variants): shapes, the parameter blob with its table of named views,
 * GRU4Rec's initialisation, and the model ops (state, step, score, save,
 * load) shared by the kinds "gru", "lstm" and "rnn".
 *
 * The network (Hidasi et al., "Session-based recommendations with recurrent
 * neural networks", ICLR 2016; Hidasi & Karatzoglou, CIKM 2018):
 *
 *   x_0  = input vector of the current item (see rr_rnn_input)
 *   h_l  = cell_l(x_l, h_l(prev)),  x_{l+1} = h_l      l = 0 .. L-1
 *   s_j  = act(h_{L-1} . Wy_j + By_j)                    score of item j
 *
 * Input modes (rr_rnn_shape.embedding):
 *   -1  constrained: x_0 = Wy[item], the item's row of the output table, so
 *       the first layer reads vectors of width H_last (GRU4Rec's
 *       constrained_embedding, its best setting);
 *    K  separate: x_0 = E[item], an N x K table;
 *    0  one-hot: layer 0 has no dense input weights; its input projection
 *       is the item's row of an N x G*H_0 table plus b_ih (GRU4Rec's
 *       GRUEmbedding).
 *
 * The blob holds the dense tensors first (every layer's W_ih, W_hh, b_ih,
 * b_hh), then the item tables (E or the one-hot table X1, Wy, By), each
 * tensor starting on a 64-byte boundary.  The optimiser sees the dense
 * prefix as one vector and updates the item tables by rows. */
#ifndef RR_RNN_H
#define RR_RNN_H

#include <stdbool.h>
#include <stddef.h>

#include "models/model.h"
#include "nn/cell.h"
#include "rnnrec.h"
#include "util/util.h"

typedef enum rr_rnn_input { RR_IN_CONSTRAINED = 0, RR_IN_SEPARATE, RR_IN_ONEHOT } rr_rnn_input;

/* Everything that fixes the parameter layout and the forward function. */
typedef struct rr_rnn_shape {
    rr_cell_kind cell;
    size_t n_items;                 /* N */
    size_t n_layers;                /* L */
    size_t layers[RR_MAX_LAYERS];   /* H_0 .. H_{L-1} */
    long embedding;                 /* -1 constrained, 0 one-hot, K separate */
    rr_act final_act;               /* applied to scores by score() */
    double final_act_param;         /* elu alpha */
} rr_rnn_shape;

/* One named view of the blob: rows x cols floats at offset off. */
typedef struct rr_rnn_tensor {
    char name[16];
    size_t off, rows, cols;
    bool sparse;                    /* an item table, updated by rows */
} rr_rnn_tensor;

#define RR_RNN_MAX_TENSORS (4 * RR_MAX_LAYERS + 3)

/* Offsets (in elements, valid for a float or a double blob) and widths. */
typedef struct rr_rnn_layout {
    rr_rnn_input input;
    size_t G;                       /* gates of the cell: 3 GRU, 4 LSTM, 1 RNN */
    size_t smult;                   /* state floats per unit: 2 LSTM, else 1 */
    size_t L;
    size_t H[RR_MAX_LAYERS];        /* hidden sizes */
    size_t in[RR_MAX_LAYERS];       /* input width of each layer (in[0] = 0: one-hot) */
    size_t st_off[RR_MAX_LAYERS];   /* offset of layer l's state in a session's state */
    size_t state_floats;            /* sum of smult * H_l */
    size_t H_last, in_width;        /* H_{L-1}; width of x_0 (0 for one-hot) */
    /* tensor offsets; SIZE_MAX when absent */
    size_t Wih[RR_MAX_LAYERS];      /* (G*H_l, in_l); absent for one-hot layer 0 */
    size_t Whh[RR_MAX_LAYERS];      /* (G*H_l, H_l) */
    size_t bih[RR_MAX_LAYERS];      /* (G*H_l) */
    size_t bhh[RR_MAX_LAYERS];      /* (G*H_l) */
    size_t E;                       /* (N, K) separate input table */
    size_t X1;                      /* (N, G*H_0) one-hot input projection table */
    size_t Wy;                      /* (N, H_last) output table (input too when constrained) */
    size_t By;                      /* (N) output bias */
    size_t n_dense;                 /* elements of the dense prefix */
    size_t n_params;                /* all elements */
    size_t n_tensors;
    rr_rnn_tensor t[RR_RNN_MAX_TENSORS];
} rr_rnn_layout;

/* The model's impl. */
typedef struct rr_rnn {
    rr_rnn_shape shape;
    rr_rnn_layout lay;
    const rr_cell_ops *cell;
    float *params;                  /* (n_params) the blob, 64-byte aligned */
} rr_rnn;

/* Validates a shape and computes its layout (checked arithmetic). */
rr_status rr_rnn_layout_compute(const rr_rnn_shape *s, rr_rnn_layout *lay, rr_error *err);
/* Fills a shape from training parameters (cell from p->kind and rnn_relu). */
rr_status rr_rnn_shape_from_params(rr_rnn_shape *s, const rr_train_params *p, size_t n_items,
                                   rr_error *err);

/* Allocates an impl with a zeroed blob; rr_rnn_free accepts NULL. */
rr_status rr_rnn_new(rr_rnn **out, const rr_rnn_shape *s, rr_error *err);
void rr_rnn_free(rr_rnn *r);
/* GRU4Rec's initialisation: every weight uniform in +-sqrt(6/(fan_in +
 * fan_out)) per gate block, the item tables likewise, biases zero. */
void rr_rnn_init(rr_rnn *r, rr_rng *rng);

/* Model ops of the three kinds (same functions, different names). */
extern const rr_model_ops rr_gru_ops;
extern const rr_model_ops rr_lstm_ops;
extern const rr_model_ops rr_rnn_ops;
const rr_model_ops *rr_rnn_ops_for(rr_cell_kind cell);

/* The impl of a model of one of the kinds above, or NULL. */
rr_rnn *rr_rnn_of(const rr_model *m);

/* Inference step for n sessions, as ops->step but with caller scratch of
 * rr_rnn_step_scratch_floats(lay, n) floats (no allocation).  Rows whose
 * item is outside 0..N-1 keep their state. */
size_t rr_rnn_step_scratch_floats(const rr_rnn_layout *lay, size_t n);
void rr_rnn_step_into(const rr_rnn *r, float *const *h, const int32_t *items, size_t n,
                      float *scratch);
/* Full-catalogue scores of n last-layer hidden vectors hl (n, H_last, row
 * stride ldh): scores (n, N) = act(hl Wy^T + By), one GEMM. */
void rr_rnn_score_rows(const rr_rnn *r, const float *hl, size_t ldh, size_t n, float *scores);

#endif /* RR_RNN_H */
