"""Evaluation against annotators: the model and a single annotator, scored on the same gold.

- `evaluate.evaluate(predictions_dir, reference_path, ...)`: scores `labelgen label` output,
  writes metrics.json, calibration.json and plots; `evaluate.human_baseline(reference_path)`
  gives the single-annotator figures alone.
- `consensus`: majority votes with fixed tie rules, Dawid-Skene.
- `annotators`: the leave-one-annotator-out baseline.
- `metrics`, `uss_protocol`: scores with bootstrap intervals; `thresholds`: precision-coverage
  sweeps and the calibration file; `plots`: figures.
"""
