"""Hugging Face style `save_pretrained` / `from_pretrained` over the exported model format.

The exported directory (`labelgen.models.export`: safetensors weights, JSON configs with
checksums, the tokenizer, the vocabularies, a model card) is what goes to the hub as a model
repository, unchanged. `from_pretrained` takes a local directory or a hub repository id; a
repository is downloaded with `huggingface_hub.snapshot_download` (network, or the local hub
cache with HF_HUB_OFFLINE=1) and then loaded exactly like a local export: checksums verified,
nothing unpickled, no code from the repository run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelgen.models.export import export_model, load_exported
from labelgen.models.labelgen_module import LabelGenModule

ALLOW = ["*.json", "*.safetensors", "*.md", "tokenizer/*"]
"""Files fetched from a hub repository: the export's own; never code or pickles."""


def save_pretrained(
    model: LabelGenModule | str | Path,
    save_directory: str | Path,
    benchmarks: dict[str, Any] | None = None,
    push_to_hub: str | None = None,
    private: bool = True,
) -> Path:
    """Exports `model` (a module or a `.ckpt`) to `save_directory`, replacing it; with
    `push_to_hub="org/name"` also uploads it as that model repository (network needed)."""
    out = export_model(model, save_directory, overwrite=True, benchmarks=benchmarks)
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, private=private, exist_ok=True)
        api.upload_folder(repo_id=push_to_hub, folder_path=str(out))
    return out


def from_pretrained(
    name_or_path: str | Path, revision: str | None = None, cache_dir: str | None = None
) -> LabelGenModule:
    """A model from an exported directory, or from a hub repository id such as `org/name`."""
    path = Path(name_or_path)
    if path.is_dir():
        return load_exported(path)
    if path.exists() or not is_repo_id(str(name_or_path)):
        raise FileNotFoundError(
            f"{name_or_path}: not an exported model directory, nor a hub repository id (org/name)"
        )
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(
            repo_id=str(name_or_path), revision=revision, cache_dir=cache_dir, allow_patterns=ALLOW
        )
    except Exception as err:  # no network, no such repository, no access: all one answer
        raise FileNotFoundError(
            f"{name_or_path}: no such local directory, and the hub repository could not be "
            f"fetched ({type(err).__name__}: {err})"
        ) from err
    return load_exported(local)


def is_repo_id(name: str) -> bool:
    """`org/name` with the hub's characters; a local path never looks like one by accident
    here because callers check the path first."""
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and all(c.isalnum() or c in "-_." for part in parts for c in part)
        and not name.startswith(".")
    )
