"""A trained model as a self-contained directory that loads without the training configs, the
Hugging Face hub or unpickling:

    config.json          format_version, labelgen_version, hyper_parameters, sha256 of each file
    model.safetensors    the state dict (tensors tied to each other stored once)
    feature_space.json   vocabularies and statistics that size the embeddings and heads
    encoder_config.json  the Hugging Face encoder config, so `roberta-base` is never fetched
    tokenizer/           the tokenizer the model was trained with (`save_pretrained`)
    README.md            the model card (not checksummed: editing it never breaks loading)

config.json's `data` holds the training data's paths and featurizer settings (token budgets)
when the model came from a checkpoint, so `label` featurizes as training did.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pickle
import secrets
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from labelgen import __version__
from labelgen.data.features import FeatureSpace
from labelgen.data.tokenization import load_tokenizer, resolve_pretrained
from labelgen.models.card import CARD, model_card
from labelgen.models.checkpointing import (
    FROZEN_KEY,
    SOURCE_ERRORS,
    restore_frozen_encoder,
    unreachable_source,
)
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.fusion import FusionConfig
from labelgen.models.components.turn_encoder import EncoderConfig
from labelgen.models.labelgen_module import LabelGenModule, OptimConfig, TaskConfig

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FEATURE_SPACE = "feature_space.json"
ENCODER_CONFIG = "encoder_config.json"
TOKENIZER = "tokenizer"
HPARAMS = ("encoder", "dialogue", "fusion", "tasks", "optim", "tokenizer")
"""The module's hyper-parameters kept in config.json; the feature space has its own file."""
DATA_SETTINGS = ("train", "val", "format", "max_user_tokens", "max_system_tokens")
"""What a checkpoint's data module says about the training data, kept in config.json `data`."""


class ExportError(ValueError):
    """An exported model or a checkpoint that cannot be read safely or does not fit."""


def export_model(
    source: LabelGenModule | str | Path,
    out_dir: str | Path,
    overwrite: bool = False,
    benchmarks: dict[str, Any] | None = None,
) -> Path:
    """Write `source` (a module or a Lightning `.ckpt`) as an exported model directory, with a
    model card that lists `benchmarks` (a benchmark's results JSON) when given.

    The directory appears complete or not at all: it is written beside `out_dir` under a
    hidden name and renamed into place.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    if isinstance(source, LabelGenModule):
        module, hparams = source, _module_hparams(source)
    else:
        module, hparams = load_checkpoint(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out, "tmp")
    try:
        _write(module, hparams, tmp, benchmarks)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_exported(model_dir: str | Path) -> LabelGenModule:
    """The model of an exported directory, in eval mode, built from local files only."""
    root = Path(model_dir).resolve()
    config = _read_json(root / CONFIG)
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        found = config.get("format_version") if isinstance(config, dict) else None
        raise ExportError(
            f"{root / CONFIG}: format_version {found!r}; this labelgen reads {FORMAT_VERSION}"
        )
    files = config.get("files")
    required = {WEIGHTS, FEATURE_SPACE, ENCODER_CONFIG}
    if not isinstance(files, dict) or not required <= set(files):
        raise ExportError(f"{root / CONFIG}: the checksums of {sorted(required)} are missing")
    for name, digest in files.items():
        path = root / name
        if not path.is_file():
            raise ExportError(f"{path}: missing from the exported model")
        if _sha256(path) != digest:
            raise ExportError(
                f"{path}: content differs from its sha256 in {CONFIG}; the file was modified "
                "or truncated after export"
            )
    space = _read_json(root / FEATURE_SPACE)
    encoder_config = _read_json(root / ENCODER_CONFIG)
    try:
        space = FeatureSpace(**space)
    except TypeError as err:
        raise ExportError(f"{root / FEATURE_SPACE}: not a feature space ({err})") from err
    module = _build(
        config.get("hyper_parameters"),
        root / CONFIG,
        tokenizer=str(root / TOKENIZER),
        space=space,
        encoder_config=encoder_config,
    )
    _load_weights(module, read_weights(root / WEIGHTS), root / WEIGHTS)
    data = config.get("data")
    module.data_settings = data if isinstance(data, dict) else {}
    return module.eval()


def load_checkpoint(path: str | Path) -> tuple[LabelGenModule, dict[str, Any]]:
    """A module and its hyper-parameters from a Lightning checkpoint, never unpickling objects."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = str(err).splitlines()
        reason = next((line for line in lines if "Unsupported global" in line), lines[0])
        reason = reason.split(". Please use")[0]  # torch's hint is to trust the object
        raise ExportError(
            f"{path}: refused: the checkpoint holds pickled objects other than tensors and "
            f"plain values, and loading them could run arbitrary code ({reason.strip()})"
        ) from err
    except (RuntimeError, EOFError) as err:
        raise ExportError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    if not (
        isinstance(checkpoint, dict)
        and isinstance(checkpoint.get("state_dict"), dict)
        and isinstance(checkpoint.get("hyper_parameters"), dict)
    ):
        raise ExportError(f"{path}: not a LabelGenModule checkpoint (state_dict, hyper_parameters)")
    hparams = checkpoint["hyper_parameters"]
    space = hparams.get("feature_space")
    # a checkpoint that names its frozen encoder instead of copying it: built from the source
    referring = FROZEN_KEY in checkpoint
    module = _build(
        hparams,
        Path(path),
        tokenizer=hparams.get("tokenizer"),
        space=FeatureSpace(**space) if isinstance(space, dict) else None,
        encoder_config=None,
        pretrained_weights=referring,
    )
    try:
        restore_frozen_encoder(checkpoint, module.encoder)
    except (ValueError, KeyError, TypeError) as err:
        raise ExportError(f"{path}: {err}") from err
    _load_weights(module, checkpoint["state_dict"], Path(path))
    data = checkpoint.get("datamodule_hyper_parameters")
    data = data if isinstance(data, dict) else {}
    module.data_settings = {k: data[k] for k in DATA_SETTINGS if k in data}
    return module, {k: hparams[k] for k in HPARAMS}


def _module_hparams(module: LabelGenModule) -> dict[str, Any]:
    missing = [k for k in HPARAMS if k not in module.hparams]
    if missing:
        raise ExportError(f"the module's hyper-parameters lack {missing}")
    return {k: module.hparams[k] for k in HPARAMS}


def _build(
    hparams: Any,
    source: Path,
    tokenizer: Any,
    space: FeatureSpace | None,
    encoder_config: dict[str, Any] | None,
    pretrained_weights: bool = False,
) -> LabelGenModule:
    """The module described by `hparams`, its encoder built from `encoder_config` if given;
    its weights uninitialized, for the caller to load, except with `pretrained_weights`, where
    the encoder loads them from its pretrained source."""
    try:
        encoder = dict(hparams["encoder"])
        if encoder_config is None and encoder["pretrained"] is not None and not pretrained_weights:
            from transformers import AutoConfig

            # The encoder's shape comes from where training took it; its weights are in the
            # checkpoint, so the pretrained weights are not loaded again.
            encoder_config = AutoConfig.from_pretrained(
                resolve_pretrained(encoder["pretrained"]), **encoder["architecture"]
            ).to_dict()
        if encoder_config is not None:
            encoder.update(pretrained=None, architecture=encoder_config)
        configs = {
            "encoder": EncoderConfig(**encoder),
            "dialogue": DialogueConfig(**hparams["dialogue"]),
            "fusion": FusionConfig(**hparams["fusion"]),
            "tasks": TaskConfig(**hparams["tasks"]),
            "optim": OptimConfig(**hparams["optim"]),
        }
        if not isinstance(tokenizer, str) or space is None:
            raise KeyError("tokenizer" if space is not None else "feature_space")
    except (KeyError, TypeError, ValueError) as err:
        raise ExportError(f"{source}: hyper-parameters that build no model ({err})") from err
    from transformers.initialization import no_init_weights

    # Every weight is loaded next (strictly): drawing random ones first only cost time, 0.2 s
    # of a MiniLM model's 0.5 s load (the quality benchmark's 117 labeling calls each load one
    # or two).
    with no_init_weights():
        try:
            module = LabelGenModule(**configs, tokenizer=tokenizer, feature_space=space)
        except SOURCE_ERRORS as err:
            if not pretrained_weights:
                raise
            reason = unreachable_source(encoder["pretrained"], err)
            raise ExportError(f"{source}: {reason}") from err
        if encoder_config is not None:
            _match_encoder(module, encoder_config)
    return module


def _match_encoder(module: LabelGenModule, encoder_config: dict[str, Any]) -> None:
    """Rebuild the encoder from `encoder_config` exactly where TurnEncoder resized it.

    TurnEncoder sizes a randomly initialized encoder to the tokenizer (vocab_size, pad id);
    pretrained encoders can have more embedding rows than tokens (DeBERTa-v3, ModernBERT).
    """
    built = module.encoder.model.config
    if (built.vocab_size, built.pad_token_id) == (
        encoder_config.get("vocab_size"),
        encoder_config.get("pad_token_id"),
    ):
        return
    from transformers import AutoConfig, AutoModel

    arch = dict(encoder_config)
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    config._attn_implementation = module.encoder.config.attn_implementation
    module.encoder.model = AutoModel.from_config(config, add_pooling_layer=False)
    if module.encoder.config.gradient_checkpointing:
        module.encoder.model.gradient_checkpointing_enable()


def _load_weights(module: LabelGenModule, state: dict[str, torch.Tensor], source: Path) -> None:
    # Keep the saved precision: a bf16 model must not come back as an fp32 one.
    for name, tensor in itertools.chain(module.named_parameters(), module.named_buffers()):
        saved = state.get(name)
        if (
            isinstance(saved, torch.Tensor)
            and saved.dtype != tensor.dtype
            and saved.is_floating_point()
            and tensor.is_floating_point()
        ):
            tensor.data = tensor.data.to(saved.dtype)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{source}: the weights do not fit the model ({err})") from err


def _write(
    module: LabelGenModule,
    hparams: dict[str, Any],
    root: Path,
    benchmarks: dict[str, Any] | None = None,
) -> None:
    save_weights(module.state_dict(), root / WEIGHTS)
    module.space.save(root / FEATURE_SPACE)
    (root / ENCODER_CONFIG).write_text(module.encoder.model.config.to_json_string(use_diff=False))
    load_tokenizer(hparams["tokenizer"]).save_pretrained(str(root / TOKENIZER))
    files = {
        path.relative_to(root).as_posix(): _sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    data = module.data_settings
    config = {
        "format_version": FORMAT_VERSION,
        "labelgen_version": __version__,
        "hyper_parameters": hparams,
        "data": data,
        "files": files,
    }
    (root / CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True))
    card = model_card(hparams, asdict(module.space), data, benchmarks)
    (root / CARD).write_text(card, encoding="utf-8")


def save_weights(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """A state dict as safetensors; tied tensors are stored once, `read_weights` restores them."""
    from safetensors.torch import save_file

    tensors, aliases = _flatten(state)
    save_file(tensors, str(path), metadata={"format": "pt", "aliases": json.dumps(aliases)})


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict `save_weights` wrote; an unreadable file is an `ExportError` naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        aliases = json.loads(metadata.get("aliases", "{}"))
        for alias, target in aliases.items():
            state[alias] = state[target]
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise ExportError(f"{path}: not a readable safetensors file ({err})") from err
    return state


def _flatten(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors safetensors accepts: contiguous, no shared memory. Tied tensors (an MLM decoder
    tied to the word embeddings) are stored once and named again in `aliases`."""
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        tensor = tensor.detach()
        # Keyed on the original device: moving tensors to the CPU one by one would untie them.
        key = (
            *_storage(tensor),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        kept[name] = tensor
    counts = Counter(_storage(t) for t in kept.values() if t.numel())
    # Distinct views of one storage (rare) are stored as copies.
    out = {
        name: (t.clone() if counts[_storage(t)] > 1 else t).cpu().contiguous()
        for name, t in kept.items()
    }
    return out, aliases


def _storage(tensor: torch.Tensor) -> tuple[torch.device, int]:
    return tensor.device, tensor.untyped_storage().data_ptr()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path}: missing; not an exported labelgen model") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON, truncated or modified ({err})") from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sibling(out: Path, kind: str) -> Path:
    """A new hidden directory beside `out` (same file system, so renames are atomic)."""
    path = out.with_name(f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")
    path.mkdir()
    return path


def _publish(tmp: Path, out: Path) -> None:
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    if not out.exists():
        os.rename(tmp, out)
        return
    # Replacing: the old directory steps aside first, so `out` is only ever one whole export.
    old = _sibling(out, "old")
    os.rename(out, old / out.name)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
