"""The model card (`README.md`) of an exported model: what the hub shows and a reader checks first.

It is written from what the export knows (heads, encoder, vocabularies, the training data's
paths and settings) and, when given, the results JSON of a benchmark run
(`scripts/benchmark_quality.py` writes one), so the figures on the card are the figures that
were measured, with the command and machine that measured them. It is documentation only:
it is not among the checksummed files, so editing it on the hub never breaks loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD = "README.md"
MAX_ROWS = 80
"""Benchmark rows on the card; a results file with more is cut, saying so."""


def model_card(
    hparams: dict[str, Any],
    space: dict[str, Any],
    data: dict[str, Any],
    benchmarks: dict[str, Any] | None = None,
) -> str:
    encoder = hparams["encoder"]
    base = encoder.get("pretrained")
    tasks = sorted(hparams["tasks"]["weights"])
    front = ["---", "library_name: labelgen", "pipeline_tag: token-classification"]
    if base and not str(base).startswith(("package:", "/", ".")):
        front.append(f"base_model: {base}")  # only a hub name links on the hub
    front += ["tags:", "- dialogue", "- labeling", "- slot-filling", "- intent-classification"]
    front.append("---")
    lines = [
        *front,
        "",
        "# labelgen dialogue labeler",
        "",
        "Labels logged dialogues offline: goal segmentation, goal success, intent, slots and "
        "the feedback and satisfaction heads below, each with a confidence. Trained with "
        "labelgen: a pretrained turn encoder fused with the log's features, a dialogue-level "
        "Transformer and one head per task.",
        "",
        "## Use",
        "",
        "```bash",
        "labelgen label --model THIS_DIRECTORY --input LOG --output labels/",
        "```",
        "",
        "```python",
        "from labelgen.models.hub import from_pretrained",
        "model = from_pretrained('THIS_DIRECTORY_OR_HUB_REPO')",
        "```",
        "",
        "## Model",
        "",
        f"- Turn encoder: `{base or 'built from encoder_config.json'}` "
        f"({'frozen' if encoder.get('frozen') else 'fine-tuned'}, token states from its last "
        f"{encoder.get('layers', 1)} layer(s))",
        f"- Dialogue encoder: {hparams['dialogue']['layers']} Transformer layer(s), width "
        f"{hparams['dialogue']['d_model']}"
        + ("" if hparams["dialogue"].get("context", True) else " (no-context baseline)"),
        f"- Heads (tasks trained): {', '.join(tasks)}",
        f"- Intents: {len(space.get('intents', []))}; slot tags: "
        f"{len(space.get('slot_tags', []))}; categorical features: "
        + ", ".join(f"{k} ({len(v)})" for k, v in sorted(space.get("categorical", {}).items())),
        "",
        "## Training data",
        "",
    ]
    if data:
        lines += [f"- {key}: `{value}`" for key, value in sorted(data.items()) if value is not None]
    else:
        lines.append("Not recorded (the model was exported from a module, not a checkpoint).")
    lines += ["", "## Evaluation", ""]
    lines += _benchmark_lines(benchmarks) if benchmarks else ["No benchmark results attached."]
    lines += [
        "",
        "## Limitations",
        "",
        "Intents, slots and categorical values outside the training vocabularies are never "
        "predicted (unseen values map to an UNKNOWN embedding). Confidences are calibrated on "
        "held-out data only when `labelgen evaluate` wrote a calibration file for this model; "
        "send low-confidence labels to human review (`--threshold`).",
        "",
    ]
    return "\n".join(lines)


def _benchmark_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("command", "machine"):
        if key in results:
            lines.append(f"- {key}: `{results[key]}`")
    rows = list(_numbers(results))
    if rows:
        lines += ["", "| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" for name, value in rows[:MAX_ROWS]]
        if len(rows) > MAX_ROWS:
            lines.append(f"\n({len(rows) - MAX_ROWS} more figures in the results file)")
    return lines


def _numbers(tree: Any, prefix: str = "") -> Any:
    """(dotted path, value) of every number in a results tree, in file order."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key not in ("command", "machine"):
                yield from _numbers(
                    value, f"{prefix}{key}." if isinstance(value, dict) else prefix + key
                )
    elif isinstance(tree, bool):
        return
    elif isinstance(tree, int | float):
        yield prefix, float(tree)


def read_benchmarks(path: str | Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    results = json.loads(Path(path).read_text())
    if not isinstance(results, dict):
        raise ValueError(f"{path}: a benchmark results file is a JSON object")
    return results
