/*
 * rd_textmodel.h -- a linear text classifier: hashed n-gram features and one-vs-rest linear SVMs.
 *
 * The classifier service assigns a business type or category to every ticket from its free
 * text, in English (CFPB narratives) and in Chinese (citizen messages, no spaces between words).
 * A model is trained offline by redress-train from a labelled CSV, written to a small versioned
 * binary file and loaded by the service; every decision stores rd_model_version() so it can be
 * traced to the exact weights that made it.
 *
 * Text -> features (rd_text_features): UTF-8 is decoded leniently (an invalid byte is a word
 * separator, never an error); ASCII and full-width ASCII are folded to lower-case half-width;
 * letters and digits of space-separated scripts form words; every Han, kana or Thai character
 * is a token of its own. Features are word n-grams, optional character n-grams inside words,
 * and n-grams of consecutive CJK characters (for Chinese, character unigrams and bigrams play
 * the part words play in English). Each feature is a 32-bit hash (the hashing trick): no
 * strings are kept, only the hashes seen in training.
 *
 * Features -> scores: term frequency (optionally sublinear), idf, and optionally the per-class
 * naive-Bayes log-count ratio of NBSVM (Wang & Manning 2012), L2-normalised per class; one
 * L2-regularised squared-hinge SVM per class trained by dual coordinate descent (liblinear's
 * solver). Weights are folded at training time so prediction is one hash probe and 2 x nlabels
 * multiply-adds per distinct feature. Confidence is a softmax of the scores with a temperature
 * fitted on out-of-fold scores of the training set.
 *
 * Attributes: besides its text, a document may carry a few named whole values -- the
 * organisation complained about, the channel -- that the text need not mention. A model trained
 * with attributes (rd_train_opts.attr_names) adds one feature per attribute, the hash of its name
 * and its folded, space-normalised value, weighted like any other feature. At prediction the
 * caller passes whatever attributes it has by name (rd_model_predict_attrs); the model reads the
 * ones it was trained with and ignores the rest, and an absent one contributes nothing.
 *
 * Thread safety: a model is immutable once trained or loaded; any number of threads may predict
 * with it concurrently. Prediction allocates nothing after a thread's first call (a per-thread
 * scratch sized by the largest model it has used). Training is deterministic: the same data and
 * options give the same weights and the same content hash in the version string.
 */
#ifndef RD_TEXTMODEL_H
#define RD_TEXTMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How text becomes features. Stored in the model: prediction uses what training used. */
typedef struct {
    uint8_t word_ngrams;  /* word n-grams of length 1..word_ngrams; 0: no word features (max 3) */
    uint8_t char_min;     /* character n-grams inside " word ", lengths char_min..char_max; */
    uint8_t char_max;     /*   0 0: none (max 6) */
    uint8_t cjk_min;      /* n-grams of consecutive CJK/Thai characters, cjk_min..cjk_max; */
    uint8_t cjk_max;      /*   0 0: none (max 4) */
    bool drop_redactions; /* skip words made only of x (CFPB writes "XXXX" for personal data) */
    bool fold_digits;     /* every digit reads as 0: amounts and dates become shapes */
} rd_feature_opts;

#define RD_FEATURE_BATCH 256 /* rd_text_features() hands hashes over in batches of at most this */

/* Receives a batch of feature hashes (never 0). */
typedef void (*rd_feature_fn)(void *ctx, const uint32_t *hashes, size_t n);

/* The defaults of rd_train_opts_default(), for callers that only extract features. */
void rd_feature_opts_default(rd_feature_opts *o);
/* Extracts the features of text[0..len) in order and passes them to fn (which may be NULL to
 * count only). Any bytes are accepted. Returns the number of features. */
size_t rd_text_features(const rd_feature_opts *o, const char *text, size_t len, rd_feature_fn fn, void *ctx);

typedef struct {
    rd_feature_opts features;
    double c;                      /* SVM cost (inverse regularisation), > 0 */
    bool sublinear_tf;             /* 1 + ln(tf) instead of tf */
    bool idf;                      /* smoothed inverse document frequency, as scikit-learn's */
    bool nb;                       /* scale features by the per-class NB log-count ratio (NBSVM) */
    bool balanced;                 /* weight each class's positives by n / (nlabels * n_class) */
    int min_df;                    /* drop features seen in fewer training documents (>= 1) */
    int calibration_folds;         /* folds for fitting the confidence temperature; 0: temperature 1 */
    int max_iter;                  /* coordinate-descent passes per class */
    double eps;                    /* stopping tolerance on the projected gradient */
    uint64_t seed;                 /* order of coordinate descent and calibration folds */
    const char *name;              /* model name in the version string; NULL: "textmodel" */
    int64_t trained_at;            /* Unix seconds recorded in the model; 0: now */
    const char *text_cols;         /* informational, kept in the model: where the text came from */
    const char *label_col;         /*   and the label (redress-train stores its column names) */
    int nattrs;                    /* attributes, 0..RD_MAX_ATTRS (rd_model_train_attrs) */
    const char *const *attr_names; /* nattrs distinct names, 1..64 bytes of [a-z0-9_] */
    const char *const *attr_cols;  /* informational, like text_cols; NULL: none recorded */
} rd_train_opts;

#define RD_MAX_ATTRS 8

/* A named whole value beside the text: {"organisation", "EQUIFAX, INC."}. NULL or blank: absent. */
typedef struct {
    const char *name;
    const char *value;
} rd_attr;

void rd_train_opts_default(rd_train_opts *o);

typedef struct rd_model rd_model;

typedef struct {
    int label;         /* index for rd_model_label() */
    double score;      /* the winning class's SVM decision value */
    double confidence; /* 0..1: calibrated softmax probability of that class */
} rd_prediction;

/*
 * Trains on n documents: texts[i] of lens[i] bytes, labelled labels[i] (non-empty; at least two
 * distinct labels). Labels are numbered in strcmp order. NULL with a reason in err on failure.
 */
rd_model *rd_model_train(const char *const *texts, const size_t *lens, const char *const *labels, size_t n,
                         const rd_train_opts *opts, char *err, int errlen);

/*
 * The same with attributes: attr_values[i * opts->nattrs + a] is document i's value of
 * opts->attr_names[a] (NULL or blank when it has none). rd_model_train() is this with no
 * attributes (opts->nattrs must then be 0).
 */
rd_model *rd_model_train_attrs(const char *const *texts, const size_t *lens, const char *const *attr_values,
                               const char *const *labels, size_t n, const rd_train_opts *opts, char *err, int errlen);

/* False only when out of memory or given NULLs. Empty or unknown text predicts from the biases. */
bool rd_model_predict(const rd_model *m, const char *text, size_t len, rd_prediction *out);
/* The decision value of every class: scores[0..rd_model_nlabels()). */
bool rd_model_scores(const rd_model *m, const char *text, size_t len, double *scores);
/* The same with attributes (attrs may be NULL when nattrs is 0; the first of a name counts).
 * Without attributes a model trained with them predicts from the text alone. */
bool rd_model_predict_attrs(const rd_model *m, const char *text, size_t len, const rd_attr *attrs, size_t nattrs,
                            rd_prediction *out);
bool rd_model_scores_attrs(const rd_model *m, const char *text, size_t len, const rd_attr *attrs, size_t nattrs,
                           double *scores);

int rd_model_nlabels(const rd_model *m);
const char *rd_model_label(const rd_model *m, int i); /* NULL when out of range */
/* "<name>-<YYYYmmddTHHMMSSZ>-<12 hex digits of the content hash>": stored with every decision. */
const char *rd_model_version(const rd_model *m);
const char *rd_model_name(const rd_model *m);
const char *rd_model_text_cols(const rd_model *m); /* "" when not recorded */
const char *rd_model_label_col(const rd_model *m);
int rd_model_nattrs(const rd_model *m);                   /* attributes the model reads, 0.. */
const char *rd_model_attr_name(const rd_model *m, int i); /* NULL when out of range */
const char *rd_model_attr_col(const rd_model *m, int i);  /* its recorded column, "" when none */
const rd_feature_opts *rd_model_feature_opts(const rd_model *m);
size_t rd_model_nfeatures(const rd_model *m); /* distinct hashed features with weights */

/* Writes atomically (temporary file, fsync, rename): a reader sees the old file or the new one. */
bool rd_model_save(const rd_model *m, const char *path, char *err, int errlen);
rd_model *rd_model_load(const char *path, char *err, int errlen);
/* The same from bytes in memory (what rd_model_save wrote). Rejects anything truncated or corrupt. */
rd_model *rd_model_load_mem(const void *buf, size_t len, char *err, int errlen);
/* The serialised model in a malloc'd buffer (caller frees), as rd_model_save would write it. */
void *rd_model_serialize(const rd_model *m, size_t *len);
void rd_model_destroy(rd_model **m);

#endif
