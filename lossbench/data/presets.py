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
#: CSE-CIC-IDS2018's CICFlowMeter-V3 column names that differ from CICIDS2017's, mapped to
#: CICIDS2017's (the 20-02-2018 file adds Flow ID, Src IP, Src Port, Dst IP), so that the two can
#: be crossed (`--test-data`).
CICIDS2018_RENAME: dict[str, str] = {
    "Src IP": "Source IP", "Src Port": "Source Port", "Dst IP": "Destination IP",
    "Dst Port": "Destination Port", "Tot Fwd Pkts": "Total Fwd Packets",
    "Tot Bwd Pkts": "Total Backward Packets", "TotLen Fwd Pkts": "Total Length of Fwd Packets",
    "TotLen Bwd Pkts": "Total Length of Bwd Packets",
    "Fwd Pkt Len Max": "Fwd Packet Length Max", "Fwd Pkt Len Min": "Fwd Packet Length Min",
    "Fwd Pkt Len Mean": "Fwd Packet Length Mean", "Fwd Pkt Len Std": "Fwd Packet Length Std",
    "Bwd Pkt Len Max": "Bwd Packet Length Max", "Bwd Pkt Len Min": "Bwd Packet Length Min",
    "Bwd Pkt Len Mean": "Bwd Packet Length Mean", "Bwd Pkt Len Std": "Bwd Packet Length Std",
    "Flow Byts/s": "Flow Bytes/s", "Flow Pkts/s": "Flow Packets/s",
    "Fwd IAT Tot": "Fwd IAT Total", "Bwd IAT Tot": "Bwd IAT Total",
    "Fwd Header Len": "Fwd Header Length", "Bwd Header Len": "Bwd Header Length",
    "Fwd Pkts/s": "Fwd Packets/s", "Bwd Pkts/s": "Bwd Packets/s",
    "Pkt Len Min": "Min Packet Length", "Pkt Len Max": "Max Packet Length",
    "Pkt Len Mean": "Packet Length Mean", "Pkt Len Std": "Packet Length Std",
    "Pkt Len Var": "Packet Length Variance", "FIN Flag Cnt": "FIN Flag Count",
    "SYN Flag Cnt": "SYN Flag Count", "RST Flag Cnt": "RST Flag Count",
    "PSH Flag Cnt": "PSH Flag Count", "ACK Flag Cnt": "ACK Flag Count",
    "URG Flag Cnt": "URG Flag Count", "ECE Flag Cnt": "ECE Flag Count",
    "Pkt Size Avg": "Average Packet Size", "Fwd Seg Size Avg": "Avg Fwd Segment Size",
    "Bwd Seg Size Avg": "Avg Bwd Segment Size", "Fwd Byts/b Avg": "Fwd Avg Bytes/Bulk",
    "Fwd Pkts/b Avg": "Fwd Avg Packets/Bulk", "Fwd Blk Rate Avg": "Fwd Avg Bulk Rate",
    "Bwd Byts/b Avg": "Bwd Avg Bytes/Bulk", "Bwd Pkts/b Avg": "Bwd Avg Packets/Bulk",
    "Bwd Blk Rate Avg": "Bwd Avg Bulk Rate", "Subflow Fwd Pkts": "Subflow Fwd Packets",
    "Subflow Fwd Byts": "Subflow Fwd Bytes", "Subflow Bwd Pkts": "Subflow Bwd Packets",
    "Subflow Bwd Byts": "Subflow Bwd Bytes", "Init Fwd Win Byts": "Init_Win_bytes_forward",
    "Init Bwd Win Byts": "Init_Win_bytes_backward", "Fwd Act Data Pkts": "act_data_pkt_fwd",
    "Fwd Seg Size Min": "min_seg_size_forward",
}  # fmt: skip
#: CSE-CIC-IDS2018's labels merged into the seven classes of the CICIDS2017 sample (2018 has no
#: PortScan): NEW=PATTERN|PATTERN rules, as `--merge` takes them.
CICIDS2018_MERGES: tuple[str, ...] = (
    "BENIGN=Benign",
    "DoS=DoS attacks-*|DDOS attack-*|DDoS attacks-*",
    "BruteForce=FTP-BruteForce|SSH-Bruteforce",
    "WebAttack=Brute Force -Web|Brute Force -XSS|SQL Injection",
    "Infiltration=Infilteration",
)
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
    rename: tuple[tuple[str, str], ...] = ()  # column renames applied first (CSE-CIC-IDS2018)
    repeated_headers: bool = False  # header rows repeated inside a file are dropped


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
CICIDS2018 = Preset(
    name="cicids2018",
    drop_columns=CICIDS2017_ID_COLUMNS,  # after the renames: Src IP is Source IP, ...
    merges=CICIDS2018_MERGES,
    drop_constant=True,
    timestamp_column="Timestamp",  # dd/mm/yyyy hh:mm:ss on a 24-hour clock
    rename=tuple(CICIDS2018_RENAME.items()),
    repeated_headers=True,
)
GENERIC = Preset(name="none")
PRESETS: dict[str, Preset] = {"cicids2017": CICIDS2017, "cicids2018": CICIDS2018, "none": GENERIC}


def detect_preset(columns: Iterable[str]) -> str:
    """'cicids2018' when the columns include enough of CSE-CIC-IDS2018's own names (checked
    first: the two releases share about 30 names), 'cicids2017' when they include enough
    CICIDS2017 feature names, else 'none'."""
    columns = list(columns)
    if sum(1 for c in columns if c in CICIDS2018_RENAME) >= DETECT_MIN_NAMES:
        return "cicids2018"
    known = set(CICIDS2017_FEATURES)
    hits = sum(1 for c in columns if c in known)
    return "cicids2017" if hits >= DETECT_MIN_NAMES else "none"


def resolve_preset(preset: str, columns: Iterable[str]) -> Preset:
    """The preset for `--preset cicids2017|none|auto` (auto: detect by column names)."""
    if preset == "auto":
        preset = detect_preset(columns)
    if preset not in PRESETS:
        raise InputError(f"preset {preset!r}: expected cicids2017, cicids2018, none or auto")
    return PRESETS[preset]


def parse_merge(rule: str) -> tuple[str, list[str]]:
    """`'Web Attack=Web Attack*'` -> ('Web Attack', ['Web Attack*']); patterns split on '|'."""
    target, sep, patterns = rule.partition("=")
    target = target.strip()
    pats = [p.strip() for p in patterns.split("|") if p.strip()]
    if not sep or not target or not pats:
        raise InputError(
            f"merge {rule!r}: expected NEW=PATTERN, e.g. merge 'Web Attack=Web Attack*'"
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
