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


def test_fixed_margins_keep_every_label_inside_the_figure(tmp_path):
    """The precision-coverage and reliability plots skip `tight_layout` for fixed margins:
    a label pushed past the figure's edge would leave ink in its outermost pixels."""
    import matplotlib.image

    rng = np.random.default_rng(1)
    conf = rng.random(500)
    correct = rng.random(500) < conf
    paths = [
        plots.precision_coverage(
            sweep(conf, correct), tmp_path / "pc.png", 0.7, 0.5, title="goal_success"
        ),
        plots.reliability(conf, correct, tmp_path / "rel.png", title="satisfaction"),
    ]
    for path in paths:
        rgb = matplotlib.image.imread(path)[..., :3]
        frame = np.concatenate(
            [rgb[:4].ravel(), rgb[-4:].ravel(), rgb[:, :4].ravel(), rgb[:, -4:].ravel()]
        )
        assert frame.min() == 1.0, path.name  # white: nothing drawn at the edge
        assert rgb.min() < 0.5  # and something drawn inside it
