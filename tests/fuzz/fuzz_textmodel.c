/*
 * fuzz_textmodel.c -- libFuzzer target for rd_textmodel: tokenisation and feature extraction,
 * prediction, and the model loader.
 *
 * Complaint text arrives from every channel and a model file may be damaged on disk, so no
 * byte sequence may crash, leak or hang either. The first input byte picks what to exercise:
 *
 *   0  feature extraction with options taken from the next bytes, on the rest as text: the
 *      count returned equals the hashes delivered, none is 0, and a second run is identical;
 *   1  prediction with a model trained at start-up (English and Chinese): a label in range,
 *      finite scores, confidence in [0, 1];
 *   2  the rest as a model file, as is and with its checksum recomputed (otherwise almost
 *      every input would stop at the checksum);
 *   3  a real model file edited by the rest as (offset, byte) pairs, possibly cut, resealed:
 *      reaches the parser's deeper checks with nearly valid files.
 * Whatever loads must predict and must serialise back to exactly the bytes it was read from.
 *
 * Build and run: see tests/fuzz/CMakeLists.txt (ctest -L fuzz runs each target for 20 seconds).
 */
#include <math.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_textmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECKSUM_LEN 32 /* BLAKE2b-256 at the end of the file (rd_textmodel.c) */

static const char *const train_texts[] = {
    "I was charged twice on my bill and want a refund",
    "the invoice shows a fee I never agreed to",
    "电费扣款两次，要求退款",
    "power outage since yesterday, please restore",
    "no electricity in the whole building, blackout",
    "小区停电超过8小时",
    "thanks to the agent, great and helpful service",
    "感谢工作人员，表扬",
    "praise for the quick repair, thank you",
};
static const char *const train_labels[] = {"billing", "billing", "billing", "outage", "outage",
                                           "outage",  "praise",  "praise",  "praise"};
#define NTRAIN (sizeof(train_texts) / sizeof(train_texts[0]))

static rd_model *model;
static uint8_t *model_bytes;
static size_t model_len;

static void setup(void)
{
    size_t lens[NTRAIN];
    rd_train_opts o;
    char err[256];

    if (model != NULL)
        return;
    for (size_t i = 0; i < NTRAIN; i++)
        lens[i] = strlen(train_texts[i]);
    rd_train_opts_default(&o);
    o.features.char_min = 2; /* exercise every kind of feature */
    o.features.char_max = 4;
    o.features.word_ngrams = 2;
    o.calibration_folds = 2;
    o.trained_at = 1795000000;
    model = rd_model_train(train_texts, lens, train_labels, NTRAIN, &o, err, sizeof(err));
    if (model == NULL || (model_bytes = rd_model_serialize(model, &model_len)) == NULL)
        abort();
}

typedef struct {
    uint64_t sum;
    size_t n;
} digest;

static void digest_add(void *ctx, const uint32_t *h, size_t n)
{
    digest *d = ctx;

    for (size_t i = 0; i < n; i++) {
        if (h[i] == 0)
            abort();
        d->sum = d->sum * 1000003u + h[i];
    }
    d->n += n;
}

static void fuzz_features(const uint8_t *data, size_t size)
{
    rd_feature_opts o;
    digest a = {0}, b = {0};

    if (size < 3)
        return;
    o.word_ngrams = data[0] % 4;
    o.char_min = data[1] % 7;
    o.char_max = o.char_min ? o.char_min + (data[1] >> 4) % (7 - o.char_min) : 0;
    o.cjk_min = data[2] % 5;
    o.cjk_max = o.cjk_min ? o.cjk_min + (data[2] >> 4) % (5 - o.cjk_min) : 0;
    o.drop_redactions = data[0] & 0x10;
    o.fold_digits = data[0] & 0x20;
    const char *text = (const char *)data + 3;
    size_t len = size - 3;
    size_t n = rd_text_features(&o, text, len, digest_add, &a);
    if (n != a.n || rd_text_features(&o, text, len, NULL, NULL) != n)
        abort();
    rd_text_features(&o, text, len, digest_add, &b);
    if (a.sum != b.sum || a.n != b.n)
        abort();
}

static void check_predictions(const rd_model *m, const char *text, size_t len)
{
    rd_prediction p;
    double scores[4096];

    if (rd_model_nlabels(m) > 4096 || !rd_model_predict(m, text, len, &p) || !rd_model_scores(m, text, len, scores))
        abort();
    if (p.label < 0 || p.label >= rd_model_nlabels(m) || rd_model_label(m, p.label) == NULL ||
        !(p.confidence >= 0 && p.confidence <= 1) || !isfinite(p.score))
        abort();
}

/* Loads buf; what loads must predict and serialise back to the same bytes. */
static void try_load(const uint8_t *buf, size_t len)
{
    char err[256] = "";
    rd_model *m = rd_model_load_mem(buf, len, err, sizeof(err));

    if (m == NULL) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
        return;
    }
    check_predictions(m, "charged twice 停电", strlen("charged twice 停电"));
    size_t n;
    uint8_t *again = rd_model_serialize(m, &n);
    if (again == NULL || n != len || memcmp(again, buf, len) != 0)
        abort();
    free(again);
    rd_model_destroy(&m);
}

static void reseal(uint8_t *buf, size_t len)
{
    if (len >= CHECKSUM_LEN)
        crypto_generichash(buf + len - CHECKSUM_LEN, CHECKSUM_LEN, buf, len - CHECKSUM_LEN, NULL, 0);
}

static void fuzz_load_raw(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size + 1);

    try_load(data, size);
    if (copy == NULL)
        return;
    memcpy(copy, data, size);
    reseal(copy, size);
    try_load(copy, size);
    free(copy);
}

/* data: [cut u16][(offset u16, xor u8)...] applied to the real model's bytes. */
static void fuzz_load_edit(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(model_len);
    size_t len = model_len;

    if (copy == NULL)
        return;
    memcpy(copy, model_bytes, model_len);
    if (size >= 2) {
        size_t cut = (size_t)data[0] | (size_t)data[1] << 8;
        if (cut != 0 && cut < len)
            len = cut;
        data += 2;
        size -= 2;
    }
    for (; size >= 3; data += 3, size -= 3) {
        size_t at = ((size_t)data[0] | (size_t)data[1] << 8) % len;
        copy[at] ^= data[2];
    }
    reseal(copy, len);
    try_load(copy, len);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_features(data + 1, size - 1);
        break;
    case 1:
        check_predictions(model, (const char *)data + 1, size - 1);
        break;
    case 2:
        fuzz_load_raw(data + 1, size - 1);
        break;
    default:
        fuzz_load_edit(data + 1, size - 1);
        break;
    }
    return 0;
}
