#!/usr/bin/python3
"""classifier_sklearn.py: the scikit-learn baseline for bench/classifier.sh.

Trains TfidfVectorizer + LinearSVC on a training CSV, scores it on a test CSV and times
prediction (vectorizer transform + predict over the whole test set, repeated for at least
--bench-seconds of CPU time). Prints key=value lines for the shell script to read.

The vectorizer settings are the ones the "Classifier" issue measured scikit-learn with, which
reproduce its figures to two decimals on these splits (LinearSVC defaults, C=1):
  word12   TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))      CFPB: accuracy 0.79, macro-F1 0.54
  charwb25 TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))      Teddy: accuracy 0.73, macro-F1 0.65
(scikit-learn's default word tokeniser sees a whole Chinese clause as one word, so Chinese needs
character n-grams.) Run it with Debian's interpreter, /usr/bin/python3, where python3-sklearn
lives.
"""
import argparse
import csv
import sys
import time

try:
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.svm import LinearSVC
except ImportError as e:
    print("classifier_sklearn.py: scikit-learn is missing (%s): apt-get install python3-sklearn" % e, file=sys.stderr)
    sys.exit(3)

VECTORIZERS = {
    "word12": dict(sublinear_tf=True, ngram_range=(1, 2)),
    "charwb25": dict(analyzer="char_wb", ngram_range=(2, 5)),
}


def load(path, text_cols, label_col):
    """Rows with a label; text columns joined with a line break, as redress-train does."""
    texts, labels = [], []
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            label = (row.get(label_col) or "").strip()
            if not label:
                continue
            texts.append("\n".join(row[c] for c in text_cols if row.get(c)))
            labels.append(label)
    return texts, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--text-col", required=True, help="comma-separated header names")
    ap.add_argument("--label-col", required=True)
    ap.add_argument("--vectorizer", choices=sorted(VECTORIZERS), required=True)
    ap.add_argument("--bench-seconds", type=float, default=0)
    a = ap.parse_args()
    cols = a.text_col.split(",")
    xtr, ytr = load(a.train, cols, a.label_col)
    xte, yte = load(a.test, cols, a.label_col)

    t0 = time.perf_counter()
    vec = TfidfVectorizer(**VECTORIZERS[a.vectorizer])
    clf = LinearSVC().fit(vec.fit_transform(xtr), ytr)
    train_s = time.perf_counter() - t0
    pred = clf.predict(vec.transform(xte))
    print("sklearn_version=%s" % sklearn.__version__)
    print("vectorizer=%s" % a.vectorizer)
    print("train_seconds=%.3f" % train_s)
    print("accuracy=%.4f" % accuracy_score(yte, pred))
    print("macro_f1=%.4f" % f1_score(yte, pred, average="macro", zero_division=0))
    if a.bench_seconds > 0:
        # Whole test set per call (scikit-learn's fast path: one sparse matrix, one product).
        # Rates per second of this thread's CPU time, as redress-train --bench-seconds reports
        # them, with the wall clock beside.
        docs, c0, w0 = 0, time.thread_time(), time.perf_counter()
        while True:
            clf.predict(vec.transform(xte))
            docs += len(xte)
            cpu = time.thread_time() - c0
            if cpu >= a.bench_seconds:
                break
        wall = time.perf_counter() - w0
        print("predict_docs=%d" % docs)
        print("predict_cpu_seconds=%.3f" % cpu)
        print("predict_per_s=%.1f" % (docs / cpu))
        print("predict_wall_per_s=%.1f" % (docs / wall))


if __name__ == "__main__":
    main()
