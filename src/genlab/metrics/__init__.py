"""Sample-quality metrics shared by every model family.

features.py (feature networks), fid.py (FD, KID), prdc.py (precision/recall, density/coverage), vector.py (W2,
sliced W2, RBF-MMD²), classes.py (Inception-style score, class accuracy, mode coverage), memorization.py,
floor.py (real-data floor and Gaussian baseline), report.py (`evaluate_sets`: everything at once) and output.py
(eval.json / eval.md / plots). `genlab.evaluate.evaluate` is the entry point the CLI calls.
"""
