/*
 * decide.c -- the classification decision, as a pure function.
 *
 * Order matters and is the policy:
 *   1. category first (a category rule, else the category model): the repeat check needs it;
 *   2. duplicate: an earlier ticket of the same customer within 24 h whose text is nearly the
 *      same (character-3-gram Jaccard >= 0.9) -- it is linked, not worked twice, and is not a
 *      "second complaint" (the customer only said the same thing again);
 *   3. repeat: otherwise, the most recent earlier ticket of the same customer within 30 days on
 *      the same category (or, with no category known, the same product). An earlier ticket that
 *      is not classified yet is categorised here, with the same rules and model, so the answer
 *      does not depend on which classifier process got there first;
 *   4. the rules again, now knowing "repeat", decide business type, severity and priority; what
 *      no rule decides comes from the models, then from defaults.
 *
 * Windows are measured back from the ticket's own creation time, never from "now", so the same
 * ticket always gets the same answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"

static const char *orEmpty(const char *s)
{
    return s ? s : "";
}

static void ruleInput(const cl_ticket *t, bool repeat, rd_rule_input *in)
{
    memset(in, 0, sizeof(*in));
    in->subject = t->subject;
    in->body = t->body;
    in->channel = t->channel;
    in->organisation = t->organisation;
    in->product = t->product;
    in->region = t->region;
    in->language = t->language;
    in->external_case_no = t->external_case_no;
    in->customer_ref = t->customer_ref;
    in->vip = t->vip;
    in->repeat = repeat;
}

/* The text a model reads: subject and body, as the trainer saw them. */
static char *modelText(const cl_ticket *t, size_t *len)
{
    const char *s = orEmpty(t->subject), *b = orEmpty(t->body);
    size_t ls = strlen(s), lb = strlen(b);
    char *txt = malloc(ls + lb + 2);
    if (txt == NULL)
        abort();
    memcpy(txt, s, ls);
    txt[ls] = '\n';
    memcpy(txt + ls + 1, b, lb + 1);
    *len = ls + 1 + lb;
    return txt;
}

/* The attributes a model may have been trained with (redress-train --attr-col NAME=COLUMN): the
 * ticket's fields under the names of the rule fields. A model reads the ones it knows. */
static size_t modelAttrs(const cl_ticket *t, rd_attr *a)
{
    a[0] = (rd_attr){"organisation", t->organisation};
    a[1] = (rd_attr){"product", t->product};
    a[2] = (rd_attr){"channel", t->channel};
    a[3] = (rd_attr){"region", t->region};
    a[4] = (rd_attr){"language", t->language};
    return 5;
}

static bool modelPredict(const rd_model *m, const cl_ticket *t, const char **label, double *conf)
{
    if (m == NULL)
        return false;
    size_t len;
    char *txt = modelText(t, &len);
    rd_attr attrs[5];
    size_t nattrs = modelAttrs(t, attrs);
    rd_prediction p;
    bool ok = rd_model_predict_attrs(m, txt, len, attrs, nattrs, &p) && p.label >= 0;
    free(txt);
    if (ok) {
        *label = rd_model_label(m, p.label);
        *conf = p.confidence;
    }
    return ok;
}

/* Category of any ticket under the current rules and model ("" when neither knows). */
static void categorise(const cl_context *ctx, const cl_ticket *t, char *cat, size_t catlen, char *src, size_t srclen,
                       double *conf)
{
    cat[0] = '\0';
    snprintf(src, srclen, "none");
    *conf = 0;
    if (ctx->rules) {
        rd_rule_input in;
        rd_rule_result r;
        ruleInput(t, false, &in);
        rd_rules_eval(ctx->rules, &in, &r);
        if (r.category) {
            snprintf(cat, catlen, "%s", r.category);
            snprintf(src, srclen, "rule:%s", r.category_rule);
            *conf = 1;
            return;
        }
    }
    const char *label;
    if (modelPredict(ctx->model_category, t, &label, conf)) {
        snprintf(cat, catlen, "%s", label);
        snprintf(src, srclen, "model:%s", rd_model_version(ctx->model_category));
    }
}

/* What "the same issue" means for the repeat check. */
static const char *issueKey(const char *category, const cl_ticket *t)
{
    if (category && category[0])
        return category;
    return (t->product && t->product[0]) ? t->product : NULL;
}

static void findLinks(const cl_context *ctx, const cl_ticket *t, const cl_ticket *earlier, int n, const char *cat,
                      cl_decision *out)
{
    char *text = NULL;
    size_t len;
    const cl_ticket *dup = NULL, *rep = NULL;
    const char *key = issueKey(cat, t);
    for (int i = 0; i < n; i++) {
        const cl_ticket *h = &earlier[i];
        if (strcmp(h->customer_id, t->customer_id) != 0 || strcmp(h->id, t->id) == 0)
            continue;
        /* strictly earlier, with the id breaking ties, so two tickets never point at each other */
        if (h->created_us > t->created_us || (h->created_us == t->created_us && strcmp(h->id, t->id) > 0))
            continue;
        int64_t age = t->created_us - h->created_us;
        if (age <= ctx->duplicate_window_us) {
            if (text == NULL)
                text = modelText(t, &len);
            char *htext = modelText(h, &len);
            bool same = cl_similarity(text, htext) >= ctx->duplicate_similarity;
            free(htext);
            if (same && (dup == NULL || h->created_us < dup->created_us ||
                         (h->created_us == dup->created_us && strcmp(h->id, dup->id) < 0)))
                dup = h;
        }
        if (key && age <= ctx->repeat_window_us) {
            char hc[256], src[128];
            double conf;
            if (h->classified)
                snprintf(hc, sizeof(hc), "%s", orEmpty(h->category));
            else
                categorise(ctx, h, hc, sizeof(hc), src, sizeof(src), &conf);
            const char *hkey = issueKey(hc, h);
            if (hkey && strcmp(hkey, key) == 0 &&
                (rep == NULL || h->created_us > rep->created_us ||
                 (h->created_us == rep->created_us && strcmp(h->id, rep->id) > 0)))
                rep = h;
        }
    }
    free(text);
    if (dup)
        snprintf(out->duplicate_of, sizeof(out->duplicate_of), "%s", dup->id);
    else if (rep)
        snprintf(out->repeat_of, sizeof(out->repeat_of), "%s", rep->id);
}

static int derivedPriority(const cl_decision *d)
{
    if (d->major)
        return 2;
    const char *bt = d->business_type;
    if (strcmp(bt, "complaint") == 0 || strcmp(bt, "fault_repair") == 0 || strcmp(bt, "report") == 0)
        return 3;
    return 4;
}

void cl_decide(const cl_context *ctx, const cl_ticket *t, const cl_ticket *earlier, int nearlier, cl_decision *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->ticket_id, sizeof(out->ticket_id), "%s", t->id);
    categorise(ctx, t, out->category, sizeof(out->category), out->category_source, sizeof(out->category_source),
               &out->category_confidence);
    findLinks(ctx, t, earlier, nearlier, out->category, out);

    rd_rule_result r;
    memset(&r, 0, sizeof(r));
    if (ctx->rules) {
        rd_rule_input in;
        ruleInput(t, out->repeat_of[0] != '\0', &in);
        rd_rules_eval(ctx->rules, &in, &r);
    }
    const char *label;
    double conf;
    if (r.business_type) {
        snprintf(out->business_type, sizeof(out->business_type), "%s", r.business_type);
        snprintf(out->business_type_source, sizeof(out->business_type_source), "rule:%s", r.business_type_rule);
        out->business_type_confidence = 1;
    } else if (modelPredict(ctx->model_business_type, t, &label, &conf)) {
        snprintf(out->business_type, sizeof(out->business_type), "%s", label);
        snprintf(out->business_type_source, sizeof(out->business_type_source), "model:%s",
                 rd_model_version(ctx->model_business_type));
        out->business_type_confidence = conf;
    } else {
        snprintf(out->business_type, sizeof(out->business_type), "complaint");
        snprintf(out->business_type_source, sizeof(out->business_type_source), "default");
        out->business_type_confidence = 0;
    }
    out->major = r.major;
    for (int i = 0; i < r.nreasons && i < RD_RULES_MAX_REASONS; i++)
        snprintf(out->reasons[out->nreasons++], sizeof(out->reasons[0]), "%s", r.reasons[i]);
    if (r.priority >= 1 && r.priority <= 4) {
        out->priority = r.priority;
        snprintf(out->priority_source, sizeof(out->priority_source), "rule:%s", r.priority_rule);
    } else {
        out->priority = derivedPriority(out);
        snprintf(out->priority_source, sizeof(out->priority_source), "derived");
    }
}

/* ---- near-duplicate text ------------------------------------------------------------------- */

/* Next code point's byte length (invalid bytes count as one). */
static size_t cpLen(const unsigned char *s)
{
    if (*s < 0x80)
        return 1;
    size_t n = (*s >= 0xF0) ? 4 : (*s >= 0xE0) ? 3 : (*s >= 0xC0) ? 2 : 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return n;
}

/* Normalised code points as 32-bit values: ASCII lower-cased, runs of white space folded to one. */
static uint32_t *codepoints(const char *text, size_t *n)
{
    size_t len = strlen(text), k = 0;
    uint32_t *cp = malloc((len + 1) * sizeof(uint32_t));
    if (cp == NULL)
        abort();
    const unsigned char *s = (const unsigned char *)text;
    bool space = true;
    while (*s) {
        size_t l = cpLen(s);
        uint32_t v = 0;
        for (size_t i = 0; i < l; i++)
            v = (v << 8) | s[i];
        s += l;
        if (v == ' ' || v == '\n' || v == '\r' || v == '\t') {
            if (!space)
                cp[k++] = ' ';
            space = true;
            continue;
        }
        space = false;
        cp[k++] = (v >= 'A' && v <= 'Z') ? v + 32 : v;
    }
    while (k > 0 && cp[k - 1] == ' ')
        k--;
    *n = k;
    return cp;
}

static int cmpU32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sorted, unique FNV-1a hashes of the 3-grams. */
static uint32_t *shingles(const uint32_t *cp, size_t n, size_t *out)
{
    size_t m = n >= 3 ? n - 2 : 0;
    uint32_t *h = malloc((m + 1) * sizeof(uint32_t));
    if (h == NULL)
        abort();
    for (size_t i = 0; i < m; i++) {
        uint32_t x = 2166136261u;
        for (size_t j = 0; j < 3; j++)
            for (int b = 0; b < 4; b++)
                x = (x ^ ((cp[i + j] >> (8 * b)) & 0xFF)) * 16777619u;
        h[i] = x;
    }
    qsort(h, m, sizeof(uint32_t), cmpU32);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || h[u - 1] != h[i])
            h[u++] = h[i];
    *out = u;
    return h;
}

double cl_similarity(const char *a, const char *b)
{
    size_t na, nb, sa, sb;
    uint32_t *ca = codepoints(orEmpty(a), &na), *cb = codepoints(orEmpty(b), &nb);
    double sim;
    if (na < 3 || nb < 3) {
        sim = (na == nb && memcmp(ca, cb, na * sizeof(uint32_t)) == 0) ? 1.0 : 0.0;
    } else {
        uint32_t *ha = shingles(ca, na, &sa), *hb = shingles(cb, nb, &sb);
        size_t i = 0, j = 0, both = 0;
        while (i < sa && j < sb) {
            if (ha[i] == hb[j]) {
                both++;
                i++;
                j++;
            } else if (ha[i] < hb[j]) {
                i++;
            } else {
                j++;
            }
        }
        sim = (double)both / (double)(sa + sb - both);
        free(ha);
        free(hb);
    }
    free(ca);
    free(cb);
    return sim;
}
