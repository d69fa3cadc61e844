/*
 * Random-forest models: loading ml-guard model files (FORMAT.md) and
 * evaluating them with scikit-learn's exact semantics.  No I/O except
 * mlg_model_load_file().
 */
#ifndef MLG_MODEL_H
#define MLG_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MLG_KIND_CLASSIFIER  1
#define MLG_KIND_REGRESSOR   2

#define MLG_ERR_LEN          256

/* mlg_model_parse() flags */
#define MLG_PARSE_SKIP_CHECKSUM  1   /* only for the fuzz target */

/*
 * One node, 16 bytes, four to a cache line.  An internal node sends x to
 * child[1] when !((float) x[feature] <= thr), else to child[0].  A leaf points
 * to itself through both children (feature 0), so a walk can run a fixed
 * number of steps without branching; leaf_index[] gives its outputs at
 * values[leaf_index * n_outputs].  Children index the model-wide node array.
 */
typedef struct {
    float    thr;
    int32_t  feature;
    int32_t  child[2];
} mlg_node_t;

typedef struct {
    int          kind;
    uint32_t     n_features;
    uint32_t     n_outputs;      /* classes, or 1 for a regressor */
    uint32_t     n_trees;
    uint32_t     n_nodes;
    uint32_t     n_leaves;
    int          numeric_labels;
    char       **labels;         /* n_outputs NUL-terminated class labels */
    uint32_t    *roots;          /* n_trees */
    mlg_node_t  *nodes;          /* n_nodes */
    int32_t     *leaf_index;     /* n_nodes: leaf number, -1 for splits */
    double      *values;         /* n_leaves * n_outputs */
} mlg_model_t;

/* The float32 value t such that for every float32 x: x <= thr <=> x <= t. */
float mlg_threshold_f32(double thr);

/* Parses a plain (unsealed) model image.  NULL + err on any defect. */
mlg_model_t *mlg_model_parse(const unsigned char *buf, size_t len, int flags,
    char *err);

/*
 * Opens a sealed image (AES-256-GCM, FORMAT.md) with a 32-byte key.  Returns
 * a malloc'ed plaintext or NULL + err.
 */
unsigned char *mlg_unseal(const unsigned char *buf, size_t len,
    const unsigned char *key, size_t *plain_len, char *err);

int mlg_is_sealed(const unsigned char *buf, size_t len);

/* Reads, unseals when needed (key may be NULL) and parses a model file. */
mlg_model_t *mlg_model_load_file(const char *path, const unsigned char *key,
    char *err);

/* Reads a 32-byte raw key file. 0 on success. */
int mlg_read_key_file(const char *path, unsigned char key[32], char *err);

void mlg_model_free(mlg_model_t *m);

/*
 * Evaluates n_rows rows of n_features float32 values (row-major) and writes
 * n_rows * n_outputs doubles: class probabilities (mean of the per-tree leaf
 * distributions) or regression values (mean of the leaf values).
 */
void mlg_model_predict(const mlg_model_t *m, const float *x, size_t n_rows,
    double *out);

/* Index of the first largest of n values, like numpy.argmax. */
uint32_t mlg_argmax(const double *v, uint32_t n);

#endif /* MLG_MODEL_H */
