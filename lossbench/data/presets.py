"""Dataset presets: the CICIDS2017 preprocessing of the paper (SPEC 2.2) and the generic path (2.3).

A preset says which columns to drop, which duplicate column names are expected, which labels to
merge and which classes to drop by default, and whether features constant on the training split
are removed. The steps themselves live in `lossbench.data.pipeline`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lossbench.errors import InputError

#: The 78 feature columns of the MachineLearningCVE release, in file order (names stripped;
#: the second `Fwd Header Length` reads as `Fwd Header Length.1`).
CICIDS2017_FEATURES: tuple[str, ...] = (
    "Destination Port", "Flow Duration", "Total Fwd Packets", "Total Backward Packets",
    "Total Length of Fwd Packets", "Total Length of Bwd Packets", "Fwd Packet Length Max",
    "Fwd Packet Length Min", "Fwd Packet Length Mean", "Fwd Packet Length Std",
    "Bwd Packet Length Max", "Bwd Packet Length Min", "Bwd Packet Length Mean",
    "Bwd Packet Length Std", "Flow Bytes/s", "Flow Packets/s", "Flow IAT Mean", "Flow IAT Std",
    "Flow IAT Max", "Flow IAT Min", "Fwd IAT Total", "Fwd IAT Mean", "Fwd IAT Std", "Fwd IAT Max",
    "Fwd IAT Min", "Bwd IAT Total", "Bwd IAT Mean", "Bwd IAT Std", "Bwd IAT Max", "Bwd IAT Min",
    "Fwd PSH Flags", "Bwd PSH Flags", "Fwd URG Flags", "Bwd URG Flags", "Fwd Header Length",
    "Bwd Header Length", "Fwd Packets/s", "Bwd Packets/s", "Min Packet Length",
    "Max Packet Length", "Packet Length Mean", "Packet Length Std", "Packet Length Variance",
    "FIN Flag Count", "SYN Flag Count", "RST Flag Count", "PSH Flag Count", "ACK Flag Count",
    "URG Flag Count", "CWE Flag Count", "ECE Flag Count", "Down/Up Ratio", "Average Packet Size",
    "Avg Fwd Segment Size", "Avg Bwd Segment Size", "Fwd Header Length.1", "Fwd Avg Bytes/Bulk",
    "Fwd Avg Packets/Bulk", "Fwd Avg Bulk Rate", "Bwd Avg Bytes/Bulk", "Bwd Avg Packets/Bulk",
    "Bwd Avg Bulk Rate", "Subflow Fwd Packets", "Subflow Fwd Bytes", "Subflow Bwd Packets",
    "Subflow Bwd Bytes", "Init_Win_bytes_forward", "Init_Win_bytes_backward", "act_data_pkt_fwd",
    "min_seg_size_forward", "Active Mean", "Active Std", "Active Max", "Active Min", "Idle Mean",
    "Idle Std", "Idle Max", "Idle Min",
)  # fmt: skip

#: Step 1: network-specific nominal identifiers (GeneratedLabelledFlows release).
CICIDS2017_ID_COLUMNS: tuple[str, ...] = (
    "Flow ID",
    "Source IP",
    "Source Port",
    "Destination IP",
    "Timestamp",
)
#: Step 2: the duplicated `Fwd Header Length` column as pandas names its second copy.
CICIDS2017_DUPLICATE = "Fwd Header Length.1"
#: How many known feature names a table must have to be detected as CICIDS2017.
DETECT_MIN_NAMES = 20


@dataclass(frozen=True)
class Preset:
    """What a preset does besides the shared steps (missing values, label rules, split, scale)."""

    name: str
    drop_columns: tuple[str, ...] = ()
    allowed_duplicates: tuple[str, ...] = ()  # names that may occur twice in a header
    merges: tuple[str, ...] = ()  # default `--merge` rules
    drop_classes: tuple[str, ...] = ()  # default `--drop-classes`
    drop_constant: bool = False  # drop features constant on the training split (step 5)
    timestamp_column: str | None = None  # what `--split-by time` orders by (issue 33)
    clock12: bool = False  # timestamps on a 12-hour clock without AM/PM (CICIDS2017)


CICIDS2017 = Preset(
    name="cicids2017",
    drop_columns=(*CICIDS2017_ID_COLUMNS, CICIDS2017_DUPLICATE),
    allowed_duplicates=("Fwd Header Length",),
    merges=("Web Attack=Web Attack*",),
    drop_classes=("Heartbleed", "Infiltration"),
    drop_constant=True,
    timestamp_column="Timestamp",
    clock12=True,
)
GENERIC = Preset(name="none")
PRESETS: dict[str, Preset] = {"cicids2017": CICIDS2017, "none": GENERIC}


def detect_preset(columns: Iterable[str]) -> str:
    """'cicids2017' when the columns include enough CICIDS2017 feature names, else 'none'."""
    known = set(CICIDS2017_FEATURES)
    hits = sum(1 for c in columns if c in known)
    return "cicids2017" if hits >= DETECT_MIN_NAMES else "none"


def resolve_preset(preset: str, columns: Iterable[str]) -> Preset:
    """The preset for `--preset cicids2017|none|auto` (auto: detect by column names)."""
    if preset == "auto":
        preset = detect_preset(columns)
    if preset not in PRESETS:
        raise InputError(f"--preset {preset!r}: expected cicids2017, none or auto")
    return PRESETS[preset]


def parse_merge(rule: str) -> tuple[str, list[str]]:
    """`'Web Attack=Web Attack*'` -> ('Web Attack', ['Web Attack*']); patterns split on '|'."""
    target, sep, patterns = rule.partition("=")
    target = target.strip()
    pats = [p.strip() for p in patterns.split("|") if p.strip()]
    if not sep or not target or not pats:
        raise InputError(
            f"--merge {rule!r}: expected NEW=PATTERN, e.g. --merge 'Web Attack=Web Attack*'"
        )
    return target, pats


def label_mapping(
    names: Sequence[str], merges: Sequence[str], drops: Sequence[str]
) -> tuple[list[str | None], dict[str, list[str]], list[str]]:
    """Apply merge rules, then drop rules, to class names (step 4).

    Patterns are shell-style (`*`, `?`), case-sensitive, matched against normalised labels.

    Returns:
        For each input name its new name (None when dropped); the merges done
        (new name -> the names merged into it); the drop patterns that matched nothing.
    """
    rules = [parse_merge(r) for r in merges]
    out: list[str | None] = []
    merged: dict[str, list[str]] = {}
    for name in names:
        new = name
        for target, pats in rules:
            if any(fnmatch.fnmatchcase(name, p) for p in pats):
                new = target
                if name != target:
                    merged.setdefault(target, []).append(name)
                break
        out.append(new)
    unused = []
    for pat in drops:
        hit = False
        for i, new in enumerate(out):
            if new is not None and (new == pat or fnmatch.fnmatchcase(new, pat)):
                out[i] = None
                hit = True
        if not hit:
            unused.append(pat)
    return out, merged, unused
