/*
 * Unit tests for rd_textmodel: feature extraction on English and Chinese, hostile input
 * (invalid UTF-8, controls, empty, 5 MB), training on a small synthetic set, save -> load
 * identity, rejection of corrupt and truncated files, determinism and concurrent prediction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sodium.h>
#include <unistd.h>

#include <cmocka.h>

#include "rd_textmodel.h"

/* ------------------------------------------------------------------------------------------------
 * Features
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t h[4096];
    size_t n;
} feats;

static void collect(void *ctx, const uint32_t *h, size_t n)
{
    feats *f = ctx;

    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(h[i], 0);
        if (f->n < sizeof(f->h) / sizeof(f->h[0]))
            f->h[f->n++] = h[i];
    }
}

static size_t extract(const rd_feature_opts *o, const char *s, size_t len, feats *f)
{
    memset(f, 0, sizeof(*f));
    size_t n = rd_text_features(o, s, len, collect, f);
    assert_int_equal(n, f->n);
    return n;
}

/* True when both texts give the same feature sequence. */
static bool same_features(const rd_feature_opts *o, const char *a, const char *b)
{
    static feats fa, fb;

    extract(o, a, strlen(a), &fa);
    extract(o, b, strlen(b), &fb);
    return fa.n == fb.n && memcmp(fa.h, fb.h, fa.n * sizeof(fa.h[0])) == 0;
}

static rd_feature_opts words_only(int n)
{
    rd_feature_opts o;

    rd_feature_opts_default(&o);
    o.word_ngrams = (uint8_t)n;
    o.char_min = o.char_max = 0;
    return o;
}

static void test_english(void **state)
{
    rd_feature_opts o = words_only(1);
    static feats f;

    (void)state;
    assert_int_equal(extract(&o, "The credit report", 17, &f), 3);
    assert_true(same_features(&o, "The credit report", "THE  Credit,report!!"));
    assert_true(
        same_features(&o, "credit", "\xEF\xBC\xA3\xEF\xBC\xB2\xEF\xBD\x85\xEF\xBD\x84\xEF\xBD\x89\xEF\xBD\x94"));
    assert_false(same_features(&o, "credit report", "report credit"));
    /* Redactions vanish: their neighbours become adjacent. */
    assert_true(same_features(&o, "my XXXX account xx/xx/2019", "my account 2019"));
    o.drop_redactions = false;
    assert_false(same_features(&o, "my XXXX account", "my account"));
    /* Bigrams: n words give n unigrams and n - 1 bigrams. */
    o = words_only(2);
    assert_int_equal(extract(&o, "late fee charged twice", 22, &f), 7);
    /* Character n-grams of " fee " of lengths 3..5: 3 + 2 + 1, plus the word itself. */
    o = words_only(1);
    o.char_min = 3;
    o.char_max = 5;
    assert_int_equal(extract(&o, "fee", 3, &f), 7);
    /* Digits fold to a shape when asked. */
    o = words_only(1);
    o.fold_digits = true;
    assert_true(same_features(&o, "paid $1,250 on 2019", "paid $9,999 on 1984"));
}

static void test_chinese(void **state)
{
    rd_feature_opts o = words_only(1);
    static feats f;

    (void)state;
    /* Four characters: four unigrams and three bigrams. */
    assert_int_equal(extract(&o, "电费异常", strlen("电费异常"), &f), 7);
    /* Punctuation (full-width comma) ends a run: no bigram across it. */
    assert_int_equal(extract(&o, "电费，异常", strlen("电费，异常"), &f), 6);
    /* A Latin word inside Chinese is a word and also breaks the run: 市 A3 区. */
    assert_int_equal(extract(&o, "A市A3区", strlen("A市A3区"), &f), 4);
    assert_true(same_features(&o, "电费异常", "电费异常"));
    assert_false(same_features(&o, "电费异常", "异常电费"));
    o.cjk_min = 1;
    o.cjk_max = 3;
    assert_int_equal(extract(&o, "电费异常", strlen("电费异常"), &f), 9);
    /* Mixed text: both kinds of feature. */
    o = words_only(1);
    assert_int_equal(extract(&o, "My bill 电费", strlen("My bill 电费"), &f), 2 + 3);
}

static void test_hostile_bytes(void **state)
{
    rd_feature_opts o = words_only(1);
    static feats f;
    /* Invalid bytes, an overlong '/', a surrogate, a truncated sequence, NUL and controls all
     * separate words; nothing else changes. */
    static const char bad[] = "\xFF"
                              "abc\xC0\xAF"
                              "def\xED\xA0\x80"
                              "ghi\x00jkl\x01\x1F\x7F"
                              "mno\xE7\x94";
    (void)state;
    assert_int_equal(extract(&o, bad, sizeof(bad) - 1, &f), 5);
    assert_true(f.n == 5);
    feats g;
    memset(&g, 0, sizeof(g));
    rd_text_features(&o, "abc def ghi jkl mno", 19, collect, &g);
    assert_memory_equal(f.h, g.h, 5 * sizeof(uint32_t));
    /* Empty and NULL. */
    assert_int_equal(rd_text_features(&o, "", 0, collect, &f), 0);
    assert_int_equal(rd_text_features(&o, NULL, 12345, NULL, NULL), 0);
    /* Only separators. */
    assert_int_equal(rd_text_features(&o, "\xFF\xFE ,.;\xE3\x80\x82", 9, NULL, NULL), 0);
    /* A very long word: hashed whole, its character n-grams capped, no crash. */
    char *w = malloc(100000);
    assert_non_null(w);
    memset(w, 'a', 100000);
    o.char_min = 2;
    o.char_max = 5;
    assert_true(rd_text_features(&o, w, 100000, NULL, NULL) > 1);
    free(w);
}

/* ------------------------------------------------------------------------------------------------
 * A small synthetic training set: three kinds of message in English and Chinese
 * --------------------------------------------------------------------------------------------- */

#define NDOCS 90

static const char *const kind_words[3][6] = {
    {"bill", "charged", "invoice", "refund", "电费", "扣款"},
    {"outage", "power", "blackout", "restore", "停电", "断电"},
    {"thanks", "great", "helpful", "praise", "表扬", "感谢"},
};
static const char *const filler[8] = {"the", "my", "today", "please", "我们", "小区", "again", "service"};
static const char *const kind_names[3] = {"billing", "outage", "praise"};

static char *docs[NDOCS];
static size_t lens[NDOCS];
static const char *labels[NDOCS];

/* Deterministic: message i mixes words of kind i % 3 with filler. */
static void make_docs(void)
{
    uint32_t r = 12345;

    for (int i = 0; i < NDOCS; i++) {
        char buf[512] = "";
        for (int k = 0; k < 10; k++) {
            r = r * 1103515245u + 12345u;
            const char *w = (r >> 16) % 3 == 0 ? filler[(r >> 8) % 8] : kind_words[i % 3][(r >> 4) % 6];
            strcat(buf, w);
            strcat(buf, k % 4 == 3 ? "，" : " ");
        }
        docs[i] = strdup(buf);
        lens[i] = strlen(buf);
        labels[i] = kind_names[i % 3];
    }
}

static void free_docs(void)
{
    for (int i = 0; i < NDOCS; i++)
        free(docs[i]);
}

static rd_model *train(const rd_train_opts *o)
{
    char err[256] = "";
    rd_model *m = rd_model_train((const char *const *)docs, lens, labels, NDOCS, o, err, sizeof(err));

    if (m == NULL)
        fail_msg("training failed: %s", err);
    return m;
}

static rd_train_opts fixed_opts(void)
{
    rd_train_opts o;

    rd_train_opts_default(&o);
    o.name = "unit";
    o.trained_at = 1795000000; /* 2026-11-18T11:06:40Z: a fixed time, so versions compare */
    return o;
}

static int predict_label(const rd_model *m, const char *text)
{
    rd_prediction p;

    assert_true(rd_model_predict(m, text, strlen(text), &p));
    assert_true(p.confidence >= 0 && p.confidence <= 1);
    return p.label;
}

static void test_train_predict(void **state)
{
    rd_train_opts o = fixed_opts();
    rd_model *m;

    (void)state;
    make_docs();
    m = train(&o);
    assert_int_equal(rd_model_nlabels(m), 3);
    assert_string_equal(rd_model_label(m, 0), "billing");
    assert_string_equal(rd_model_label(m, 2), "praise");
    assert_null(rd_model_label(m, 3));
    assert_int_equal(strncmp(rd_model_version(m), "unit-20261118T110640Z-", 22), 0);
    assert_int_equal(predict_label(m, "I was charged twice on my bill, please refund"), 0);
    assert_int_equal(predict_label(m, "小区停电了，什么时候恢复"), 1);
    assert_int_equal(predict_label(m, "great service, thanks! 表扬"), 2);
    assert_int_equal(predict_label(m, "电费扣款不对"), 0);
    /* Text the model has never seen still gets an answer (from the biases). */
    predict_label(m, "");
    predict_label(m, "zzz qqq");
    rd_model_destroy(&m);
    assert_null(m);
    free_docs();
}

static void test_train_errors(void **state)
{
    rd_train_opts o = fixed_opts();
    const char *t[2] = {"a", "b"}, *one[2] = {"x", "x"}, *empty[2] = {"x", ""};
    size_t l[2] = {1, 1};
    char err[256];

    (void)state;
    assert_null(rd_model_train(t, l, one, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "distinct labels"));
    assert_null(rd_model_train(t, l, empty, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "label"));
    assert_null(rd_model_train(t, l, one, 0, &o, err, sizeof(err)));
    o.c = -1;
    assert_null(rd_model_train(t, l, one, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "invalid training options"));
    o = fixed_opts();
    o.features.word_ngrams = 0;
    o.features.cjk_min = o.features.cjk_max = 0;
    assert_null(rd_model_train(t, l, one, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "feature options"));
}

/* ------------------------------------------------------------------------------------------------
 * Save, load, corruption, determinism
 * --------------------------------------------------------------------------------------------- */

static const char *const probes[] = {
    "charged twice, refund please", "停电三天了", "thanks for the helpful service", "", "\xFF\xFE garbage \xC0",
    "the my today please",          "表扬电费",   "power bill refund outage",
};
#define NPROBES (sizeof(probes) / sizeof(probes[0]))

static void assert_same_predictions(const rd_model *a, const rd_model *b)
{
    for (size_t i = 0; i < NPROBES; i++) {
        double sa[3], sb[3];
        rd_prediction pa, pb;
        assert_true(rd_model_scores(a, probes[i], strlen(probes[i]), sa));
        assert_true(rd_model_scores(b, probes[i], strlen(probes[i]), sb));
        assert_memory_equal(sa, sb, sizeof(sa)); /* bit for bit, not approximately */
        assert_true(rd_model_predict(a, probes[i], strlen(probes[i]), &pa));
        assert_true(rd_model_predict(b, probes[i], strlen(probes[i]), &pb));
        assert_int_equal(pa.label, pb.label);
        assert_memory_equal(&pa.confidence, &pb.confidence, sizeof(double));
    }
}

static void test_save_load(void **state)
{
    rd_train_opts o = fixed_opts();
    char path[] = "/tmp/rd_textmodel_test_XXXXXX", err[256];
    int fd = mkstemp(path);
    rd_model *m, *l;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    make_docs();
    o.text_cols = "subject,detail";
    o.label_col = "kind";
    m = train(&o);
    assert_true(rd_model_save(m, path, err, sizeof(err)));
    l = rd_model_load(path, err, sizeof(err));
    if (l == NULL)
        fail_msg("load: %s", err);
    assert_string_equal(rd_model_version(l), rd_model_version(m));
    assert_string_equal(rd_model_name(l), "unit");
    assert_string_equal(rd_model_text_cols(l), "subject,detail");
    assert_string_equal(rd_model_label_col(l), "kind");
    assert_int_equal(rd_model_nfeatures(l), rd_model_nfeatures(m));
    for (int i = 0; i < 3; i++)
        assert_string_equal(rd_model_label(l, i), rd_model_label(m, i));
    assert_same_predictions(m, l);
    /* And the loaded model serialises to the same bytes. */
    size_t la, lb;
    void *a = rd_model_serialize(m, &la), *b = rd_model_serialize(l, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    rd_model_destroy(&l);
    rd_model_destroy(&m);
    unlink(path);
    assert_null(rd_model_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    free_docs();
}

/* Recomputes the trailing checksum, so a deliberate edit reaches the parser behind it. */
static void reseal(uint8_t *buf, size_t len)
{
    crypto_generichash(buf + len - 32, 32, buf, len - 32, NULL, 0);
}

static void expect_reject(const uint8_t *buf, size_t len, const char *why)
{
    char err[256] = "";
    rd_model *m = rd_model_load_mem(buf, len, err, sizeof(err));

    if (m != NULL)
        fail_msg("accepted a bad model (expected \"%s\")", why);
    if (strstr(err, why) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, why);
}

static void test_corrupt(void **state)
{
    rd_train_opts o = fixed_opts();
    rd_model *m;
    size_t len;
    uint8_t *buf, *copy;

    (void)state;
    make_docs();
    m = train(&o);
    buf = rd_model_serialize(m, &len);
    assert_non_null(buf);
    copy = malloc(len);
    assert_non_null(copy);

    /* Every truncation is refused. */
    for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 97))
        expect_reject(buf, cut, cut < 44 ? "too short" : "checksum");
    /* Any flipped byte is caught by the checksum (or the magic, or the format). */
    for (size_t i = 0; i < len; i += 13) {
        memcpy(copy, buf, len);
        copy[i] ^= 0x40;
        expect_reject(copy, len, i < 8 ? "magic" : i < 12 ? "format" : "checksum");
    }
    /* Edits with a valid checksum meet the parser's own checks. */
    memcpy(copy, buf, len);
    copy[8] = 3;
    reseal(copy, len);
    expect_reject(copy, len, "unsupported model format 3");
    /* A model without attributes read as format 2 lacks the attribute sections. */
    memcpy(copy, buf, len);
    copy[8] = 2;
    reseal(copy, len);
    expect_reject(copy, len, "invalid model");
    memcpy(copy, buf, len);
    copy[12] ^= 0x01; /* the metadata length */
    reseal(copy, len);
    expect_reject(copy, len, "invalid model");
    /* A trailing byte (sealed): the sizes no longer add up. */
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len - 32);
    longer[len - 32] = 0;
    reseal(longer, len + 1);
    expect_reject(longer, len + 1, "trailing bytes");
    free(longer);
    /* The intact bytes still load. */
    char err[256];
    rd_model *l = rd_model_load_mem(buf, len, err, sizeof(err));
    assert_non_null(l);
    rd_model_destroy(&l);
    free(copy);
    free(buf);
    rd_model_destroy(&m);
    free_docs();
}

static void test_deterministic(void **state)
{
    rd_train_opts o = fixed_opts();
    rd_model *a, *b;
    size_t la, lb;

    (void)state;
    make_docs();
    a = train(&o);
    b = train(&o);
    void *sa = rd_model_serialize(a, &la), *sb = rd_model_serialize(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(sa, sb, la);
    assert_string_equal(rd_model_version(a), rd_model_version(b));
    free(sa);
    free(sb);
    /* Different weights, a different version. */
    o.c = 0.1;
    rd_model *c = train(&o);
    assert_string_not_equal(rd_model_version(a), rd_model_version(c));
    rd_model_destroy(&c);
    rd_model_destroy(&a);
    rd_model_destroy(&b);
    free_docs();
}

/* ------------------------------------------------------------------------------------------------
 * Attributes
 * --------------------------------------------------------------------------------------------- */

/* Documents whose text says nothing (filler only); the organisation alone tells the class. */
#define NATTR_DOCS 60
static const char *const orgs[3] = {"Power Grid Co.", "Water Board", "City Gas"};
static const char *attr_vals[NATTR_DOCS * 2];
static const char *attr_texts[NATTR_DOCS];
static size_t attr_lens[NATTR_DOCS];
static const char *attr_labels[NATTR_DOCS];
static const char *const attr_names2[2] = {"organisation", "channel"};
static const char *const attr_cols2[2] = {"Company", "Submitted via"};

static rd_model *train_with_attrs(void)
{
    rd_train_opts o = fixed_opts();
    char err[256] = "";

    for (int i = 0; i < NATTR_DOCS; i++) {
        attr_texts[i] = filler[i % 8];
        attr_lens[i] = strlen(attr_texts[i]);
        attr_labels[i] = kind_names[i % 3];
        attr_vals[2 * i] = i % 10 == 9 ? NULL : orgs[i % 3]; /* some missing */
        attr_vals[2 * i + 1] = i % 2 ? "web" : "phone";      /* says nothing */
    }
    o.nattrs = 2;
    o.attr_names = attr_names2;
    o.attr_cols = attr_cols2;
    o.text_cols = "text";
    o.label_col = "kind";
    rd_model *m = rd_model_train_attrs(attr_texts, attr_lens, attr_vals, attr_labels, NATTR_DOCS, &o, err, sizeof(err));
    if (m == NULL)
        fail_msg("training with attributes failed: %s", err);
    return m;
}

static int predict_org(const rd_model *m, const char *org)
{
    rd_attr a[3] = {{"region", "north"}, {"organisation", org}, {"organisation", "Water Board"}};
    rd_prediction p;

    assert_true(rd_model_predict_attrs(m, "the my", 6, a, 3, &p)); /* the first "organisation" counts */
    return p.label;
}

static void test_attrs(void **state)
{
    rd_model *m = train_with_attrs();

    (void)state;
    assert_int_equal(rd_model_nattrs(m), 2);
    assert_string_equal(rd_model_attr_name(m, 0), "organisation");
    assert_string_equal(rd_model_attr_col(m, 1), "Submitted via");
    assert_null(rd_model_attr_name(m, 2));
    /* The organisation decides; its value is folded (case, spacing, punctuation). */
    assert_int_equal(predict_org(m, "Power Grid Co."), 0);
    assert_int_equal(predict_org(m, "  POWER   grid co "), 0);
    assert_int_equal(predict_org(m, "Water Board"), 1);
    assert_int_equal(predict_org(m, "city-gas"), 2);
    /* Without attributes, or with unknown ones, it still answers. */
    rd_prediction p;
    assert_true(rd_model_predict(m, "the my", 6, &p));
    assert_true(rd_model_predict_attrs(m, "the my", 6, NULL, 0, &p));
    assert_false(rd_model_predict_attrs(m, "the my", 6, NULL, 1, &p));
    rd_attr blank = {"organisation", " \t"}, none = {"organisation", NULL};
    double s1[3], s2[3], s3[3];
    assert_true(rd_model_scores(m, "the my", 6, s1));
    assert_true(rd_model_scores_attrs(m, "the my", 6, &blank, 1, s2));
    assert_true(rd_model_scores_attrs(m, "the my", 6, &none, 1, s3));
    assert_memory_equal(s1, s2, sizeof(s1));
    assert_memory_equal(s1, s3, sizeof(s1));
    rd_model_destroy(&m);
}

static void test_attrs_save_load(void **state)
{
    rd_model *m = train_with_attrs(), *l;
    size_t la, lb;
    uint8_t *a = rd_model_serialize(m, &la);
    char err[256];

    (void)state;
    assert_non_null(a);
    assert_int_equal(a[8], 2); /* format 2: a reader that knows attributes */
    l = rd_model_load_mem(a, la, err, sizeof(err));
    if (l == NULL)
        fail_msg("load: %s", err);
    assert_string_equal(rd_model_version(l), rd_model_version(m));
    assert_int_equal(rd_model_nattrs(l), 2);
    assert_string_equal(rd_model_attr_name(l, 1), "channel");
    assert_string_equal(rd_model_attr_col(l, 0), "Company");
    const char *const orgs_probe[] = {"Power Grid Co.", "water board", "CITY GAS", "", "Unknown Ltd"};
    for (size_t i = 0; i < 5; i++) {
        rd_attr at[2] = {{"channel", "web"}, {"organisation", orgs_probe[i]}};
        double sa[3], sb[3];
        rd_prediction pa, pb;
        assert_true(rd_model_scores_attrs(m, "today please", 12, at, 2, sa));
        assert_true(rd_model_scores_attrs(l, "today please", 12, at, 2, sb));
        assert_memory_equal(sa, sb, sizeof(sa));
        assert_true(rd_model_predict_attrs(m, "today please", 12, at, 2, &pa));
        assert_true(rd_model_predict_attrs(l, "today please", 12, at, 2, &pb));
        assert_int_equal(pa.label, pb.label);
        assert_memory_equal(&pa.confidence, &pb.confidence, sizeof(double));
    }
    uint8_t *b = rd_model_serialize(l, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(b);
    /* Corrupt or truncated attribute sections are refused. */
    for (size_t cut = 44; cut < la; cut += 7)
        expect_reject(a, cut, "checksum");
    uint8_t *copy = malloc(la);
    assert_non_null(copy);
    memcpy(copy, a, la);
    copy[8] = 1; /* read as format 1, the attribute sections are in the way */
    reseal(copy, la);
    expect_reject(copy, la, "invalid model");
    free(copy);
    free(a);
    rd_model_destroy(&l);
    rd_model_destroy(&m);
}

static void test_attrs_errors(void **state)
{
    rd_train_opts o = fixed_opts();
    const char *t[2] = {"a", "b"}, *lab[2] = {"x", "y"}, *vals[4] = {"p", "q", "r", "s"};
    const char *bad_name[2] = {"Organisation", "channel"}, *dup[2] = {"org", "org"}, *ok[2] = {"org", "channel"};
    size_t l[2] = {1, 1};
    char err[256];

    (void)state;
    o.nattrs = 2;
    o.attr_names = ok;
    assert_null(rd_model_train(t, l, lab, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "rd_model_train_attrs"));
    assert_null(rd_model_train_attrs(t, l, NULL, lab, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "without values"));
    o.attr_names = bad_name;
    assert_null(rd_model_train_attrs(t, l, vals, lab, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "attribute name"));
    o.attr_names = dup;
    assert_null(rd_model_train_attrs(t, l, vals, lab, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "distinct"));
    o.attr_names = ok;
    o.nattrs = RD_MAX_ATTRS + 1;
    assert_null(rd_model_train_attrs(t, l, vals, lab, 2, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "attributes"));
    /* No attributes: the same model, the same bytes (format 1) as rd_model_train. */
    o = fixed_opts();
    make_docs();
    rd_model *a = train(&o);
    rd_model *b = rd_model_train_attrs((const char *const *)docs, lens, NULL, labels, NDOCS, &o, err, sizeof(err));
    assert_non_null(b);
    size_t la, lb;
    uint8_t *sa = rd_model_serialize(a, &la), *sb = rd_model_serialize(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(sa, sb, la);
    assert_int_equal(sa[8], 1);
    assert_int_equal(rd_model_nattrs(a), 0);
    free(sa);
    free(sb);
    rd_model_destroy(&a);
    rd_model_destroy(&b);
    free_docs();
}

/* ------------------------------------------------------------------------------------------------
 * Big input and threads
 * --------------------------------------------------------------------------------------------- */

static void test_five_megabytes(void **state)
{
    rd_train_opts o = fixed_opts();
    size_t n = 5 * 1024 * 1024;
    char *big = malloc(n);
    uint32_t r = 7;
    rd_prediction p;

    (void)state;
    assert_non_null(big);
    /* Half random bytes, half words and Chinese. */
    for (size_t i = 0; i < n;) {
        r = r * 1103515245u + 12345u;
        const char *piece = (r >> 16) % 4 == 0 ? "停电 " : "bill ";
        size_t k = strlen(piece);
        if ((r >> 16) % 4 >= 2 || i + k > n) {
            big[i++] = (char)(r >> 8);
            continue;
        }
        memcpy(big + i, piece, k);
        i += k;
    }
    make_docs();
    rd_model *m = train(&o);
    assert_true(rd_text_features(rd_model_feature_opts(m), big, n, NULL, NULL) > 100000);
    assert_true(rd_model_predict(m, big, n, &p));
    assert_true(p.label >= 0 && p.label < 3);
    assert_true(p.confidence >= 0 && p.confidence <= 1);
    rd_model_destroy(&m);
    free(big);
    free_docs();
}

typedef struct {
    const rd_model *m;
    int labels[NPROBES];
    bool ok;
} worker;

static void *predict_many(void *arg)
{
    worker *w = arg;

    w->ok = true;
    for (int round = 0; round < 2000; round++)
        for (size_t i = 0; i < NPROBES; i++) {
            rd_prediction p;
            if (!rd_model_predict(w->m, probes[i], strlen(probes[i]), &p) || (round > 0 && p.label != w->labels[i]))
                w->ok = false;
            w->labels[i] = p.label;
        }
    return NULL;
}

static void test_threads(void **state)
{
    rd_train_opts o = fixed_opts();
    pthread_t t[4];
    worker w[4];

    (void)state;
    make_docs();
    rd_model *m = train(&o);
    for (int i = 0; i < 4; i++) {
        w[i].m = m;
        assert_int_equal(pthread_create(&t[i], NULL, predict_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(w[i].ok);
        assert_memory_equal(w[i].labels, w[0].labels, sizeof(w[0].labels));
    }
    rd_model_destroy(&m);
    free_docs();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_english),        cmocka_unit_test(test_chinese),
        cmocka_unit_test(test_hostile_bytes),  cmocka_unit_test(test_train_predict),
        cmocka_unit_test(test_train_errors),   cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_corrupt),        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_five_megabytes), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_attrs),          cmocka_unit_test(test_attrs_save_load),
        cmocka_unit_test(test_attrs_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
