from __future__ import annotations

import numpy as np

from labelgen.evaluation import plots
from labelgen.evaluation.thresholds import sweep


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_plot_writes_a_png_and_returns_its_path(tmp_path):
    rng = np.random.default_rng(0)
    conf = rng.random(300)
    correct = rng.random(300) < conf
    curve = sweep(conf, correct)
    paths = [
        plots.precision_coverage(curve, tmp_path / "pc.png", human_precision=0.7, threshold=0.5),
        plots.reliability(conf, correct, tmp_path / "sub" / "rel.png"),
        plots.confusion(
            rng.integers(0, 30, 300).tolist(),
            rng.integers(0, 30, 300).tolist(),
            tmp_path / "cm.png",
            top_k=5,
        ),
        plots.confusion([1, 2, 3], [1, 2, 2], tmp_path / "small.png"),
    ]
    assert all(_is_png(p) for p in paths)
