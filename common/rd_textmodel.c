/*
 * rd_textmodel.c -- hashed n-gram features and one-vs-rest linear SVMs (see rd_textmodel.h).
 *
 * Three parts, in the order data flows:
 *
 *  1. Feature extraction. One pass over the bytes: decode UTF-8 (an invalid byte is a
 *     separator), fold case and full-width forms, sort each code point into word / CJK /
 *     separator, and emit 32-bit hashes of word n-grams, character n-grams and CJK n-grams into
 *     a small batch that is handed to a callback. Nothing is allocated, whatever the input.
 *
 *  2. Training. Documents become sparse rows over a vocabulary of the hashes seen (a hash
 *     table from hash to column). Per class, each row is weighted (tf, idf, NB ratio) and
 *     L2-normalised, and a binary squared-hinge SVM is fitted by dual coordinate descent
 *     (Hsieh et al. 2008, liblinear's -s 1 with shrinking), with the bias as a constant feature.
 *     The weighting is then folded into the weights: for feature f and class c the model keeps
 *         A[f][c] = w[f][c] * s[f][c]      Q[f][c] = s[f][c]^2      (s = idf * NB ratio)
 *     so that with t = tf weight of f in the text,
 *         score[c] = sum(t * A[f][c]) / sqrt(sum(t^2 * Q[f][c])) + bias[c]
 *     which is exactly the SVM's decision value on the weighted, normalised row.
 *
 *  3. Prediction and the file. The model is an open-addressing table from hash to row plus the
 *     rows; prediction counts each known feature once per text in a per-thread scratch (sized
 *     by the model's vocabulary, not by the text, so a 5 MB text costs time but no memory), then
 *     runs the sums above. The file is a magic, a format version, metadata, the body (options,
 *     labels, weights as little-endian float32) and a BLAKE2b checksum of everything before it.
 *     The version string carries a hash of the body, so equal weights give equal versions.
 */
#include "rd_textmodel.h"
#include "rd_utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define WORD_MAX 64 /* code points of a word kept for character n-grams */
#define NO_ROW   UINT32_MAX
#define TF_TABLE 64 /* term counts below this are weighted from a table */

/* Limits a model file may not exceed; training refuses to build a model beyond them. */
#define MAX_LABELS   4096
#define MAX_FEATURES (1u << 27) /* after min_df; the vocabulary may reach twice that before */

#define FNV_PRIME 0x100000001b3ULL /* FNV-1a's 64-bit prime: the multiply of every hash step */

/* Namespaces: the same string hashed as a word, a CJK n-gram or a character n-gram differs. */
#define NS_WORD 0x9e3779b97f4a7c15ULL
#define NS_BI   0xc2b2ae3d27d4eb4fULL
#define NS_TRI  0x165667b19e3779f9ULL
#define NS_CJK  0x27d4eb2f165667c5ULL
#define NS_CHAR 0x85ebca77c2b2ae63ULL
#define NS_ATTR 0x4cf5ad432745937fULL

/* ------------------------------------------------------------------------------------------------
 * Feature extraction
 * --------------------------------------------------------------------------------------------- */

enum { CP_SEP, CP_WORD, CP_CJK };

typedef struct {
    const rd_feature_opts *o;
    rd_feature_fn fn;
    void *ctx;
    uint32_t batch[RD_FEATURE_BATCH];
    size_t nbatch, total;
    uint32_t word[WORD_MAX]; /* the current word's first WORD_MAX code points (char n-grams only) */
    size_t wlen;             /* its length in code points (may exceed WORD_MAX); 0: no word */
    size_t wbytes;           /* its length in bytes of folded UTF-8 */
    uint64_t wh;             /* hash of those bytes' complete 8-byte chunks */
    uint64_t pend;           /* the incomplete last chunk, npend bytes */
    unsigned npend;
    bool wall_x;           /* every code point so far is 'x' */
    uint64_t prev1, prev2; /* hashes of the previous two words, for bigrams and trigrams */
    int nprev;
    uint32_t cjk[4]; /* the current CJK run's last code points, cjk[0] the newest */
    int ncjk;
} extractor;

/* MurmurHash3's 64-bit finaliser: every input bit affects every output bit. */
static inline uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t step(uint64_t h, uint32_t c)
{
    return (h ^ c) * FNV_PRIME;
}

static void flush_batch(extractor *x)
{
    if (x->fn != NULL && x->nbatch > 0)
        x->fn(x->ctx, x->batch, x->nbatch);
    x->nbatch = 0;
}

static inline void emit(extractor *x, uint64_t h)
{
    uint32_t v = (uint32_t)fmix64(h);

    x->batch[x->nbatch++] = v != 0 ? v : 1; /* 0 marks an empty slot in the tables */
    x->total++;
    if (x->nbatch == RD_FEATURE_BATCH)
        flush_batch(x);
}

/* Lower-case ASCII, Latin-1, Greek and Cyrillic capitals; full-width ASCII to ASCII; the
 * ideographic space to a space. Enough for the scripts complaints arrive in; anything else
 * is kept as it is. */
static uint32_t fold_cp(uint32_t c)
{
    if (c >= 0xFF01 && c <= 0xFF5E)
        c -= 0xFEE0;
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c == 0x3000)
        return ' ';
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    return c;
}

/* ASCII letters and digits folded to lower case; 0 for every other ASCII byte (a separator). */
static const uint8_t ascii_word[128] = {
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   48,  49,  50,  51,  52,  53,  54,  55,  56,  57,  0,   0,   0,   0,   0,   0,   0,   97,
    98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119,
    120, 121, 122, 0,   0,   0,   0,   0,   0,   97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109,
    110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 0,   0,   0,   0,   0,
};

static inline bool in(uint32_t c, uint32_t lo, uint32_t hi)
{
    return c >= lo && c <= hi;
}

/* Word character, CJK-like character (a token on its own: the script has no spaces) or
 * separator (punctuation, symbols, emoji, controls, private use, specials). */
static int cp_class(uint32_t c)
{
    if (c < 0x80)
        return ascii_word[c] != 0 ? CP_WORD : CP_SEP;
    if (in(c, 0x4E00, 0x9FFF)) /* the common Han block first: most Chinese text is in it */
        return CP_CJK;
    if (c <= 0xBF || c == 0xD7 || c == 0xF7)
        return CP_SEP;
    if (in(c, 0x0E00, 0x0EFF) || in(c, 0x1780, 0x17FF) || in(c, 0x3040, 0x30FF) || in(c, 0x3400, 0x4DBF) ||
        in(c, 0x4E00, 0x9FFF) || in(c, 0xF900, 0xFAFF) || in(c, 0xFF66, 0xFF9F) || in(c, 0x20000, 0x3FFFF))
        return CP_CJK;
    if (in(c, 0x2000, 0x2BFF) || in(c, 0x2E00, 0x2E7F) || in(c, 0x3000, 0x303F) || in(c, 0xE000, 0xF8FF) ||
        in(c, 0xFE00, 0xFE6F) || in(c, 0xFF00, 0xFF65) || in(c, 0xFFE0, 0xFFFF) || in(c, 0x1F000, 0x1FAFF) ||
        c >= 0xE0000)
        return CP_SEP;
    return CP_WORD;
}

/* Character n-grams of " word " (the spaces mark the word's edges), as scikit-learn's char_wb.
 * A word longer than WORD_MAX contributes n-grams of its first WORD_MAX code points and no
 * end mark. */
static void emit_char_ngrams(extractor *x)
{
    size_t kept = x->wlen < WORD_MAX ? x->wlen : WORD_MAX;
    size_t len = kept + 1 + (x->wlen <= WORD_MAX);
    int lo = x->o->char_min, hi = x->o->char_max;

    for (size_t start = 0; start < len; start++) {
        uint64_t h = NS_CHAR;
        for (int k = 0; k < hi && start + (size_t)k < len; k++) {
            size_t pos = start + (size_t)k;
            h = step(h, pos == 0 || pos > kept ? ' ' : x->word[pos - 1]);
            if (k + 1 >= lo)
                emit(x, h);
        }
    }
}

/*
 * Word hashing. A word is hashed over the bytes of its folded UTF-8, eight at a time: each
 * complete chunk is mixed in with one multiply (h = (h ^ chunk) * prime), the incomplete last
 * one and the length at the end. English words rarely exceed eight bytes, so a word costs one
 * or two multiplies and no per-byte loop. ASCII runs are folded eight bytes at once (below);
 * other scripts are folded per code point and fed byte by byte, giving the same hash for the
 * same folded text whichever way it arrived ("CREDIT", "credit" and full-width "ＣＲＥＤＩＴ").
 */
#define BYTES_X 0x7878787878787878ULL /* "xxxxxxxx" */

static inline void word_start(extractor *x)
{
    x->wh = NS_WORD;
    x->pend = 0;
    x->npend = 0;
    x->wbytes = 0;
    x->wall_x = true;
}

static inline void word_byte(extractor *x, uint8_t b)
{
    x->pend |= (uint64_t)b << (8 * x->npend);
    x->wbytes++;
    if (++x->npend == 8) {
        x->wh = (x->wh ^ x->pend) * FNV_PRIME;
        x->pend = 0;
        x->npend = 0;
    }
}

static inline uint64_t word_hash(const extractor *x)
{
    return (x->wh ^ x->pend ^ ((uint64_t)x->wbytes << 56)) * FNV_PRIME;
}

/* Eight ASCII letters or digits to lower case, and digits to '0' when asked. Letters have bit
 * 0x40 set, digits do not; both already have 0x20 set except the capitals. */
static inline uint64_t fold_chunk(uint64_t v, bool digits)
{
    v |= 0x2020202020202020ULL;
    if (digits) {
        uint64_t d = (~v >> 6) & 0x0101010101010101ULL; /* 1 in each digit byte */
        v = (v & ~(d * 0xFF)) | (d * 0x30);
    }
    return v;
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v; /* byte k in bits 8k..8k+7, as word_byte() packs them */
}

/* Length of the run of ASCII letters and digits at p (n bytes left). */
static inline size_t ascii_word_len(const unsigned char *p, size_t n)
{
    size_t k = 0;

#ifdef __SSE2__
    const __m128i a = _mm_set1_epi8('a' - 1), z = _mm_set1_epi8('z' + 1), zero = _mm_set1_epi8('0' - 1),
                  nine = _mm_set1_epi8('9' + 1), bit = _mm_set1_epi8(0x20);
    for (; k + 16 <= n; k += 16) {
        /* Bytes >= 0x80 are negative as signed chars, so they fail both range tests. */
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + k)), lo = _mm_or_si128(v, bit);
        __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(lo, a), _mm_cmplt_epi8(lo, z));
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, zero), _mm_cmplt_epi8(v, nine));
        unsigned stop = (unsigned)_mm_movemask_epi8(_mm_or_si128(letter, digit)) ^ 0xFFFFu;
        if (stop != 0)
            return k + (size_t)__builtin_ctz(stop);
    }
#endif
    while (k < n && p[k] < 0x80 && ascii_word[p[k]] != 0)
        k++;
    return k;
}

/* Adds the ASCII word bytes p[0..n) (avail >= n bytes readable from p) to the current word. */
static void word_ascii(extractor *x, const unsigned char *p, size_t n, size_t avail)
{
    bool digits = x->o->fold_digits;
    size_t k = 0;

    if (x->o->char_max > 0) /* character n-grams need the code points themselves */
        for (size_t j = 0; j < n && x->wlen + j < WORD_MAX; j++)
            x->word[x->wlen + j] = digits && p[j] <= '9' ? '0' : ascii_word[p[j]];
    x->wlen += n;
    if (x->npend == 0) {
        for (; k + 8 <= n; k += 8) {
            uint64_t v = fold_chunk(load64(p + k), digits);
            x->wall_x = x->wall_x && v == BYTES_X;
            x->wh = (x->wh ^ v) * FNV_PRIME;
        }
        if (k < n) {
            size_t r = n - k;
            uint64_t v = 0, mask = (1ULL << (8 * r)) - 1;
            if (avail - k >= 8)
                v = load64(p + k); /* bytes past the word are read, then masked off */
            else
                memcpy(&v, p + k, r);
            v = fold_chunk(v, digits) & mask;
            x->wall_x = x->wall_x && v == (BYTES_X & mask);
            x->pend = v;
            x->npend = (unsigned)r;
        }
        x->wbytes += n;
        return;
    }
    for (; k < n; k++) { /* the word began with other scripts: rare, byte by byte */
        uint8_t b = digits && p[k] <= '9' ? '0' : ascii_word[p[k]];
        x->wall_x = x->wall_x && b == 'x';
        word_byte(x, b);
    }
}

static void end_word(extractor *x)
{
    const rd_feature_opts *o = x->o;

    if (x->wlen == 0)
        return;
    if (o->drop_redactions && x->wall_x && x->wlen >= 2) {
        x->wlen = 0; /* as if it were not there: the words either side become neighbours */
        return;
    }
    uint64_t u = word_hash(x);
    if (o->word_ngrams >= 1)
        emit(x, u);
    if (o->word_ngrams >= 2 && x->nprev >= 1)
        emit(x, step(step(NS_BI, (uint32_t)x->prev1), (uint32_t)(x->prev1 >> 32)) ^ u);
    if (o->word_ngrams >= 3 && x->nprev >= 2)
        emit(x, step(step(NS_TRI ^ x->prev2, (uint32_t)x->prev1), (uint32_t)(x->prev1 >> 32)) ^ u);
    if (o->char_min > 0)
        emit_char_ngrams(x);
    if (o->word_ngrams >= 2) {
        x->prev2 = x->prev1;
        x->prev1 = fmix64(u);
    }
    x->nprev++;
    x->wlen = 0;
}

/* A word character outside ASCII (or full-width ASCII), already folded. */
static void add_word_cp(extractor *x, uint32_t c)
{
    if (x->wlen == 0)
        word_start(x);
    if (x->o->fold_digits && in(c, '0', '9'))
        c = '0';
    if (x->wlen < WORD_MAX)
        x->word[x->wlen] = c;
    x->wlen++;
    x->wall_x = x->wall_x && c == 'x';
    if (c < 0x80) {
        word_byte(x, (uint8_t)c);
    } else if (c < 0x800) {
        word_byte(x, (uint8_t)(0xC0 | c >> 6));
        word_byte(x, (uint8_t)(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        word_byte(x, (uint8_t)(0xE0 | c >> 12));
        word_byte(x, (uint8_t)(0x80 | ((c >> 6) & 0x3F)));
        word_byte(x, (uint8_t)(0x80 | (c & 0x3F)));
    } else {
        word_byte(x, (uint8_t)(0xF0 | c >> 18));
        word_byte(x, (uint8_t)(0x80 | ((c >> 12) & 0x3F)));
        word_byte(x, (uint8_t)(0x80 | ((c >> 6) & 0x3F)));
        word_byte(x, (uint8_t)(0x80 | (c & 0x3F)));
    }
}

/* A CJK character ends any word, breaks the word n-gram chain and extends the CJK run. */
static void add_cjk_cp(extractor *x, uint32_t c)
{
    end_word(x);
    x->nprev = 0;
    x->cjk[3] = x->cjk[2];
    x->cjk[2] = x->cjk[1];
    x->cjk[1] = x->cjk[0];
    x->cjk[0] = c;
    if (x->ncjk < 4)
        x->ncjk++;
    for (int n = x->o->cjk_min; n <= x->o->cjk_max && n <= x->ncjk; n++) {
        uint64_t h = NS_CJK;
        for (int k = n - 1; k >= 0; k--)
            h = step(h, x->cjk[k]);
        emit(x, h);
    }
}

void rd_feature_opts_default(rd_feature_opts *o)
{
    rd_train_opts t;

    rd_train_opts_default(&t);
    *o = t.features;
}

size_t rd_text_features(const rd_feature_opts *o, const char *text, size_t len, rd_feature_fn fn, void *ctx)
{
    const unsigned char *p = (const unsigned char *)text;
    extractor x;

    if (text == NULL)
        len = 0;
    x.o = o;
    x.fn = fn;
    x.ctx = ctx;
    x.nbatch = x.total = 0;
    x.wlen = x.wbytes = 0;
    x.pend = 0;
    x.npend = 0;
    x.nprev = x.ncjk = 0;
    x.prev1 = x.prev2 = x.wh = 0;
    x.wall_x = false;
    for (size_t i = 0; i < len;) {
        uint32_t c = p[i];
        if (c < 0x80) { /* ASCII without the decoder: a run of word bytes, or one separator */
            if (ascii_word[c] != 0) {
                size_t n = ascii_word_len(p + i, len - i);
                if (x.wlen == 0)
                    word_start(&x);
                word_ascii(&x, p + i, n, len - i);
                i += n;
            } else {
                if (x.wlen > 0)
                    end_word(&x);
                i++;
            }
            x.ncjk = 0;
            continue;
        }
        size_t n = rd_utf8_decode(p + i, len - i, &c);
        i += n ? n : 1;
        c = n ? fold_cp(c) : ' ';
        int cls = cp_class(c);
        if (cls == CP_WORD) {
            add_word_cp(&x, c);
            x.ncjk = 0;
        } else if (cls == CP_CJK) {
            add_cjk_cp(&x, c);
        } else {
            end_word(&x);
            x.ncjk = 0;
        }
    }
    end_word(&x);
    flush_batch(&x);
    return x.total;
}

/* The namespace of an attribute: its name hashed. */
static uint64_t attr_ns(const char *name)
{
    uint64_t h = NS_ATTR;

    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = step(h, *p);
    return step(h, 0);
}

/* An attribute's one feature: its namespace and its value folded like text (case, full-width
 * forms; an invalid byte reads as a separator), every run of separators one space, trimmed.
 * "Equifax,  Inc." and "EQUIFAX, INC" are the same feature. 0 when the value is absent or blank. */
static uint32_t attr_feature(uint64_t ns, const char *value)
{
    const unsigned char *p = (const unsigned char *)value;
    size_t len = value != NULL ? strlen(value) : 0;
    uint64_t h = ns;
    bool any = false, space = false;

    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t n = rd_utf8_decode(p + i, len - i, &c);
        i += n ? n : 1;
        c = n ? fold_cp(c) : ' ';
        if (cp_class(c) == CP_SEP) {
            space = any;
            continue;
        }
        if (space)
            h = step(h, ' ');
        h = step(h, c);
        any = true;
        space = false;
    }
    if (!any)
        return 0;
    uint32_t v = (uint32_t)fmix64(h);
    return v != 0 ? v : 1;
}

static bool feature_opts_valid(const rd_feature_opts *o)
{
    return o->word_ngrams <= 3 && o->char_min <= o->char_max && o->char_max <= 6 &&
           (o->char_min > 0) == (o->char_max > 0) && o->cjk_min <= o->cjk_max && o->cjk_max <= 4 &&
           (o->cjk_min > 0) == (o->cjk_max > 0) && (o->word_ngrams > 0 || o->char_max > 0 || o->cjk_max > 0);
}

/* ------------------------------------------------------------------------------------------------
 * The model and prediction
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t key, row;
} slot;

/*
 * Invariants: immutable once rd_model_train() or rd_model_load_mem() returns it, so threads
 * read it without locks. keys are distinct, non-zero and ascending; row r holds the weights of
 * keys[r]; every key is in slots exactly once, pointing at its row; Q >= 0; nlabels >= 2.
 * Sub-models trained for calibration have no labels or names (never saved, never returned).
 */
struct rd_model {
    rd_feature_opts fo;
    bool sublinear_tf;
    int nlabels;
    char **labels;
    char *name, *version, *text_cols, *label_col;
    int nattrs;
    char *attr_names[RD_MAX_ATTRS]; /* NULL in sub-models trained for calibration */
    char *attr_cols[RD_MAX_ATTRS];
    uint64_t attr_ns[RD_MAX_ATTRS]; /* attr_ns(attr_names[a]) */
    int64_t trained_at;
    float temperature;
    uint32_t nfeat;
    uint32_t *keys; /* ascending */
    float *rows;    /* nfeat x 2 * nlabels: A[0..nlabels) then Q[0..nlabels) */
    float *bias;
    slot *slots; /* open addressing, linear probing, load <= 1/2 */
    uint32_t mask;
    float tfw[TF_TABLE]; /* tf_weight() of small counts, filled with the slots */
};

/* Per-thread prediction scratch: a count per model row and the rows touched by this text.
 * Both are sized by the vocabulary, so no text, however long, makes them grow. */
typedef struct {
    uint32_t *count;
    uint32_t *touched;
    size_t cap;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

static void scratch_free(void *p)
{
    scratch *s = p;

    free(s->count);
    free(s->touched);
    free(s);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

static scratch *scratch_get(size_t need)
{
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok)
        return NULL;
    scratch *s = pthread_getspecific(scratch_key);
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < need) {
        size_t cap = need < 1024 ? 1024 : need;
        uint32_t *c = calloc(cap, sizeof(*c)), *t = malloc(cap * sizeof(*t));
        if (c == NULL || t == NULL) {
            free(c);
            free(t);
            return NULL;
        }
        free(s->count);
        free(s->touched);
        s->count = c;
        s->touched = t;
        s->cap = cap;
    }
    return s;
}

static inline uint32_t model_find(const rd_model *m, uint32_t key)
{
    for (uint32_t i = key & m->mask;; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key)
            return m->slots[i].row;
        if (m->slots[i].key == 0)
            return NO_ROW;
    }
}

/* The weight of a term seen tf times: tf, or 1 + ln(tf) when sublinear. */
static double tf_weight(bool sublinear, uint32_t tf)
{
    return sublinear && tf > 0 ? 1.0 + log((double)tf) : (double)tf;
}

/* The same in float for prediction, from the model's table for the common small counts. */
static inline float model_tf(const rd_model *m, uint32_t tf)
{
    return tf < TF_TABLE ? m->tfw[tf] : (float)tf_weight(m->sublinear_tf, tf);
}

typedef struct {
    const rd_model *m;
    scratch *s;
    size_t ntouched;
} predict_ctx;

#define PREFETCH_AHEAD 16 /* slots requested this many features before they are probed */

/* Counts each known feature once per text. The table is larger than L1, so the slot of a
 * feature a little further on is prefetched while this one is probed, and a row is prefetched
 * when first touched, for rd_model_scores(). */
static void predict_sink(void *ctx, const uint32_t *h, size_t n)
{
    predict_ctx *p = ctx;
    const rd_model *m = p->m;
    uint32_t *count = p->s->count;
    size_t stride = 2 * (size_t)m->nlabels;

    for (size_t i = 0; i < n && i < PREFETCH_AHEAD; i++)
        __builtin_prefetch(&m->slots[h[i] & m->mask]);
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n)
            __builtin_prefetch(&m->slots[h[i + PREFETCH_AHEAD] & m->mask]);
        uint32_t row = model_find(m, h[i]);
        if (row == NO_ROW)
            continue;
        if (count[row] == 0) {
            p->s->touched[p->ntouched++] = row;
            __builtin_prefetch(m->rows + row * stride);
            __builtin_prefetch(m->rows + row * stride + stride - 1);
        }
        count[row] += count[row] != UINT32_MAX; /* saturates: a wrap would list the row twice */
    }
}

/* The scores of text with the model's attributes' values vals[0..m->nattrs) (each may be NULL). */
static bool model_scores(const rd_model *m, const char *text, size_t len, const char *const *vals, double *scores)
{
    int nl = m != NULL ? m->nlabels : 0;
    float dot[nl > 0 ? nl : 1], nrm[nl > 0 ? nl : 1];
    predict_ctx p = {m, NULL, 0};

    if (m == NULL || scores == NULL || (p.s = scratch_get(m->nfeat)) == NULL)
        return false;
    rd_text_features(&m->fo, text, text != NULL ? len : 0, predict_sink, &p);
    for (int a = 0; vals != NULL && a < m->nattrs; a++) {
        uint32_t h[1] = {attr_feature(m->attr_ns[a], vals[a])};
        if (h[0] != 0)
            predict_sink(&p, h, 1);
    }
    memset(dot, 0, sizeof(dot));
    memset(nrm, 0, sizeof(nrm));
    for (size_t i = 0; i < p.ntouched; i++) {
        uint32_t row = p.s->touched[i];
        float t = model_tf(m, p.s->count[row]), t2 = t * t;
        const float *a = m->rows + (size_t)row * 2 * (size_t)nl, *q = a + nl;
        p.s->count[row] = 0;
        for (int c = 0; c < nl; c++) {
            dot[c] += t * a[c];
            nrm[c] += t2 * q[c];
        }
    }
    for (int c = 0; c < nl; c++)
        scores[c] = (nrm[c] > 0 ? dot[c] / sqrtf(nrm[c]) : 0.0f) + m->bias[c];
    return true;
}

bool rd_model_scores(const rd_model *m, const char *text, size_t len, double *scores)
{
    return model_scores(m, text, len, NULL, scores);
}

/* The values of the model's attributes, in its order, from what the caller passed by name. */
static bool attr_values(const rd_model *m, const rd_attr *attrs, size_t nattrs, const char **vals)
{
    if (attrs == NULL && nattrs > 0)
        return false;
    for (int a = 0; a < m->nattrs; a++) {
        vals[a] = NULL;
        for (size_t i = 0; i < nattrs; i++)
            if (attrs[i].name != NULL && strcmp(attrs[i].name, m->attr_names[a]) == 0) {
                vals[a] = attrs[i].value;
                break;
            }
    }
    return true;
}

bool rd_model_scores_attrs(const rd_model *m, const char *text, size_t len, const rd_attr *attrs, size_t nattrs,
                           double *scores)
{
    const char *vals[RD_MAX_ATTRS];

    return m != NULL && attr_values(m, attrs, nattrs, vals) && model_scores(m, text, len, vals, scores);
}

/* Softmax probability of class best at temperature t. */
static double softmax_at(const double *s, int n, int best, double t)
{
    double sum = 0;

    for (int c = 0; c < n; c++)
        sum += exp(t * (s[c] - s[best]));
    return 1.0 / sum;
}

bool rd_model_predict(const rd_model *m, const char *text, size_t len, rd_prediction *out)
{
    return rd_model_predict_attrs(m, text, len, NULL, 0, out);
}

bool rd_model_predict_attrs(const rd_model *m, const char *text, size_t len, const rd_attr *attrs, size_t nattrs,
                            rd_prediction *out)
{
    double s[m != NULL && m->nlabels > 0 ? m->nlabels : 1];

    if (m == NULL || out == NULL || !rd_model_scores_attrs(m, text, len, attrs, nattrs, s))
        return false;
    int best = 0;
    for (int c = 1; c < m->nlabels; c++)
        if (s[c] > s[best])
            best = c;
    out->label = best;
    out->score = s[best];
    out->confidence = softmax_at(s, m->nlabels, best, m->temperature);
    return true;
}

int rd_model_nlabels(const rd_model *m)
{
    return m->nlabels;
}

const char *rd_model_label(const rd_model *m, int i)
{
    return i >= 0 && i < m->nlabels && m->labels != NULL ? m->labels[i] : NULL;
}

const char *rd_model_version(const rd_model *m)
{
    return m->version != NULL ? m->version : "";
}

const char *rd_model_name(const rd_model *m)
{
    return m->name != NULL ? m->name : "";
}

const char *rd_model_text_cols(const rd_model *m)
{
    return m->text_cols != NULL ? m->text_cols : "";
}

const char *rd_model_label_col(const rd_model *m)
{
    return m->label_col != NULL ? m->label_col : "";
}

int rd_model_nattrs(const rd_model *m)
{
    return m->nattrs;
}

const char *rd_model_attr_name(const rd_model *m, int i)
{
    return i >= 0 && i < m->nattrs ? m->attr_names[i] : NULL;
}

const char *rd_model_attr_col(const rd_model *m, int i)
{
    return i >= 0 && i < m->nattrs && m->attr_cols[i] != NULL ? m->attr_cols[i] : "";
}

const rd_feature_opts *rd_model_feature_opts(const rd_model *m)
{
    return &m->fo;
}

size_t rd_model_nfeatures(const rd_model *m)
{
    return m->nfeat;
}

void rd_model_destroy(rd_model **mp)
{
    rd_model *m = *mp;

    if (m == NULL)
        return;
    for (int i = 0; m->labels != NULL && i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->labels);
    free(m->name);
    free(m->version);
    free(m->text_cols);
    free(m->label_col);
    for (int a = 0; a < m->nattrs; a++) {
        free(m->attr_names[a]);
        free(m->attr_cols[a]);
    }
    free(m->keys);
    free(m->rows);
    free(m->bias);
    free(m->slots);
    free(m);
    *mp = NULL;
}

/* Builds the lookup table over m->keys (ascending, so distinct) and the tf weights. */
static bool model_index(rd_model *m)
{
    size_t size = 16;

    for (uint32_t tf = 0; tf < TF_TABLE; tf++)
        m->tfw[tf] = (float)tf_weight(m->sublinear_tf, tf);
    while (size < 2 * (size_t)m->nfeat)
        size *= 2;
    if ((m->slots = calloc(size, sizeof(*m->slots))) == NULL)
        return false;
    m->mask = (uint32_t)(size - 1);
    for (uint32_t r = 0; r < m->nfeat; r++) {
        uint32_t i = m->keys[r] & m->mask;
        while (m->slots[i].key != 0)
            i = (i + 1) & m->mask;
        m->slots[i].key = m->keys[r];
        m->slots[i].row = r;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Training: documents to sparse rows
 * --------------------------------------------------------------------------------------------- */

void rd_train_opts_default(rd_train_opts *o)
{
    /*
     * Chosen by cross-validation on the TRAINING splits only (redress-train --cv 5 --cv-repeat 5
     * on cfpb/narratives_train.csv -> Product and teddy2020/messages_train.csv -> label_l1,
     * about 1,100 settings); the test splits were not looked at. The grid, the protocol and
     * the scores are in the comment atop tools/redress_train.c. The cheapest features won:
     * word unigrams for space-separated text, CJK unigrams + bigrams for Chinese.
     */
    memset(o, 0, sizeof(*o));
    o->features.word_ngrams = 1;
    o->features.cjk_min = 1;
    o->features.cjk_max = 2;
    o->features.drop_redactions = true;
    o->features.fold_digits = true;
    o->c = 0.3;
    o->sublinear_tf = false;
    o->idf = true;
    o->nb = true;
    o->balanced = true;
    o->min_df = 2;
    o->calibration_folds = 3;
    o->max_iter = 1000;
    o->eps = 0.01;
    o->seed = 1;
}

/* The training documents as compressed sparse rows over the vocabulary (raw counts). */
typedef struct {
    size_t n;
    const int *y;
    size_t *ptr; /* row i is [ptr[i], ptr[i+1]) */
    uint32_t *col;
    float *tf;
    size_t nnz, cap;
    uint32_t nfeat;
    uint32_t *keys; /* column -> hash */
    uint32_t *df;   /* column -> documents containing it */
} corpus;

/* Building the corpus: the vocabulary (hash -> column) and one document's counts. */
typedef struct {
    corpus *cp;
    slot *slots;
    uint32_t mask, keycap;
    uint32_t *count; /* per column, for the current document; keycap long */
    uint32_t *touched;
    size_t ntouched;
    bool oom;
} builder;

static bool vocab_grow(builder *b)
{
    uint32_t cap = b->keycap ? b->keycap * 2 : 4096;
    size_t size = (size_t)cap * 2;
    slot *slots = calloc(size, sizeof(*slots));
    uint32_t *keys = realloc(b->cp->keys, cap * sizeof(*keys));
    uint32_t *count = realloc(b->count, cap * sizeof(*count));
    uint32_t *touched = realloc(b->touched, cap * sizeof(*touched));

    if (keys != NULL)
        b->cp->keys = keys;
    if (count != NULL)
        b->count = count;
    if (touched != NULL)
        b->touched = touched;
    if (slots == NULL || keys == NULL || count == NULL || touched == NULL || cap > 2 * MAX_FEATURES) {
        free(slots);
        return false;
    }
    memset(b->count + b->keycap, 0, (cap - b->keycap) * sizeof(*count));
    for (uint32_t r = 0; r < b->cp->nfeat; r++) {
        uint32_t i = b->cp->keys[r] & (uint32_t)(size - 1);
        while (slots[i].key != 0)
            i = (i + 1) & (uint32_t)(size - 1);
        slots[i].key = b->cp->keys[r];
        slots[i].row = r;
    }
    free(b->slots);
    b->slots = slots;
    b->mask = (uint32_t)(size - 1);
    b->keycap = cap;
    return true;
}

static uint32_t vocab_column(builder *b, uint32_t key)
{
    uint32_t i;

    if (b->cp->nfeat == b->keycap && !vocab_grow(b))
        return NO_ROW;
    for (i = key & b->mask; b->slots[i].key != 0; i = (i + 1) & b->mask)
        if (b->slots[i].key == key)
            return b->slots[i].row;
    b->slots[i].key = key;
    b->slots[i].row = b->cp->nfeat;
    b->cp->keys[b->cp->nfeat] = key;
    return b->cp->nfeat++;
}

static void build_sink(void *ctx, const uint32_t *h, size_t n)
{
    builder *b = ctx;

    for (size_t i = 0; i < n && !b->oom; i++) {
        uint32_t col = vocab_column(b, h[i]);
        if (col == NO_ROW) {
            b->oom = true;
        } else {
            if (b->count[col] == 0)
                b->touched[b->ntouched++] = col;
            b->count[col] += b->count[col] != UINT32_MAX;
        }
    }
}

/* Appends the current document's counts as the next row and resets them. */
static bool corpus_add_row(builder *b)
{
    corpus *cp = b->cp;

    if (cp->nnz + b->ntouched > cp->cap) {
        size_t cap = cp->cap ? cp->cap : 1 << 16;
        while (cap < cp->nnz + b->ntouched)
            cap *= 2;
        uint32_t *col = realloc(cp->col, cap * sizeof(*col));
        if (col != NULL)
            cp->col = col;
        float *tf = realloc(cp->tf, cap * sizeof(*tf));
        if (tf != NULL)
            cp->tf = tf;
        if (col == NULL || tf == NULL)
            return false;
        cp->cap = cap;
    }
    for (size_t i = 0; i < b->ntouched; i++) {
        uint32_t c = b->touched[i];
        cp->col[cp->nnz] = c;
        cp->tf[cp->nnz++] = (float)b->count[c];
        b->count[c] = 0;
    }
    b->ntouched = 0;
    return true;
}

static void corpus_free(corpus *cp)
{
    free(cp->ptr);
    free(cp->col);
    free(cp->tf);
    free(cp->keys);
    free(cp->df);
    memset(cp, 0, sizeof(*cp));
}

/* Drops columns seen in fewer than min_df documents and renumbers the rest in ascending hash
 * order, so the model's rows come out in a canonical order. */
static bool corpus_prune(corpus *cp, int min_df)
{
    uint32_t *order = malloc((cp->nfeat + 1) * sizeof(*order));
    uint32_t *remap = malloc((cp->nfeat + 1) * sizeof(*remap));
    uint32_t kept = 0;

    if (order == NULL || remap == NULL) {
        free(order);
        free(remap);
        return false;
    }
    /* Counting sort would need 2^32 buckets; a radix sort of (key, column) keeps it linear. */
    uint64_t *pairs = malloc((cp->nfeat + 1) * sizeof(*pairs)), *tmp = malloc((cp->nfeat + 1) * sizeof(*tmp));
    if (pairs == NULL || tmp == NULL) {
        free(pairs);
        free(tmp);
        free(order);
        free(remap);
        return false;
    }
    for (uint32_t c = 0; c < cp->nfeat; c++)
        pairs[c] = (uint64_t)cp->keys[c] << 32 | c;
    for (int shift = 32; shift < 64; shift += 8) {
        size_t cnt[257] = {0};
        for (uint32_t i = 0; i < cp->nfeat; i++)
            cnt[((pairs[i] >> shift) & 0xFF) + 1]++;
        for (int k = 0; k < 256; k++)
            cnt[k + 1] += cnt[k];
        for (uint32_t i = 0; i < cp->nfeat; i++)
            tmp[cnt[(pairs[i] >> shift) & 0xFF]++] = pairs[i];
        uint64_t *t = pairs;
        pairs = tmp;
        tmp = t;
    }
    for (uint32_t c = 0; c < cp->nfeat; c++)
        remap[c] = NO_ROW;
    for (uint32_t i = 0; i < cp->nfeat; i++) {
        uint32_t c = (uint32_t)pairs[i];
        if (cp->df[c] >= (uint32_t)min_df)
            order[kept] = c, remap[c] = kept++;
    }
    for (uint32_t i = 0; i < kept; i++) {
        tmp[i] = cp->keys[order[i]];
        pairs[i] = cp->df[order[i]];
    }
    for (uint32_t i = 0; i < kept; i++) {
        cp->keys[i] = (uint32_t)tmp[i];
        cp->df[i] = (uint32_t)pairs[i];
    }
    size_t w = 0;
    for (size_t d = 0; d < cp->n; d++) {
        size_t start = cp->ptr[d];
        cp->ptr[d] = w;
        for (size_t j = start; j < cp->ptr[d + 1]; j++) {
            if (remap[cp->col[j]] != NO_ROW) {
                cp->col[w] = remap[cp->col[j]];
                cp->tf[w++] = cp->tf[j];
            }
        }
    }
    cp->ptr[cp->n] = cp->nnz = w;
    cp->nfeat = kept;
    free(pairs);
    free(tmp);
    free(order);
    free(remap);
    return true;
}

/* Extracts the documents idx[0..n) into cp (y indexed like idx): the text's features, then one
 * per attribute present (vals[doc * nattrs + a], namespaces ns[a]). */
static bool corpus_build(corpus *cp, const rd_feature_opts *fo, const char *const *texts, const size_t *lens,
                         const char *const *vals, int nattrs, const uint64_t *ns, const size_t *idx, size_t n,
                         int min_df)
{
    builder b;
    bool ok = true;

    memset(cp, 0, sizeof(*cp));
    memset(&b, 0, sizeof(b));
    b.cp = cp;
    cp->n = n;
    if ((cp->ptr = calloc(n + 1, sizeof(*cp->ptr))) == NULL || !vocab_grow(&b))
        ok = false;
    for (size_t i = 0; ok && i < n; i++) {
        const char *t = texts[idx[i]];
        rd_text_features(fo, t, t != NULL ? lens[idx[i]] : 0, build_sink, &b);
        for (int a = 0; vals != NULL && a < nattrs; a++) {
            uint32_t h[1] = {attr_feature(ns[a], vals[idx[i] * (size_t)nattrs + (size_t)a])};
            if (h[0] != 0)
                build_sink(&b, h, 1);
        }
        ok = !b.oom && corpus_add_row(&b);
        cp->ptr[i + 1] = cp->nnz;
    }
    if (ok && (cp->df = calloc(cp->nfeat + 1, sizeof(*cp->df))) == NULL)
        ok = false;
    for (size_t j = 0; ok && j < cp->nnz; j++)
        cp->df[cp->col[j]]++;
    ok = ok && corpus_prune(cp, min_df) && cp->nfeat <= MAX_FEATURES;
    free(b.slots);
    free(b.count);
    free(b.touched);
    if (!ok)
        corpus_free(cp);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * Training: one binary SVM per class
 * --------------------------------------------------------------------------------------------- */

/* splitmix64: a small, fixed generator, so training does not depend on the C library's rand(). */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The rows weighted for one class: val[j] = tfw * s[col] / ||row||, plus the bias feature 1. */
typedef struct {
    const corpus *cp;
    const double *val;
    const signed char *y; /* +1 / -1 */
    double cp_pos, cp_neg;
} svm_problem;

static double row_dot(const svm_problem *p, const double *w, size_t i)
{
    double s = w[p->cp->nfeat]; /* bias, its feature is 1 */

    for (size_t j = p->cp->ptr[i]; j < p->cp->ptr[i + 1]; j++)
        s += w[p->cp->col[j]] * p->val[j];
    return s;
}

static void row_axpy(const svm_problem *p, double *w, size_t i, double a)
{
    w[p->cp->nfeat] += a;
    for (size_t j = p->cp->ptr[i]; j < p->cp->ptr[i + 1]; j++)
        w[p->cp->col[j]] += a * p->val[j];
}

/*
 * Dual coordinate descent for min_w 1/2 |w|^2 + sum_i C_i max(0, 1 - y_i w.x_i)^2, as liblinear's
 * solve_l2r_l1l2_svc for the L2 loss: alpha_i >= 0 with no upper bound, diagonal 1/(2 C_i),
 * random order each pass, and shrinking of coordinates stuck at 0 until the gradient
 * spread drops under eps, then one more pass over everything.
 */
static bool svm_train(const svm_problem *p, double *w, int max_iter, double eps, uint64_t seed)
{
    size_t n = p->cp->n, active = n;
    double *alpha = calloc(n + 1, sizeof(*alpha)), *qd = malloc((n + 1) * sizeof(*qd));
    size_t *index = malloc((n + 1) * sizeof(*index));
    double pgmax_old = INFINITY; /* alpha has no upper bound, so only the lower side shrinks */

    if (alpha == NULL || qd == NULL || index == NULL) {
        free(alpha);
        free(qd);
        free(index);
        return false;
    }
    memset(w, 0, (p->cp->nfeat + 1) * sizeof(*w));
    for (size_t i = 0; i < n; i++) {
        double d = 0.5 / (p->y[i] > 0 ? p->cp_pos : p->cp_neg), sq = 1.0;
        for (size_t j = p->cp->ptr[i]; j < p->cp->ptr[i + 1]; j++)
            sq += p->val[j] * p->val[j];
        qd[i] = sq + d;
        index[i] = i;
    }
    for (int iter = 0; iter < max_iter; iter++) {
        double pgmax = -INFINITY, pgmin = INFINITY;
        for (size_t k = 0; k + 1 < active; k++) {
            size_t r = k + rng_next(&seed) % (active - k), t = index[k];
            index[k] = index[r];
            index[r] = t;
        }
        for (size_t k = 0; k < active; k++) {
            size_t i = index[k];
            double d = 0.5 / (p->y[i] > 0 ? p->cp_pos : p->cp_neg);
            double g = p->y[i] * row_dot(p, w, i) - 1 + alpha[i] * d, pg = g;
            if (alpha[i] == 0) {
                if (g > pgmax_old) { /* stuck at the bound: leave it out until the end */
                    size_t t = index[k];
                    index[k--] = index[--active];
                    index[active] = t;
                    continue;
                }
                if (g > 0)
                    pg = 0;
            }
            pgmax = pg > pgmax ? pg : pgmax;
            pgmin = pg < pgmin ? pg : pgmin;
            if (fabs(pg) > 1e-12) {
                double old = alpha[i];
                alpha[i] = fmax(alpha[i] - g / qd[i], 0.0);
                row_axpy(p, w, i, (alpha[i] - old) * p->y[i]);
            }
        }
        if (pgmax - pgmin <= eps) {
            if (active == n)
                break;
            active = n;
            pgmax_old = INFINITY;
            continue;
        }
        pgmax_old = pgmax <= 0 ? INFINITY : pgmax;
    }
    free(alpha);
    free(qd);
    free(index);
    return true;
}

/* Per-column scale for class c: idf times the NB log-count ratio (each 1 when disabled). */
static void class_scale(const corpus *cp, const rd_train_opts *o, const uint32_t *df_c, double *s)
{
    double sum_p = cp->nfeat; /* Laplace smoothing: 1 per column, on both sides */
    double sum_q = sum_p;

    for (uint32_t f = 0; f < cp->nfeat; f++) {
        sum_p += df_c[f];
        sum_q += cp->df[f] - df_c[f];
    }
    for (uint32_t f = 0; f < cp->nfeat; f++) {
        double idf = o->idf ? log((1.0 + (double)cp->n) / (1.0 + cp->df[f])) + 1.0 : 1.0;
        double r = 1.0;
        if (o->nb)
            r = log((1.0 + df_c[f]) / sum_p) - log((1.0 + cp->df[f] - df_c[f]) / sum_q);
        s[f] = idf * r;
    }
}

static void class_rows(const corpus *cp, const rd_train_opts *o, const double *s, double *val)
{
    for (size_t i = 0; i < cp->n; i++) {
        double norm = 0;
        for (size_t j = cp->ptr[i]; j < cp->ptr[i + 1]; j++) {
            val[j] = tf_weight(o->sublinear_tf, (uint32_t)cp->tf[j]) * s[cp->col[j]];
            norm += val[j] * val[j];
        }
        norm = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
        for (size_t j = cp->ptr[i]; j < cp->ptr[i + 1]; j++)
            val[j] *= norm;
    }
}

/* Trains one class against the rest and folds its weighting into column c of the rows. */
static bool train_class(rd_model *m, const corpus *cp, const rd_train_opts *o, int c, double *val, double *s, double *w,
                        uint32_t *df_c, signed char *y)
{
    size_t npos = 0;

    memset(df_c, 0, cp->nfeat * sizeof(*df_c));
    for (size_t i = 0; i < cp->n; i++) {
        y[i] = cp->y[i] == c ? 1 : -1;
        npos += y[i] > 0;
        for (size_t j = cp->ptr[i]; y[i] > 0 && j < cp->ptr[i + 1]; j++)
            df_c[cp->col[j]]++;
    }
    class_scale(cp, o, df_c, s);
    class_rows(cp, o, s, val);
    svm_problem p = {cp, val, y, o->c, o->c};
    if (o->balanced && npos > 0)
        p.cp_pos = o->c * (double)cp->n / ((double)m->nlabels * (double)npos);
    if (!svm_train(&p, w, o->max_iter, o->eps, o->seed + (uint64_t)c * 0x9e3779b97f4a7c15ULL))
        return false;
    for (uint32_t f = 0; f < cp->nfeat; f++) {
        float *row = m->rows + (size_t)f * 2 * (size_t)m->nlabels;
        row[c] = (float)(w[f] * s[f]);
        row[m->nlabels + c] = (float)(s[f] * s[f]);
    }
    m->bias[c] = (float)w[cp->nfeat];
    return true;
}

/* The weights of a model for labels y (0..nlabels) of documents idx[0..n): no names, no
 * calibration (temperature 1); attribute namespaces but not their names. */
static rd_model *train_core(const char *const *texts, const size_t *lens, const char *const *vals, const int *y,
                            int nlabels, const size_t *idx, size_t n, const rd_train_opts *o)
{
    corpus cp;
    rd_model *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->nattrs = o->nattrs;
    for (int a = 0; a < o->nattrs; a++)
        m->attr_ns[a] = attr_ns(o->attr_names[a]);
    if (!corpus_build(&cp, &o->features, texts, lens, vals, m->nattrs, m->attr_ns, idx, n, o->min_df)) {
        free(m);
        return NULL;
    }
    int *yy = malloc(n * sizeof(*yy));
    cp.y = yy;
    m->fo = o->features;
    m->sublinear_tf = o->sublinear_tf;
    m->nlabels = nlabels;
    m->temperature = 1.0f;
    m->nfeat = cp.nfeat;
    m->keys = cp.keys;
    cp.keys = NULL;
    m->rows = malloc(((size_t)cp.nfeat * 2 * (size_t)nlabels + 1) * sizeof(*m->rows));
    m->bias = calloc((size_t)nlabels, sizeof(*m->bias));
    double *val = malloc((cp.nnz + 1) * sizeof(*val)), *s = malloc((cp.nfeat + 1) * sizeof(*s));
    double *w = malloc((cp.nfeat + 2) * sizeof(*w));
    uint32_t *df_c = malloc((cp.nfeat + 1) * sizeof(*df_c));
    signed char *ys = malloc(n + 1);
    bool ok = yy != NULL && m->rows != NULL && m->bias != NULL && val != NULL && s != NULL && w != NULL &&
              df_c != NULL && ys != NULL;
    for (size_t i = 0; ok && i < n; i++)
        yy[i] = y[idx[i]];
    for (int c = 0; ok && c < nlabels; c++)
        ok = train_class(m, &cp, o, c, val, s, w, df_c, ys);
    ok = ok && model_index(m);
    free(val);
    free(s);
    free(w);
    free(df_c);
    free(ys);
    free(yy);
    corpus_free(&cp);
    if (!ok)
        rd_model_destroy(&m);
    return m;
}

/* ------------------------------------------------------------------------------------------------
 * Training: labels, calibration, version
 * --------------------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct labels in strcmp order into m->labels, and each document's label index into y. */
static bool label_index(rd_model *m, const char *const *labels, size_t n, int *y)
{
    const char **sorted = malloc(n * sizeof(*sorted));
    int k = 0;

    if (sorted == NULL)
        return false;
    memcpy(sorted, labels, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
            sorted[k++] = sorted[i];
    m->labels = calloc((size_t)k, sizeof(*m->labels));
    m->nlabels = m->labels != NULL ? k : 0;
    for (int i = 0; i < m->nlabels; i++)
        if ((m->labels[i] = strdup(sorted[i])) == NULL) {
            free(sorted);
            return false;
        }
    for (size_t i = 0; i < n && m->labels != NULL; i++) {
        const char *key = labels[i];
        const char **hit = bsearch(&key, sorted, (size_t)k, sizeof(*sorted), cmp_str);
        y[i] = (int)(hit - sorted);
    }
    free(sorted);
    return m->labels != NULL;
}

/* Negative log-likelihood of the true labels under softmax(t * scores). */
static double calib_nll(const double *sc, const int *y, size_t n, int nl, double t)
{
    double nll = 0;

    for (size_t i = 0; i < n; i++)
        nll -= log(softmax_at(sc + i * (size_t)nl, nl, y[i], t) + 1e-300);
    return nll;
}

/*
 * The softmax temperature that best explains out-of-fold scores: each document is scored by a
 * model trained without it (folds stratified by label), then the NLL, convex in t, is
 * minimised by golden-section search over log t. Training-set scores would be overconfident.
 */
static bool calibrate(rd_model *m, const char *const *texts, const size_t *lens, const char *const *vals, const int *y,
                      size_t n, const rd_train_opts *o)
{
    int k = o->calibration_folds, nl = m->nlabels;
    int *fold = malloc(n * sizeof(*fold)), *next = calloc((size_t)nl, sizeof(*next));
    size_t *idx = malloc(n * sizeof(*idx));
    double *sc = malloc(n * (size_t)nl * sizeof(*sc));
    uint64_t seed = o->seed ^ 0x5bd1e995ULL;
    bool ok = fold != NULL && next != NULL && idx != NULL && sc != NULL;

    /* Stratified: documents of each label are dealt to the folds in turn, from a random start. */
    for (int c = 0; ok && c < nl; c++)
        next[c] = (int)(rng_next(&seed) % (uint64_t)k);
    for (size_t i = 0; ok && i < n; i++) {
        fold[i] = next[y[i]];
        next[y[i]] = (next[y[i]] + 1) % k;
    }
    for (int f = 0; ok && f < k; f++) {
        size_t ntr = 0;
        for (size_t i = 0; i < n; i++)
            if (fold[i] != f)
                idx[ntr++] = i;
        rd_model *sub = train_core(texts, lens, vals, y, nl, idx, ntr, o);
        ok = sub != NULL;
        for (size_t i = 0; ok && i < n; i++)
            if (fold[i] == f)
                ok = model_scores(sub, texts[i], texts[i] != NULL ? lens[i] : 0,
                                  vals != NULL ? vals + i * (size_t)o->nattrs : NULL, sc + i * (size_t)nl);
        rd_model_destroy(&sub);
    }
    if (ok) {
        const double phi = 0.6180339887498949;
        double a = log(0.05), b = log(200.0);
        for (int it = 0; it < 80; it++) {
            double x1 = b - phi * (b - a), x2 = a + phi * (b - a);
            if (calib_nll(sc, y, n, nl, exp(x1)) <= calib_nll(sc, y, n, nl, exp(x2)))
                b = x2;
            else
                a = x1;
        }
        m->temperature = (float)exp((a + b) / 2);
    }
    free(fold);
    free(next);
    free(idx);
    free(sc);
    return ok;
}

static bool text_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return false;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = rd_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

static bool set_str(char **dst, const char *src)
{
    *dst = strdup(src != NULL ? src : "");
    return *dst != NULL;
}

static bool serialize_body(const rd_model *m, uint8_t **buf, size_t *len);

/* "<name>-<YYYYmmddTHHMMSSZ>-<12 hex digits of BLAKE2b(body)>". */
static bool model_set_version(rd_model *m)
{
    uint8_t *body, h[16];
    size_t len;
    char hex[33], stamp[32];
    struct tm tm;
    time_t t = (time_t)m->trained_at;

    if (!serialize_body(m, &body, &len))
        return false;
    crypto_generichash(h, sizeof(h), body, len, NULL, 0);
    free(body);
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    hex[12] = '\0';
    if (gmtime_r(&t, &tm) == NULL || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
        return false;
    size_t n = strlen(m->name) + strlen(stamp) + strlen(hex) + 3;
    if ((m->version = malloc(n)) == NULL)
        return false;
    snprintf(m->version, n, "%s-%s-%s", m->name, stamp, hex);
    return true;
}

static bool attr_name_ok(const char *s)
{
    size_t n = strnlen(s, 65);

    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Why the attribute options are wrong, or NULL. */
static const char *attrs_invalid(const rd_train_opts *o)
{
    if (o->nattrs < 0 || o->nattrs > RD_MAX_ATTRS || (o->nattrs > 0 && o->attr_names == NULL))
        return "invalid attributes (at most 8, with names)";
    for (int a = 0; a < o->nattrs; a++) {
        if (o->attr_names[a] == NULL || !attr_name_ok(o->attr_names[a]))
            return "an attribute name must be 1..64 bytes of a-z, 0-9 and _";
        for (int b = 0; b < a; b++)
            if (strcmp(o->attr_names[a], o->attr_names[b]) == 0)
                return "attribute names must be distinct";
        if (o->attr_cols != NULL && o->attr_cols[a] != NULL && !text_ok(o->attr_cols[a], 1024))
            return "column names must be printable UTF-8, at most 1024 bytes";
    }
    return NULL;
}

static bool train_args_ok(const char *const *texts, const size_t *lens, const char *const *labels, size_t n,
                          const rd_train_opts *o, char *err, int errlen)
{
    const char *why = NULL;

    if (texts == NULL || lens == NULL || labels == NULL || o == NULL || n == 0)
        why = "no training documents";
    else if (!feature_opts_valid(&o->features))
        why = "invalid feature options";
    else if (!(o->c > 0) || !isfinite(o->c) || o->min_df < 1 || o->max_iter < 1 || !(o->eps > 0) ||
             o->calibration_folds < 0 || o->calibration_folds == 1)
        why = "invalid training options (c > 0, min_df >= 1, max_iter >= 1, eps > 0, folds 0 or >= 2)";
    else if (o->name != NULL && (o->name[0] == '\0' || !text_ok(o->name, 64)))
        why = "the model name must be 1..64 bytes of printable UTF-8";
    else if ((o->text_cols != NULL && !text_ok(o->text_cols, 1024)) ||
             (o->label_col != NULL && !text_ok(o->label_col, 1024)))
        why = "column names must be printable UTF-8, at most 1024 bytes";
    for (size_t i = 0; why == NULL && i < n; i++)
        if (labels[i] == NULL || labels[i][0] == '\0' || !text_ok(labels[i], 1024))
            why = "every label must be 1..1024 bytes of printable UTF-8";
    if (why == NULL)
        why = attrs_invalid(o);
    if (why != NULL)
        snprintf(err, (size_t)errlen, "%s", why);
    return why == NULL;
}

rd_model *rd_model_train(const char *const *texts, const size_t *lens, const char *const *labels, size_t n,
                         const rd_train_opts *opts, char *err, int errlen)
{
    if (opts != NULL && opts->nattrs != 0) {
        snprintf(err, (size_t)errlen, "a model with attributes needs their values (rd_model_train_attrs)");
        return NULL;
    }
    return rd_model_train_attrs(texts, lens, NULL, labels, n, opts, err, errlen);
}

rd_model *rd_model_train_attrs(const char *const *texts, const size_t *lens, const char *const *attr_values,
                               const char *const *labels, size_t n, const rd_train_opts *opts, char *err, int errlen)
{
    rd_model *m = NULL, *core = NULL;
    int *y = NULL;
    size_t *idx = NULL;

    if (!train_args_ok(texts, lens, labels, n, opts, err, errlen))
        return NULL;
    if (opts->nattrs > 0 && attr_values == NULL) {
        snprintf(err, (size_t)errlen, "attributes without values");
        return NULL;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL || (y = malloc(n * sizeof(*y))) == NULL ||
        (idx = malloc(n * sizeof(*idx))) == NULL || !label_index(m, labels, n, y))
        goto oom;
    if (m->nlabels < 2 || m->nlabels > MAX_LABELS) {
        snprintf(err, (size_t)errlen, "need 2..%d distinct labels, got %d", MAX_LABELS, m->nlabels);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if ((core = train_core(texts, lens, attr_values, y, m->nlabels, idx, n, opts)) == NULL) {
        snprintf(err, (size_t)errlen, "out of memory, or more than %u distinct features (raise min_df)",
                 2 * MAX_FEATURES);
        goto fail;
    }
    /* Move the weights into the labelled model. */
    m->fo = core->fo;
    m->sublinear_tf = core->sublinear_tf;
    m->temperature = 1.0f;
    m->nfeat = core->nfeat;
    m->keys = core->keys, core->keys = NULL;
    m->rows = core->rows, core->rows = NULL;
    m->bias = core->bias, core->bias = NULL;
    m->slots = core->slots, core->slots = NULL;
    m->mask = core->mask;
    memcpy(m->tfw, core->tfw, sizeof(m->tfw));
    rd_model_destroy(&core);
    for (int a = 0; a < opts->nattrs; a++) {
        m->nattrs = a + 1; /* counted first, so that destroy frees what was set */
        m->attr_ns[a] = attr_ns(opts->attr_names[a]);
        if (!set_str(&m->attr_names[a], opts->attr_names[a]) ||
            !set_str(&m->attr_cols[a], opts->attr_cols != NULL ? opts->attr_cols[a] : NULL))
            goto oom;
    }
    if (opts->calibration_folds >= 2 && n >= (size_t)opts->calibration_folds * 2 &&
        !calibrate(m, texts, lens, opts->nattrs > 0 ? attr_values : NULL, y, n, opts))
        goto oom;
    m->trained_at = opts->trained_at != 0 ? opts->trained_at : (int64_t)time(NULL);
    if (!set_str(&m->name, opts->name != NULL ? opts->name : "textmodel") || !set_str(&m->text_cols, opts->text_cols) ||
        !set_str(&m->label_col, opts->label_col) || !model_set_version(m))
        goto oom;
    free(y);
    free(idx);
    return m;
oom:
    snprintf(err, (size_t)errlen, "out of memory");
fail:
    free(y);
    free(idx);
    rd_model_destroy(&m);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * The file
 *
 *   "RDTXTMDL"  u32 format (1: no attributes, 2: attributes)
 *   u32 meta length, meta: str name, str version, i64 trained_at, str text_cols, str label_col
 *          [format 2: u32 nattrs, str attr_col x nattrs]
 *   body:  u8 word_ngrams, char_min, char_max, cjk_min, cjk_max, flags (1 drop_redactions,
 *          2 fold_digits, 4 sublinear_tf); u32 nlabels, str label x nlabels;
 *          [format 2: u32 nattrs (1..8), str attr_name x nattrs]; f32 temperature;
 *          u32 nfeat; f32 bias x nlabels; u32 key x nfeat (ascending, non-zero);
 *          f32 row x nfeat x 2 nlabels (A then Q, Q >= 0)
 *   32 bytes BLAKE2b-256 of everything above
 * Integers and floats little-endian; str is u32 length + UTF-8 bytes. A model without attributes
 * is written as format 1, byte for byte what earlier builds wrote (and read), with the same
 * version string; only a model with attributes needs a reader of format 2.
 * --------------------------------------------------------------------------------------------- */

#define MAGIC        "RDTXTMDL"
#define FORMAT       1u /* without attributes */
#define FORMAT_ATTRS 2u /* with */
#define CHECKSUM_LEN 32
#define MAX_FILE     ((size_t)1 << 31)

typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(wbuf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(wbuf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_f32(wbuf *b, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(b, v);
}

static void put_str(wbuf *b, const char *s)
{
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put(b, s, n);
}

static void write_body(wbuf *b, const rd_model *m)
{
    uint8_t fo[6] = {m->fo.word_ngrams, m->fo.char_min, m->fo.char_max, m->fo.cjk_min, m->fo.cjk_max, 0};

    fo[5] = (uint8_t)((m->fo.drop_redactions ? 1 : 0) | (m->fo.fold_digits ? 2 : 0) | (m->sublinear_tf ? 4 : 0));
    put(b, fo, sizeof(fo));
    put_u32(b, (uint32_t)m->nlabels);
    for (int i = 0; i < m->nlabels; i++)
        put_str(b, m->labels[i]);
    if (m->nattrs > 0) {
        put_u32(b, (uint32_t)m->nattrs);
        for (int a = 0; a < m->nattrs; a++)
            put_str(b, m->attr_names[a]);
    }
    put_f32(b, m->temperature);
    put_u32(b, m->nfeat);
    for (int i = 0; i < m->nlabels; i++)
        put_f32(b, m->bias[i]);
    for (uint32_t i = 0; i < m->nfeat; i++)
        put_u32(b, m->keys[i]);
    for (size_t i = 0; i < (size_t)m->nfeat * 2 * (size_t)m->nlabels; i++)
        put_f32(b, m->rows[i]);
}

static bool serialize_body(const rd_model *m, uint8_t **buf, size_t *len)
{
    wbuf b = {0};

    write_body(&b, m);
    if (b.oom) {
        free(b.p);
        return false;
    }
    *buf = b.p;
    *len = b.len;
    return true;
}

void *rd_model_serialize(const rd_model *m, size_t *len)
{
    wbuf b = {0}, meta = {0};
    uint8_t sum[CHECKSUM_LEN];

    put_str(&meta, m->name);
    put_str(&meta, m->version);
    put_u64(&meta, (uint64_t)m->trained_at);
    put_str(&meta, m->text_cols);
    put_str(&meta, m->label_col);
    if (m->nattrs > 0) {
        put_u32(&meta, (uint32_t)m->nattrs);
        for (int a = 0; a < m->nattrs; a++)
            put_str(&meta, m->attr_cols[a]);
    }
    put(&b, MAGIC, 8);
    put_u32(&b, m->nattrs > 0 ? FORMAT_ATTRS : FORMAT);
    put_u32(&b, (uint32_t)meta.len);
    put(&b, meta.p, meta.len);
    write_body(&b, m);
    free(meta.p);
    if (meta.oom || b.oom) {
        free(b.p);
        return NULL;
    }
    crypto_generichash(sum, sizeof(sum), b.p, b.len, NULL, 0);
    put(&b, sum, sizeof(sum));
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

bool rd_model_save(const rd_model *m, const char *path, char *err, int errlen)
{
    size_t len, plen = strlen(path);
    uint8_t *buf = rd_model_serialize(m, &len);
    char *tmp = malloc(plen + 16);
    int fd = -1;

    if (buf == NULL || tmp == NULL) {
        snprintf(err, (size_t)errlen, "out of memory");
        free(buf);
        free(tmp);
        return false;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    bool ok = (fd = mkstemp(tmp)) >= 0 && write_all(fd, buf, len) && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    }
    free(tmp);
    free(buf);
    return ok;
}

/* Reading: every get checks the bounds; the first failure sticks and says why. */
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    const char *why;
} rbuf;

static bool get(rbuf *r, void *dst, size_t n)
{
    if (r->why != NULL)
        return false;
    if (n > r->len - r->pos) {
        r->why = "truncated";
        return false;
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return true;
}

static uint32_t get_u32(rbuf *r)
{
    uint8_t x[4] = {0};
    get(r, x, 4);
    return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static float get_f32(rbuf *r)
{
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    if (r->why == NULL && !isfinite(f))
        r->why = "a weight is not a finite number";
    return f;
}

static char *get_str(rbuf *r, size_t max, bool allow_empty)
{
    uint32_t n = get_u32(r);
    char *s;

    if (r->why != NULL)
        return NULL;
    if (n > max || (n == 0 && !allow_empty)) {
        r->why = "a string has an invalid length";
        return NULL;
    }
    if ((s = malloc((size_t)n + 1)) == NULL) {
        r->why = "out of memory";
        return NULL;
    }
    if (!get(r, s, n)) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    if (strlen(s) != n || !text_ok(s, max)) {
        r->why = "a string is not printable UTF-8";
        free(s);
        return NULL;
    }
    return s;
}

static void read_meta(rbuf *r, rd_model *m, uint32_t format)
{
    uint32_t len = get_u32(r);

    if (r->why == NULL && len > r->len - r->pos) {
        r->why = "truncated";
        return;
    }
    size_t end = r->pos + len;
    m->name = get_str(r, 64, false);
    m->version = get_str(r, 256, false);
    uint32_t lo = get_u32(r), hi = get_u32(r);
    m->trained_at = (int64_t)((uint64_t)hi << 32 | lo);
    m->text_cols = get_str(r, 1024, true);
    m->label_col = get_str(r, 1024, true);
    if (format == FORMAT_ATTRS) {
        uint32_t n = get_u32(r);
        if (r->why == NULL && (n < 1 || n > RD_MAX_ATTRS))
            r->why = "the attribute count is out of range";
        for (uint32_t a = 0; r->why == NULL && a < n; a++) {
            m->nattrs = (int)a + 1;
            m->attr_cols[a] = get_str(r, 1024, true);
        }
    }
    if (r->why == NULL && r->pos != end)
        r->why = "the metadata section has the wrong length";
}

static void read_labels(rbuf *r, rd_model *m)
{
    uint32_t n = get_u32(r);

    if (r->why == NULL && (n < 2 || n > MAX_LABELS))
        r->why = "the label count is out of range";
    if (r->why != NULL)
        return;
    if ((m->labels = calloc(n, sizeof(*m->labels))) == NULL) {
        r->why = "out of memory";
        return;
    }
    m->nlabels = (int)n;
    for (uint32_t i = 0; i < n && r->why == NULL; i++) {
        m->labels[i] = get_str(r, 1024, false);
        if (m->labels[i] != NULL && i > 0 && strcmp(m->labels[i - 1], m->labels[i]) >= 0)
            r->why = "labels are not distinct and in order";
    }
}

static void read_weights(rbuf *r, rd_model *m)
{
    m->temperature = get_f32(r);
    m->nfeat = get_u32(r);
    if (r->why == NULL && (!(m->temperature > 0) || m->nfeat > MAX_FEATURES))
        r->why = "the temperature or the feature count is out of range";
    if (r->why != NULL)
        return;
    size_t nl = (size_t)m->nlabels, nrow = (size_t)m->nfeat * 2 * nl;
    /* Check the size before allocating: a corrupt count must not become a huge allocation. */
    if (r->len - r->pos != nl * 4 + (size_t)m->nfeat * 4 + nrow * 4) {
        r->why = r->len - r->pos < nl * 4 + (size_t)m->nfeat * 4 + nrow * 4 ? "truncated" : "trailing bytes";
        return;
    }
    m->bias = malloc(nl * sizeof(*m->bias));
    m->keys = malloc(((size_t)m->nfeat + 1) * sizeof(*m->keys));
    m->rows = malloc((nrow + 1) * sizeof(*m->rows));
    if (m->bias == NULL || m->keys == NULL || m->rows == NULL) {
        r->why = "out of memory";
        return;
    }
    for (size_t i = 0; i < nl; i++)
        m->bias[i] = get_f32(r);
    for (uint32_t i = 0; i < m->nfeat && r->why == NULL; i++) {
        m->keys[i] = get_u32(r);
        if (m->keys[i] == 0 || (i > 0 && m->keys[i] <= m->keys[i - 1]))
            r->why = "feature keys are not distinct, non-zero and ascending";
    }
    for (size_t i = 0; i < nrow && r->why == NULL; i++) {
        m->rows[i] = get_f32(r);
        if (i % (2 * nl) >= nl && m->rows[i] < 0)
            r->why = "a norm weight is negative";
    }
}

/* The attribute names (format 2): as many as the metadata listed columns for. */
static void read_attrs(rbuf *r, rd_model *m)
{
    if (get_u32(r) != (uint32_t)m->nattrs && r->why == NULL)
        r->why = "the attribute counts disagree";
    for (int a = 0; r->why == NULL && a < m->nattrs; a++) {
        m->attr_names[a] = get_str(r, 64, false);
        if (r->why == NULL && !attr_name_ok(m->attr_names[a]))
            r->why = "an attribute name is invalid";
        for (int b = 0; r->why == NULL && b < a; b++)
            if (strcmp(m->attr_names[a], m->attr_names[b]) == 0)
                r->why = "attribute names are not distinct";
        if (r->why == NULL)
            m->attr_ns[a] = attr_ns(m->attr_names[a]);
    }
}

static void read_body(rbuf *r, rd_model *m)
{
    uint8_t fo[6];

    if (!get(r, fo, sizeof(fo)))
        return;
    m->fo.word_ngrams = fo[0];
    m->fo.char_min = fo[1];
    m->fo.char_max = fo[2];
    m->fo.cjk_min = fo[3];
    m->fo.cjk_max = fo[4];
    m->fo.drop_redactions = fo[5] & 1;
    m->fo.fold_digits = fo[5] & 2;
    m->sublinear_tf = fo[5] & 4;
    if ((fo[5] & ~7) != 0 || !feature_opts_valid(&m->fo)) {
        r->why = "invalid feature options";
        return;
    }
    read_labels(r, m);
    if (m->nattrs > 0)
        read_attrs(r, m);
    read_weights(r, m);
}

rd_model *rd_model_load_mem(const void *buf, size_t len, char *err, int errlen)
{
    rbuf r = {buf, len, 0, NULL};
    uint8_t sum[CHECKSUM_LEN];
    char magic[8];
    rd_model *m;

    if (buf == NULL || len < 8 + 4 + CHECKSUM_LEN) {
        snprintf(err, (size_t)errlen, "not a Redress text model: %zu bytes is too short", len);
        return NULL;
    }
    get(&r, magic, 8);
    if (memcmp(magic, MAGIC, 8) != 0) {
        snprintf(err, (size_t)errlen, "not a Redress text model (bad magic)");
        return NULL;
    }
    uint32_t format = get_u32(&r);
    if (format != FORMAT && format != FORMAT_ATTRS) {
        snprintf(err, (size_t)errlen, "unsupported model format %u (this build reads %u and %u)", format, FORMAT,
                 FORMAT_ATTRS);
        return NULL;
    }
    crypto_generichash(sum, sizeof(sum), buf, len - CHECKSUM_LEN, NULL, 0);
    if (sodium_memcmp(sum, (const uint8_t *)buf + len - CHECKSUM_LEN, CHECKSUM_LEN) != 0) {
        snprintf(err, (size_t)errlen, "model checksum mismatch: the file is truncated or corrupt");
        return NULL;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        snprintf(err, (size_t)errlen, "out of memory");
        return NULL;
    }
    r.len = len - CHECKSUM_LEN;
    read_meta(&r, m, format);
    read_body(&r, m);
    if (r.why == NULL && !model_index(m))
        r.why = "out of memory";
    if (r.why != NULL) {
        snprintf(err, (size_t)errlen, "invalid model: %s", r.why);
        rd_model_destroy(&m);
    }
    return m;
}

rd_model *rd_model_load(const char *path, char *err, int errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    rd_model *m = NULL;

    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE) {
        snprintf(err, (size_t)errlen, "%s: not a regular file of at most %zu bytes", path, MAX_FILE);
        close(fd);
        return NULL;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(err, (size_t)errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        snprintf(err, (size_t)errlen, "%s: short read", path);
    } else if ((m = rd_model_load_mem(buf, got, err, errlen)) == NULL) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, (size_t)errlen, "%s: %s", path, why);
    }
    free(buf);
    return m;
}
