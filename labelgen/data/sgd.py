"""Reader for the Schema-Guided Dialogue (SGD, DSTC8) format.

Input: a directory of `dialogues_*.json` or `dialogues_*.json.gz` files (whatever is present)
with an optional `schema.json`, or one such file. Each file is a JSON array of dialogues, and
each array element is one record: a dialogue that breaks the format or the contract (or holds
bytes that are not UTF-8) is rejected alone. A file cut off or corrupt mid-way (a truncated
download, a damaged gzip stream, invalid JSON) still yields every dialogue before the damage;
what follows it, unparseable, is one more reject ("the rest of the file"), as is data after the
array's closing bracket or gzip damage after a complete array. So input = accepted + rejected,
counting the lost rest of a damaged file as one record. Nothing is capped.

Mapping onto the contract:
- turn = a USER utterance and the SYSTEM utterance that follows it (None if the log ends on
  the user); a SYSTEM utterance before the first USER one becomes `system_opening`; two USER
  or two SYSTEM utterances in a row break the format and reject the dialogue.
- the USER utterance's frame is the one with a non-NONE active intent and actions;
  `domain` = its service, `intent` = its `state.active_intent` ("NONE" kept as a class: the
  user is not pursuing any intent). Without such a frame (MultiWOZ 2.2, in this format, keeps
  its acts per utterance in a separate `dialog_acts.json` and repeats every service's frame
  on every user turn, an intent often staying active after the user moved on), the frame is
  read from what changed since the user's previous utterance (a service absent there counts
  as changed): the first frame with an active intent and something new (a slot value or
  request added, or the intent itself); else the first active one that changed otherwise (a
  request answered drops out); else the first that changed at all (an intent ended: NONE);
  else the previous turn's service; else the first active frame; else the first frame.
- `slots` = the spans of every USER frame's `slots` (`start`/`exclusive_end`), value = the
  text at the span. A slot carried over from another (MultiWOZ 2.2's `copy_from`, with no
  `start`) names no text in the utterance and is not a span to tag: it is skipped.
- `user_acts` / `system_acts` = the frames' dialogue acts, in order. A dialogue with no act
  on any frame (MultiWOZ 2.2's dialogues_*.json) takes its acts from a `dialog_acts.json`
  that holds its id: each utterance's act types (e.g. `Booking-Book`), and goal success read
  from what they stand for in SGD's acts (`labelgen.data.multiwoz_acts`), counting only acts
  of the goal's service or of no domain (`Booking-*`); `rejection` stays None (MultiWOZ's
  user acts hold no decline). Without such an entry, acts, `rejection` and every goal's
  success are None, not "no act" and not a failed transaction.
- `schema.json` and `dialog_acts.json` are read beside the dialogue files, else from their
  parent directory (MultiWOZ 2.2 keeps both above its train/dev/test folders).
- goals: a goal is a maximal run of consecutive turns with the same (service, active intent);
  a new goal starts wherever that pair changes, so returning to an earlier intent after
  another one starts a new goal. Turns whose active intent is NONE serve no goal.
- goal success: the last NOTIFY_SUCCESS / NOTIFY_FAILURE among the goal's system responses
  decides; for a search intent a result offered (OFFER) after a NOTIFY_FAILURE overrides it:
  there the failure says a search found nothing (more), e.g. "Sorry, no other events", and
  the user, with other constraints, then got results (72% of the search goals notified a
  failure in SGD's train split, all 16 in dev, end that way). Without a notification, a
  transactional intent (per `schema.json`) failed: the user never got the transaction, e.g.
  declined its confirmation (NEGATE) or abandoned it; a search intent succeeded if the
  system offered or informed a result, and is unknown (None) otherwise.
  NEGATE_INTENT in SGD declines an intent the system offered (OFFER_INTENT) that never became
  active, so it is not the outcome of the current goal: it counts as rejection feedback.
- `rejection` (implicit feedback) on turn k: turn k+1's user acts include REQUEST_ALTS or
  NEGATE_INTENT, or NEGATE while turn k's system acts include CONFIRM or OFFER (a NEGATE that
  answers "anything else?" is not a rejection). None on the last turn, which gets no reaction.
- SGD has no barge-ins, rephrases, explicit feedback, confidences or annotators: left None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labelgen.data.canonical import RAW_LIMIT, lone_surrogate, validate
from labelgen.data.compressed import DamagedGzip, gunzip
from labelgen.data.multiwoz_acts import ACTS_FILE, load_dialog_acts, outcome_acts, utterance_acts
from labelgen.data.rejects import LogReadError, Reject
from labelgen.data.schema import Dialogue

REJECTING_ACTS = {"REQUEST_ALTS", "NEGATE_INTENT"}


class SgdFormatError(ValueError):
    pass


def read_sgd(path: str | Path) -> Iterator[Dialogue | Reject]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("dialogues_*.json")) + sorted(path.glob("dialogues_*.json.gz"))
        files.sort(key=lambda p: p.name)
        if not files:
            raise LogReadError(f"{path} holds no dialogues_*.json or dialogues_*.json.gz files")
        folder = path
    else:
        files = [path]
        folder = path.parent
    schema_path = next(
        (p for p in (folder / "schema.json", folder.parent / "schema.json") if p.exists()), None
    )
    transactional = {} if schema_path is None else _load_transactional(schema_path)
    acts_path = next(
        (p for p in (folder / ACTS_FILE, folder.parent / ACTS_FILE) if p.exists()), None
    )
    separate = None if acts_path is None else load_dialog_acts(acts_path)
    for file in files:
        for source, raw in _iter_file(file):
            if isinstance(raw, Reject):
                yield raw
                continue
            try:
                converted = convert_dialogue(raw, transactional, separate)
            except SgdFormatError as err:
                yield Reject(source, f"not an SGD dialogue: {err}", raw)
                continue
            yield validate(converted, source)


def _load_transactional(path: Path) -> dict[tuple[str, str], bool]:
    try:
        services = json.loads(path.read_text(encoding="utf-8"))
        return {
            (s["service_name"], i["name"]): bool(i["is_transactional"])
            for s in services
            for i in s["intents"]
        }
    except (ValueError, KeyError, TypeError) as err:
        raise LogReadError(f"{path} is not an SGD schema file: {err}") from err


def _iter_file(file: Path) -> Iterator[tuple[str, Any]]:
    """(source, raw dialogue or reject) per array element, salvaging what precedes damage."""
    try:
        data, damage = _read_bytes(file)
    except OSError as err:
        yield str(file), Reject(str(file), f"file cannot be read: {err.strerror or err}", None)
        return
    # A byte that is not UTF-8 becomes a lone surrogate, so that it rejects only the dialogue
    # holding it (or, outside any string, breaks the JSON from there on).
    text = data.decode("utf-8", errors="surrogateescape")
    suspect = _SURROGATE.search(text) is not None
    cut = "" if damage is None else f"; {damage}"

    def rest(source: str, why: str, pos: int) -> tuple[str, Reject]:
        reason = (
            f"{why}{cut}; the rest of the file ({len(text) - pos} characters, first "
            f"{RAW_LIMIT} kept) is rejected as one record"
        )
        return source, Reject(source, reason, _printable(text[pos : pos + RAW_LIMIT]))

    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if not text.startswith("[", pos):
        yield rest(str(file), "file is not a JSON array of dialogues", 0)
        return
    pos = _skip_ws(text, pos + 1)
    index = 0
    while not text.startswith("]", pos):
        source = f"{file}#{index}"
        try:
            raw, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as err:
            why = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
            yield rest(source, f"invalid JSON from dialogue {index} on ({why})", pos)
            return
        if suspect and (reason := lone_surrogate(raw)):
            yield source, Reject(source, reason, _printable(text[pos : min(end, pos + RAW_LIMIT)]))
        else:
            yield source, raw
        index += 1
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif not text.startswith("]", pos):
            why = "file is cut off" if pos == len(text) else "expected ',' or ']'"
            yield rest(f"{file}#{index}", f"{why} after dialogue {index - 1}", pos)
            return
    pos = _skip_ws(text, pos + 1)
    if pos < len(text):
        yield rest(f"{file}#{index}", "data after the closing ']' of the array", pos)
    elif damage is not None:
        yield str(file), Reject(str(file), f"after the complete array, {damage}", None)


_SURROGATE = re.compile("[\ud800-\udfff]|" + r"\\u[dD][89a-fA-F]")


def _printable(text: str) -> str:
    """Text with the bytes that are not UTF-8 shown as `\\xff`, so that a reject can be written."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _read_bytes(file: Path) -> tuple[bytes, str | None]:
    """The file's bytes (decompressed up to any damage) and what the damage was."""
    with file.open("rb") as handle:
        if file.suffix != ".gz":
            return handle.read(), None
        chunks: list[bytes] = []
        try:
            chunks.extend(gunzip(handle))
        except DamagedGzip as err:
            return b"".join(chunks), str(err)
        return b"".join(chunks), None


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def convert_dialogue(
    raw: Any,
    transactional: dict[tuple[str, str], bool],
    separate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One SGD dialogue as a canonical dict (validated by the caller). `separate`: MultiWOZ
    2.2's `dialog_acts.json`, read for a dialogue whose frames hold no act."""
    if not isinstance(raw, dict):
        raise SgdFormatError(f"expected an object, got {type(raw).__name__}")
    utterances = raw.get("turns")
    if not isinstance(utterances, list):
        raise SgdFormatError("'turns' is missing or not a list")
    opening, pairs = _pair_turns(utterances)
    annotated = any(a for utt in utterances for a in _acts_of(utt))
    entry = None
    if not annotated and separate is not None and isinstance(raw.get("dialogue_id"), str):
        entry = separate.get(raw["dialogue_id"])
    frames = _main_frames([user for user, _ in pairs])
    turns = [
        _turn(user, system, frame, annotated)
        for (user, system), frame in zip(pairs, frames, strict=True)
    ]
    keys = [_goal_key(frame) for frame in frames]
    outcomes = None  # no act known: neither is any goal's outcome
    if annotated:
        for k, turn in enumerate(turns[:-1]):
            turn["rejection"] = _rejects(turn["system_acts"], turns[k + 1]["user_acts"])
        outcomes = [turn["system_acts"] or [] for turn in turns]
    elif entry is not None:
        place = {id(utt): str(k) for k, utt in enumerate(utterances)}  # without its turn_id
        outcomes = _separate_acts(turns, pairs, keys, entry, place)
    return {
        "dialogue_id": raw.get("dialogue_id"),
        "turns": turns,
        "system_opening": opening,
        "goals": _goals(turns, keys, transactional, outcomes),
    }


def _separate_acts(
    turns: list[dict[str, Any]],
    pairs: list[tuple[dict, dict | None]],
    keys: list[tuple[str, str] | None],
    entry: Any,
    place: dict[int, str],
) -> list[list[str]]:
    """Fills each turn's acts from its dialogue's `dialog_acts.json` entry (`multiwoz_acts`);
    returns each turn's system acts as outcomes of the goal it serves (acts of another domain
    left out). Rejection stays None: MultiWOZ's user acts hold no decline."""
    outcomes: list[list[str]] = []

    def acts(utt: dict) -> dict[str, list[tuple[str, str]]]:
        try:
            return utterance_acts(entry, str(utt.get("turn_id", place[id(utt)])))
        except ValueError as err:
            raise SgdFormatError(f"malformed {ACTS_FILE} entry: {err}") from err

    for turn, (user, system), key in zip(turns, pairs, keys, strict=True):
        system_acts = {} if system is None else acts(system)
        turn["user_acts"] = list(acts(user))
        turn["system_acts"] = None if system is None else list(system_acts)
        service = key[0].lower() if key is not None and key[0] is not None else None
        outcomes.append(
            [act for domain, act in outcome_acts(system_acts) if domain in (None, service)]
        )
    return outcomes


def _pair_turns(utterances: list[Any]) -> tuple[str | None, list[tuple[dict, dict | None]]]:
    opening = None
    pairs: list[tuple[dict, dict | None]] = []
    for i, utt in enumerate(utterances):
        if not isinstance(utt, dict) or utt.get("speaker") not in ("USER", "SYSTEM"):
            raise SgdFormatError(f"utterance {i} has no USER/SYSTEM speaker")
        if utt["speaker"] == "USER":
            if pairs and pairs[-1][1] is None:
                raise SgdFormatError(f"utterances {i - 1} and {i} are both USER")
            pairs.append((utt, None))
        elif pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], utt)
        elif i == 0:
            _acts(utt)  # unused, but a malformed opening is as broken as any other utterance
            opening = utt.get("utterance")
        else:
            raise SgdFormatError(f"utterances {i - 1} and {i} are both SYSTEM")
    return opening, pairs


def _frames(utt: dict) -> list[dict]:
    frames = utt.get("frames", [])
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise SgdFormatError("'frames' is not a list of objects")
    # Service and intent key goals and schema look-ups, so they must be hashable strings here,
    # before the contract sees them.
    for frame in frames:
        if not isinstance(frame.get("service"), str | None):
            raise SgdFormatError("a frame's 'service' is not a string")
        if not isinstance(_active_intent(frame), str | None):
            raise SgdFormatError("a frame's 'state.active_intent' is not a string")
    return frames


def _main_frames(users: list[dict]) -> list[dict | None]:
    """Each USER utterance's frame (the rule in the module docstring)."""
    chosen: list[dict | None] = []
    states: dict[Any, Any] = {}  # service -> its state on the previous user utterance
    previous = None  # the previous turn's service
    for user in users:
        frames = _frames(user)
        active = [f for f in frames if _active_intent(f) not in (None, "NONE")]
        frame = next((f for f in active if f.get("actions")), None)
        if frame is None:
            changed = [f for f in frames if states.get(f.get("service")) != f.get("state")]
            moved = [f for f in changed if _active_intent(f) not in (None, "NONE")]
            news = [f for f in moved if _news(f, states.get(f.get("service")))]
            same = [f for f in frames if f.get("service") == previous]
            frame = next(iter(news or moved or changed or same or active or frames), None)
        chosen.append(frame)
        states = {f.get("service"): f.get("state") for f in frames}
        previous = None if frame is None else frame.get("service")
    return chosen


def _news(frame: dict, before: Any) -> bool:
    """Whether the frame's state adds a slot value, a request or its intent to `before`."""
    state, before = _as_dict(frame.get("state")), _as_dict(before)
    values, old_values = _as_dict(state.get("slot_values")), _as_dict(before.get("slot_values"))
    asked, old_asked = state.get("requested_slots"), before.get("requested_slots")
    asked = asked if isinstance(asked, list) else []
    old_asked = old_asked if isinstance(old_asked, list) else []
    return (
        state.get("active_intent") != before.get("active_intent")
        or any(old_values.get(k) != v for k, v in values.items())
        or any(r not in old_asked for r in asked)
    )


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _active_intent(frame: dict) -> str | None:
    state = frame.get("state")
    return state.get("active_intent") if isinstance(state, dict) else None


def _acts_of(utt: dict) -> list[str]:
    try:
        acts = [a["act"] for f in _frames(utt) for a in f.get("actions", [])]
    except (KeyError, TypeError) as err:
        raise SgdFormatError(f"malformed actions: {err!r}") from err
    if not all(isinstance(a, str) for a in acts):
        raise SgdFormatError("an action's 'act' is not a string")
    return acts


def _acts(utt: dict | None) -> list[str] | None:
    return None if utt is None else _acts_of(utt)


def _turn(user: dict, system: dict | None, frame: dict | None, annotated: bool) -> dict[str, Any]:
    try:
        slots = [
            {"slot": s["slot"], "start": s["start"], "end": s["exclusive_end"]}
            for f in _frames(user)
            for s in f.get("slots", [])
            if not ("copy_from" in s and "start" not in s)
        ]
    except (KeyError, TypeError) as err:
        raise SgdFormatError(f"malformed slot span: {err!r}") from err
    return {
        "user_text": user.get("utterance"),
        "system_text": None if system is None else system.get("utterance"),
        "domain": None if frame is None else frame.get("service"),
        "intent": None if frame is None else _active_intent(frame),
        "slots": slots,
        "user_acts": _acts(user) if annotated else None,
        "system_acts": _acts(system) if annotated else None,
    }


def _goal_key(frame: dict | None) -> tuple[str, str] | None:
    intent = None if frame is None else _active_intent(frame)
    return None if intent in (None, "NONE") else (frame.get("service"), intent)


def _rejects(system_acts: list[str] | None, next_user_acts: list[str] | None) -> bool:
    acts = set(next_user_acts or [])
    if acts & REJECTING_ACTS:
        return True
    return "NEGATE" in acts and bool({"CONFIRM", "OFFER"} & set(system_acts or []))


def _goals(
    turns: list[dict[str, Any]],
    keys: list[tuple[str, str] | None],
    transactional: dict[tuple[str, str], bool],
    outcomes: list[list[str]] | None,
) -> list[dict[str, Any]]:
    """The goals. `outcomes`: each turn's system acts in SGD's names, as its goal's outcome
    reads them; None when the dialogue has no acts, so no outcome is known."""
    goals: list[dict[str, Any]] = []
    acts_per_goal: list[list[str]] = []
    previous = None
    for turn, key, acts in zip(turns, keys, outcomes or [[]] * len(turns), strict=True):
        if key is not None and key != previous:
            goals.append({"goal_id": f"g{len(goals)}", "intent": key[1]})
            acts_per_goal.append([])
        if key is not None:
            turn["goal_id"] = goals[-1]["goal_id"]
            acts_per_goal[-1].extend(acts)
        previous = key
    for goal, key, acts in zip(goals, _dedupe(keys), acts_per_goal, strict=True):
        goal["success"] = None if outcomes is None else _success(acts, transactional.get(key))
    return goals


def _dedupe(keys: list[tuple[str, str] | None]) -> list[tuple[str, str]]:
    """The goal keys in order, one per goal (runs collapsed, NONE turns dropped)."""
    out: list[tuple[str, str]] = []
    previous = None
    for key in keys:
        if key is not None and key != previous:
            out.append(key)
        previous = key
    return out


def _success(acts: list[str], is_transactional: bool | None) -> bool | None:
    outcomes = {"NOTIFY_SUCCESS", "NOTIFY_FAILURE"}
    if is_transactional is False:
        outcomes.add("OFFER")  # a search that found something after all
    notified = [a for a in acts if a in outcomes]
    if "NOTIFY_FAILURE" in notified or "NOTIFY_SUCCESS" in notified:
        return notified[-1] != "NOTIFY_FAILURE"
    if is_transactional:
        return False
    if is_transactional is False and {"OFFER", "INFORM"} & set(acts):
        return True
    return None
