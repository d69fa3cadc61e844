/*
 * Model files (FORMAT.md): validation, sealing, evaluation.
 *
 * scikit-learn casts features to float32 and compares them with float64
 * thresholds.  Each threshold is replaced at load time by the largest float32
 * not above it, which gives the same decision for every float32 input while
 * keeping nodes at 16 bytes.
 */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define HEADER_LEN        64
#define TREE_ENTRY_LEN    8
#define NODE_LEN          24
#define CHECKSUM_LEN      32
#define SEALED_HEADER_LEN 32
#define GCM_NONCE_LEN     12
#define GCM_TAG_LEN       16
#define FORMAT_VERSION    1
#define FLAG_NUMERIC_LABELS 1u

#define MAX_FEATURES      (1u << 20)
#define MAX_OUTPUTS       (1u << 16)
#define MAX_TREES         (1u << 20)
#define MAX_NODES         (1u << 28)
#define MAX_FILE_SIZE     ((size_t) 1 << 31)

static void
set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, MLG_ERR_LEN, fmt, ap);
    va_end(ap);
}

static uint32_t
rd_u32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}

static uint16_t
rd_u16(const unsigned char *p)
{
    return (uint16_t) (p[0] | p[1] << 8);
}

static uint64_t
rd_u64(const unsigned char *p)
{
    return (uint64_t) rd_u32(p) | (uint64_t) rd_u32(p + 4) << 32;
}

static double
rd_f64(const unsigned char *p)
{
    uint64_t  bits = rd_u64(p);
    double    d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

float
mlg_threshold_f32(double thr)
{
    float  t = (float) thr;

    if ((double) t > thr) {
        t = nextafterf(t, -INFINITY);
    }
    return t;
}

uint32_t
mlg_argmax(const double *v, uint32_t n)
{
    uint32_t  i, best = 0;

    for (i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

/* Labels flagged numeric are emitted verbatim as JSON numbers. */
static int
is_json_number(const char *s)
{
    if (*s == '-') {
        s++;
    }
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    } else {
        return 0;
    }
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9')) {
            return 0;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') {
            s++;
        }
        if (!(*s >= '0' && *s <= '9')) {
            return 0;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    return *s == '\0';
}

void
mlg_model_free(mlg_model_t *m)
{
    uint32_t  i;

    if (m == NULL) {
        return;
    }
    if (m->labels != NULL) {
        for (i = 0; i < m->n_outputs; i++) {
            free(m->labels[i]);
        }
        free(m->labels);
    }
    free(m->roots);
    free(m->nodes);
    free(m->leaf_index);
    free(m->values);
    free(m);
}

static int
verify_checksum(const unsigned char *buf, size_t len)
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   md_len = 0;

    if (!EVP_Digest(buf, len - CHECKSUM_LEN, md, &md_len, EVP_sha256(), NULL)
        || md_len != CHECKSUM_LEN)
    {
        return 0;
    }
    return memcmp(md, buf + len - CHECKSUM_LEN, CHECKSUM_LEN) == 0;
}

static int
parse_labels(mlg_model_t *m, const unsigned char *p, size_t len, char *err)
{
    size_t    off = 0;
    uint32_t  i, n;

    m->labels = calloc(m->n_outputs, sizeof(char *));
    if (m->labels == NULL) {
        set_err(err, "out of memory");
        return -1;
    }
    for (i = 0; i < m->n_outputs; i++) {
        if (off >= len) {
            set_err(err, "class label %u lies outside the label section", i);
            return -1;
        }
        n = p[off++];
        if (n == 0 || n > len - off) {
            set_err(err, "class label %u has a bad length", i);
            return -1;
        }
        if (memchr(p + off, '\0', n) != NULL) {
            set_err(err, "class label %u contains a NUL byte", i);
            return -1;
        }
        m->labels[i] = malloc(n + 1);
        if (m->labels[i] == NULL) {
            set_err(err, "out of memory");
            return -1;
        }
        memcpy(m->labels[i], p + off, n);
        m->labels[i][n] = '\0';
        off += n;
        if (m->numeric_labels && !is_json_number(m->labels[i])) {
            set_err(err, "class label %u is flagged numeric but is not a number",
                    i);
            return -1;
        }
    }
    for (; off < len; off++) {
        if (p[off] != 0) {
            set_err(err, "label section padding is not zero");
            return -1;
        }
    }
    return 0;
}

mlg_model_t *
mlg_model_parse(const unsigned char *buf, size_t len, int flags, char *err)
{
    mlg_model_t          *m;
    const unsigned char  *trees_p, *nodes_p, *values_p, *np;
    uint64_t              need;
    uint32_t              version, kind, label_bytes, mflags, t, i;
    uint32_t              base, leaf_base, tn, tl, leaves;
    int32_t               left, right, feature;
    double                thr, v;
    uint64_t              k, nv;
    uint32_t             *node_depth = NULL;

    if (len < 4 || memcmp(buf, "MLGF", 4) != 0) {
        if (mlg_is_sealed(buf, len)) {
            set_err(err, "model file is sealed: start the backend with "
                    "--model-key");
        } else {
            set_err(err, "not an ml-guard model file (bad magic)");
        }
        return NULL;
    }
    if (len < HEADER_LEN + CHECKSUM_LEN) {
        set_err(err, "model file truncated (%zu bytes)", len);
        return NULL;
    }
    version = rd_u16(buf + 4);
    kind = rd_u16(buf + 6);
    if (version != FORMAT_VERSION) {
        set_err(err, "unsupported model format version %u (want %u)", version,
                FORMAT_VERSION);
        return NULL;
    }
    if (kind != MLG_KIND_CLASSIFIER && kind != MLG_KIND_REGRESSOR) {
        set_err(err, "unknown model kind %u", kind);
        return NULL;
    }

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        set_err(err, "out of memory");
        return NULL;
    }
    m->kind = (int) kind;
    m->n_features = rd_u32(buf + 8);
    m->n_outputs = rd_u32(buf + 12);
    m->n_trees = rd_u32(buf + 16);
    m->n_nodes = rd_u32(buf + 20);
    m->n_leaves = rd_u32(buf + 24);
    label_bytes = rd_u32(buf + 28);
    mflags = rd_u32(buf + 32);
    m->numeric_labels = (mflags & FLAG_NUMERIC_LABELS) != 0;

    for (i = 36; i < HEADER_LEN; i++) {
        if (buf[i] != 0) {
            set_err(err, "reserved header bytes are not zero");
            goto fail;
        }
    }
    if (mflags & ~FLAG_NUMERIC_LABELS) {
        set_err(err, "unknown header flags 0x%x", mflags);
        goto fail;
    }
    if (m->n_features == 0 || m->n_features > MAX_FEATURES) {
        set_err(err, "bad feature count %u", m->n_features);
        goto fail;
    }
    if (kind == MLG_KIND_REGRESSOR
        ? (m->n_outputs != 1 || label_bytes != 0 || m->numeric_labels)
        : (m->n_outputs == 0 || m->n_outputs > MAX_OUTPUTS))
    {
        set_err(err, "bad class/output count %u for this model kind",
                m->n_outputs);
        goto fail;
    }
    if (m->n_trees == 0 || m->n_trees > MAX_TREES) {
        set_err(err, "bad tree count %u", m->n_trees);
        goto fail;
    }
    if (m->n_nodes < m->n_trees || m->n_nodes > MAX_NODES
        || m->n_leaves == 0 || m->n_leaves > m->n_nodes)
    {
        set_err(err, "bad node/leaf counts %u/%u", m->n_nodes, m->n_leaves);
        goto fail;
    }
    if (label_bytes % 8 != 0) {
        set_err(err, "label section size %u is not a multiple of 8",
                label_bytes);
        goto fail;
    }

    need = (uint64_t) HEADER_LEN + label_bytes
           + (uint64_t) TREE_ENTRY_LEN * m->n_trees
           + (uint64_t) NODE_LEN * m->n_nodes
           + (uint64_t) 8 * m->n_leaves * m->n_outputs + CHECKSUM_LEN;
    if (need != len) {
        set_err(err, "model file %s: %zu bytes, header describes %llu",
                len < need ? "truncated" : "has trailing data", len,
                (unsigned long long) need);
        goto fail;
    }
    if (!(flags & MLG_PARSE_SKIP_CHECKSUM) && !verify_checksum(buf, len)) {
        set_err(err, "model file checksum mismatch (corrupt file)");
        goto fail;
    }

    if (kind == MLG_KIND_CLASSIFIER) {
        if (parse_labels(m, buf + HEADER_LEN, label_bytes, err) != 0) {
            goto fail;
        }
    }

    trees_p = buf + HEADER_LEN + label_bytes;
    nodes_p = trees_p + (size_t) TREE_ENTRY_LEN * m->n_trees;
    values_p = nodes_p + (size_t) NODE_LEN * m->n_nodes;

    nv = (uint64_t) m->n_leaves * m->n_outputs;
    m->roots = malloc(sizeof(uint32_t) * m->n_trees);
    m->nodes = malloc(sizeof(mlg_node_t) * m->n_nodes);
    m->leaf_index = malloc(sizeof(int32_t) * m->n_nodes);
    node_depth = calloc(m->n_nodes, sizeof(uint32_t));
    m->values = malloc(sizeof(double) * nv);
    if (m->roots == NULL || m->nodes == NULL
        || m->leaf_index == NULL || node_depth == NULL || m->values == NULL)
    {
        set_err(err, "out of memory");
        goto fail;
    }

    base = 0;
    leaf_base = 0;
    for (t = 0; t < m->n_trees; t++) {
        tn = rd_u32(trees_p + (size_t) t * TREE_ENTRY_LEN);
        tl = rd_u32(trees_p + (size_t) t * TREE_ENTRY_LEN + 4);
        if (tn == 0 || tn > m->n_nodes - base) {
            set_err(err, "tree %u: bad node count %u", t, tn);
            goto fail;
        }
        m->roots[t] = base;
        leaves = 0;
        for (i = 0; i < tn; i++) {
            np = nodes_p + (size_t) (base + i) * NODE_LEN;
            left = (int32_t) rd_u32(np);
            right = (int32_t) rd_u32(np + 4);
            feature = (int32_t) rd_u32(np + 8);
            thr = rd_f64(np + 16);
            if (rd_u32(np + 12) != 0) {
                set_err(err, "tree %u node %u: reserved field is not zero",
                        t, i);
                goto fail;
            }
            if (left == -1) {
                if (right != -1 || feature != -1) {
                    set_err(err, "tree %u node %u: malformed leaf", t, i);
                    goto fail;
                }
                if (leaves >= tl || leaf_base + leaves >= m->n_leaves) {
                    set_err(err, "tree %u: more leaves than declared", t);
                    goto fail;
                }
                m->nodes[base + i].thr = NAN;     /* marks a leaf */
                m->nodes[base + i].feature = 0;
                m->nodes[base + i].child[0] = (int32_t) (base + i);
                m->nodes[base + i].child[1] = (int32_t) (base + i);
                m->leaf_index[base + i] = (int32_t) (leaf_base + leaves);
                leaves++;
                continue;
            }
            /* children after their parent: no cycles, bounded depth */
            if (left <= (int32_t) i || (uint32_t) left >= tn
                || right <= (int32_t) i || (uint32_t) right >= tn)
            {
                set_err(err, "tree %u node %u: child index out of range", t, i);
                goto fail;
            }
            if (feature < 0 || (uint32_t) feature >= m->n_features) {
                set_err(err, "tree %u node %u: feature %d out of range",
                        t, i, feature);
                goto fail;
            }
            if (!isfinite(thr)) {
                set_err(err, "tree %u node %u: threshold is not finite", t, i);
                goto fail;
            }
            m->nodes[base + i].thr = mlg_threshold_f32(thr);
            m->nodes[base + i].feature = feature;
            m->nodes[base + i].child[0] = (int32_t) (base + (uint32_t) left);
            m->nodes[base + i].child[1] = (int32_t) (base + (uint32_t) right);
            m->leaf_index[base + i] = -1;
            /* a tree: every node but the root has exactly one parent
             * (node_depth stays 0 until a parent is seen) */
            if (node_depth[base + (uint32_t) left] != 0
                || node_depth[base + (uint32_t) right] != 0 || left == right)
            {
                set_err(err, "tree %u node %u: a child has two parents", t, i);
                goto fail;
            }
            /* parents come first, so depths propagate in one pass */
            node_depth[base + (uint32_t) left] = node_depth[base + i] + 1;
            node_depth[base + (uint32_t) right] = node_depth[base + i] + 1;
        }
        if (leaves != tl) {
            set_err(err, "tree %u: %u leaves, header says %u", t, leaves, tl);
            goto fail;
        }
        base += tn;
        leaf_base += leaves;
    }
    if (base != m->n_nodes || leaf_base != m->n_leaves) {
        set_err(err, "trees hold %u nodes/%u leaves, header says %u/%u",
                base, leaf_base, m->n_nodes, m->n_leaves);
        goto fail;
    }

    for (k = 0; k < nv; k++) {
        v = rd_f64(values_p + k * 8);
        if (!isfinite(v) || (kind == MLG_KIND_CLASSIFIER && v < 0.0)) {
            set_err(err, "leaf value %llu is invalid", (unsigned long long) k);
            goto fail;
        }
        m->values[k] = v;
    }
    free(node_depth);
    return m;

fail:
    free(node_depth);
    mlg_model_free(m);
    return NULL;
}

int
mlg_is_sealed(const unsigned char *buf, size_t len)
{
    return len >= 4 && memcmp(buf, "MLGS", 4) == 0;
}

unsigned char *
mlg_unseal(const unsigned char *buf, size_t len, const unsigned char *key,
    size_t *plain_len, char *err)
{
    EVP_CIPHER_CTX  *ctx;
    unsigned char   *plain;
    uint64_t         n;
    int              outl, ok;

    if (!mlg_is_sealed(buf, len)) {
        set_err(err, "not a sealed model file");
        return NULL;
    }
    if (len < SEALED_HEADER_LEN + GCM_TAG_LEN) {
        set_err(err, "sealed model file truncated (%zu bytes)", len);
        return NULL;
    }
    if (rd_u16(buf + 4) != FORMAT_VERSION || rd_u16(buf + 6) != 0
        || rd_u32(buf + 28) != 0)
    {
        set_err(err, "unsupported sealed model version");
        return NULL;
    }
    n = rd_u64(buf + 20);
    if (n != len - SEALED_HEADER_LEN - GCM_TAG_LEN || n == 0 || n > INT32_MAX) {
        set_err(err, "sealed model file truncated or padded (%zu bytes, "
                "header says %llu of ciphertext)", len, (unsigned long long) n);
        return NULL;
    }
    plain = malloc(n);
    ctx = EVP_CIPHER_CTX_new();
    if (plain == NULL || ctx == NULL) {
        free(plain);
        EVP_CIPHER_CTX_free(ctx);
        set_err(err, "out of memory");
        return NULL;
    }
    ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN,
                                NULL)
         && EVP_DecryptInit_ex(ctx, NULL, NULL, key, buf + 8)
         && EVP_DecryptUpdate(ctx, NULL, &outl, buf, SEALED_HEADER_LEN)
         && EVP_DecryptUpdate(ctx, plain, &outl, buf + SEALED_HEADER_LEN,
                              (int) n)
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN,
                                (void *) (buf + len - GCM_TAG_LEN))
         && EVP_DecryptFinal_ex(ctx, plain + outl, &outl) > 0;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(plain);
        set_err(err, "sealed model failed authentication (wrong key or "
                "modified file)");
        return NULL;
    }
    *plain_len = n;
    return plain;
}

static unsigned char *
read_file(const char *path, size_t *len, char *err)
{
    struct stat     st;
    unsigned char  *buf;
    size_t          off = 0;
    ssize_t         n;
    int             fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
        || (uint64_t) st.st_size > MAX_FILE_SIZE)
    {
        set_err(err, "%s is not a regular file of sane size", path);
        close(fd);
        return NULL;
    }
    buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
    if (buf == NULL) {
        set_err(err, "out of memory reading %s", path);
        close(fd);
        return NULL;
    }
    while (off < (size_t) st.st_size) {
        n = read(fd, buf + off, (size_t) st.st_size - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            set_err(err, "cannot read %s: %s", path,
                    n < 0 ? strerror(errno) : "file shrank");
            free(buf);
            close(fd);
            return NULL;
        }
        off += (size_t) n;
    }
    close(fd);
    *len = off;
    return buf;
}

int
mlg_read_key_file(const char *path, unsigned char key[32], char *err)
{
    unsigned char  *buf;
    size_t          len;

    buf = read_file(path, &len, err);
    if (buf == NULL) {
        return -1;
    }
    if (len != 32) {
        set_err(err, "key file %s must hold exactly 32 raw bytes (has %zu)",
                path, len);
        free(buf);
        return -1;
    }
    memcpy(key, buf, 32);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return 0;
}

mlg_model_t *
mlg_model_load_file(const char *path, const unsigned char *key, char *err)
{
    unsigned char  *buf, *plain;
    size_t          len, plain_len;
    mlg_model_t    *m;
    char            inner[MLG_ERR_LEN];

    buf = read_file(path, &len, err);
    if (buf == NULL) {
        return NULL;
    }
    if (mlg_is_sealed(buf, len) && key != NULL) {
        plain = mlg_unseal(buf, len, key, &plain_len, inner);
        free(buf);
        if (plain == NULL) {
            set_err(err, "%s: %s", path, inner);
            return NULL;
        }
        buf = plain;
        len = plain_len;
    }
    m = mlg_model_parse(buf, len, 0, inner);
    free(buf);
    if (m == NULL) {
        set_err(err, "%s: %s", path, inner);
    }
    return m;
}

/* Rows per block: the block's accumulators stay in L1 while every tree is
 * walked for it, and one tree serves the whole block while it is cached. */
#define ROW_BLOCK 256
/* Rows walked in lockstep: independent loads overlap their latencies. */
#define LANES 32

static void
accumulate(const mlg_model_t *m, int32_t leaf_node, double *o)
{
    const double  *v = m->values + (size_t) m->leaf_index[leaf_node] * m->n_outputs;
    uint32_t       c;

    for (c = 0; c < m->n_outputs; c++) {
        o[c] += v[c];
    }
}

/* Small batches: one row walks LANES trees in lockstep instead. */
static void
predict_row_by_trees(const mlg_model_t *m, const float *xr, double *o)
{
    const mlg_node_t  *nodes = m->nodes, *n;
    int32_t            idx[LANES];
    uint32_t           t;
    int                k, live;

    for (t = 0; t + LANES <= m->n_trees; t += LANES) {
        for (k = 0; k < LANES; k++) {
            idx[k] = (int32_t) m->roots[t + (uint32_t) k];
        }
        do {
            live = 0;
            for (k = 0; k < LANES; k++) {
                n = &nodes[idx[k]];
                live |= n->thr == n->thr;
                idx[k] = n->child[!(xr[n->feature] <= n->thr)];
            }
        } while (live);
        for (k = 0; k < LANES; k++) {      /* in tree order, as sklearn sums */
            accumulate(m, idx[k], o);
        }
    }
    for (; t < m->n_trees; t++) {
        int32_t  i = (int32_t) m->roots[t];

        while (nodes[i].thr == nodes[i].thr) {
            n = &nodes[i];
            i = n->child[!(xr[n->feature] <= n->thr)];
        }
        accumulate(m, i, o);
    }
}

void
mlg_model_predict(const mlg_model_t *m, const float *x, size_t n_rows,
    double *out)
{
    const mlg_node_t  *nodes = m->nodes, *n;
    const float       *row[LANES];
    size_t             b, r, end, nf = m->n_features, no = m->n_outputs;
    uint32_t           t;
    int32_t            idx[LANES], root;
    int                k;

    memset(out, 0, sizeof(double) * n_rows * no);

    if (n_rows < LANES) {
        for (r = 0; r < n_rows; r++) {
            predict_row_by_trees(m, x + r * nf, out + r * no);
        }
        goto mean;
    }

    for (b = 0; b < n_rows; b += ROW_BLOCK) {
        end = b + ROW_BLOCK < n_rows ? b + ROW_BLOCK : n_rows;
        for (t = 0; t < m->n_trees; t++) {
            root = (int32_t) m->roots[t];
            r = b;
            /*
             * LANES walks in lockstep without data-dependent branches: a
             * lane at a leaf stays there (leaves loop to themselves; their
             * NaN threshold sends every x to child[1]) until all lanes are.
             */
            for (; r + LANES <= end; r += LANES) {
                int  live;

                for (k = 0; k < LANES; k++) {
                    row[k] = x + (r + (size_t) k) * nf;
                    idx[k] = root;
                }
                do {
                    live = 0;
                    for (k = 0; k < LANES; k++) {
                        n = &nodes[idx[k]];
                        live |= n->thr == n->thr;
                        idx[k] = n->child[!(row[k][n->feature] <= n->thr)];
                    }
                } while (live);
                for (k = 0; k < LANES; k++) {
                    accumulate(m, idx[k], out + (r + (size_t) k) * no);
                }
            }
            for (; r < end; r++) {
                const float  *xr = x + r * nf;
                int32_t       i = root;

                while (nodes[i].thr == nodes[i].thr) {
                    n = &nodes[i];
                    i = n->child[!(xr[n->feature] <= n->thr)];
                }
                accumulate(m, i, out + r * no);
            }
        }
    }

mean:
    for (r = 0; r < n_rows * no; r++) {
        out[r] /= (double) m->n_trees;
    }
}
