"""Generated intrusion-detection files in the formats of the public releases (issue 33).

- `write_glf_folder`: day files of CICIDS2017's GeneratedLabelledFlows release (Flow ID, Source
  IP, Source Port, Destination IP, Destination Port, Protocol, a Timestamp on the 12-hour clock
  without AM/PM, 25 of the release's feature names, Label), named as the release names them.
- `write_ids2018_file`: a CSE-CIC-IDS2018 CSV (CICFlowMeter-V3 names, dd/mm/yyyy hh:mm:ss on a
  24-hour clock, a header row repeated inside the file, `Infinity` and `NaN` cells; optionally the
  20-02-2018 file's extra identifier columns).

The tests use them (tests/test_ids_eval.py), and the README's worked example:

    python scripts/ids_example_data.py OUT_DIR [--rows N]

writes OUT_DIR/glf/ (four day files) and OUT_DIR/Wednesday-21-02-2018_TrafficForML_CICFlowMeter.csv.
The data is random with a class signal in the features; its only purpose is the file formats.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

# 25 of the release's feature names: enough for the preset's detection (20)
GLF_FEATURES = [
    " Flow Duration", " Total Fwd Packets", " Total Backward Packets",
    "Total Length of Fwd Packets", " Total Length of Bwd Packets", " Fwd Packet Length Max",
    " Fwd Packet Length Min", " Fwd Packet Length Mean", " Fwd Packet Length Std",
    "Bwd Packet Length Max", " Bwd Packet Length Min", " Bwd Packet Length Mean",
    " Bwd Packet Length Std", "Flow Bytes/s", " Flow Packets/s", " Flow IAT Mean",
    " Flow IAT Std", " Flow IAT Max", " Flow IAT Min", "Fwd IAT Total", " Fwd IAT Mean",
    " Fwd IAT Std", " Fwd IAT Max", " Fwd IAT Min", "Bwd IAT Total",
]  # fmt: skip
GLF_CLASSES = ("BENIGN", "DoS Hulk", "PortScan")
# file name, day, first and last minute of the day (24-hour), seconds in the timestamps
GLF_DAYS = [
    ("Monday-WorkingHours.pcap_ISCX.csv", dt.date(2017, 7, 3), 9 * 60, 17 * 60, False),
    ("Tuesday-WorkingHours.pcap_ISCX.csv", dt.date(2017, 7, 4), 9 * 60, 17 * 60, True),
    ("Friday-WorkingHours-Morning.pcap_ISCX.csv", dt.date(2017, 7, 7), 9 * 60, 12 * 60, False),
    ("Friday-WorkingHours-Afternoon-DDos.pcap_ISCX.csv", dt.date(2017, 7, 7), 13 * 60, 17 * 60,
     False),
]  # fmt: skip


def _clock12(t: dt.datetime, seconds: bool) -> str:
    """CICIDS2017's text: day-first, 12-hour clock without AM/PM."""
    hour = t.hour % 12 or 12
    if seconds:
        return f"{t.day:02d}/{t.month:02d}/{t.year} {hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{t.day}/{t.month}/{t.year} {hour}:{t.minute:02d}"


def write_glf_folder(folder: Path, rows: int = 100, seed: int = 0) -> dict[str, dict]:
    """Day files of the GeneratedLabelledFlows release: identifier columns, a Timestamp on the
    12-hour clock, features with some class signal, Label. Returns per file the true (24-hour)
    time and the source IP of each row, in file order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for name, day, first, last, seconds in GLF_DAYS:
        minutes = np.sort(rng.integers(first, last, rows))
        secs = rng.integers(0, 60, rows) if seconds else np.zeros(rows, dtype=int)
        times = [
            dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=int(m), seconds=int(s))
            for m, s in zip(minutes, secs, strict=True)
        ]
        y = rng.choice(len(GLF_CLASSES), size=rows, p=[0.6, 0.25, 0.15])
        src = [f"192.168.10.{i}" for i in rng.integers(1, 41, rows)]
        sport = rng.integers(1024, 65535, rows)
        frame = pd.DataFrame(
            {
                "Flow ID": [f"{s}-192.168.10.50-{p}-80-6" for s, p in zip(src, sport, strict=True)],
                " Source IP": src,
                " Source Port": sport,
                " Destination IP": "192.168.10.50",
                " Destination Port": 80,
                " Protocol": 6,
                " Timestamp": [_clock12(t, seconds) for t in times],
            }
        )
        X = rng.normal(size=(rows, len(GLF_FEATURES))) + y[:, None] * 1.5
        for j, col in enumerate(GLF_FEATURES):
            frame[col] = X[:, j]
        frame[" Label"] = np.array(GLF_CLASSES)[y]
        frame.to_csv(folder / name, index=False)
        truth[name] = {"time": times, "ip": src}
    return truth


IDS2018_FEATURES = [
    "Flow Duration", "Tot Fwd Pkts", "Tot Bwd Pkts", "TotLen Fwd Pkts", "TotLen Bwd Pkts",
    "Fwd Pkt Len Max", "Fwd Pkt Len Min", "Fwd Pkt Len Mean", "Fwd Pkt Len Std",
    "Bwd Pkt Len Max", "Bwd Pkt Len Min", "Bwd Pkt Len Mean", "Bwd Pkt Len Std", "Flow Byts/s",
    "Flow Pkts/s", "Flow IAT Mean", "Flow IAT Std", "Flow IAT Max", "Flow IAT Min",
    "Fwd IAT Tot", "Fwd IAT Mean", "Fwd IAT Std", "Fwd IAT Max", "Fwd IAT Min", "Bwd IAT Tot",
    "Bwd IAT Mean", "Bwd IAT Std", "Bwd IAT Max", "Bwd IAT Min", "Fwd PSH Flags",
    "Bwd PSH Flags", "Fwd URG Flags", "Bwd URG Flags", "Fwd Header Len", "Bwd Header Len",
    "Fwd Pkts/s", "Bwd Pkts/s", "Pkt Len Min", "Pkt Len Max", "Pkt Len Mean", "Pkt Len Std",
    "Pkt Len Var", "FIN Flag Cnt", "SYN Flag Cnt", "RST Flag Cnt", "PSH Flag Cnt",
    "ACK Flag Cnt", "URG Flag Cnt", "CWE Flag Count", "ECE Flag Cnt", "Down/Up Ratio",
    "Pkt Size Avg", "Fwd Seg Size Avg", "Bwd Seg Size Avg", "Fwd Byts/b Avg", "Fwd Pkts/b Avg",
    "Fwd Blk Rate Avg", "Bwd Byts/b Avg", "Bwd Pkts/b Avg", "Bwd Blk Rate Avg",
    "Subflow Fwd Pkts", "Subflow Fwd Byts", "Subflow Bwd Pkts", "Subflow Bwd Byts",
    "Init Fwd Win Byts", "Init Bwd Win Byts", "Fwd Act Data Pkts", "Fwd Seg Size Min",
    "Active Mean", "Active Std", "Active Max", "Active Min", "Idle Mean", "Idle Std", "Idle Max",
    "Idle Min",
]  # fmt: skip
# the 2018 names of GLF_FEATURES (the generator's 2017 feature columns), in the same order
IDS2018_OF_GLF = IDS2018_FEATURES[:25]
IDS2018_LABELS = ("Benign", "DoS attacks-Hulk", "Bot")  # signal 0, 1, 3 as in the GLF files


def write_ids2018_file(path: Path, rows: int = 150, seed: int = 1, ids: bool = False) -> Path:
    """A CSE-CIC-IDS2018 CSV as distributed: Dst Port, Protocol, Timestamp (dd/mm/yyyy
    hh:mm:ss, 24-hour), the CICFlowMeter-V3 features, Label; a header row repeated inside the
    file, `Infinity` and `NaN` cells; with `ids`, the 20-02-2018 file's extra Flow ID, Src IP,
    Src Port, Dst IP first."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=rows, p=[0.6, 0.25, 0.15])
    signal = np.array([0.0, 1.5, 4.5])[y]
    frame = pd.DataFrame(
        {
            "Dst Port": 80,
            "Protocol": 6,
            "Timestamp": [
                (dt.datetime(2018, 2, 21, 10) + dt.timedelta(seconds=17 * i)).strftime(
                    "%d/%m/%Y %H:%M:%S"
                )
                for i in range(rows)
            ],
        }
    )
    X = rng.normal(size=(rows, len(IDS2018_FEATURES)))
    X[:, : len(IDS2018_OF_GLF)] += signal[:, None]
    for j, col in enumerate(IDS2018_FEATURES):
        frame[col] = X[:, j]
    frame["Label"] = np.array(IDS2018_LABELS)[y]
    if ids:
        src = [f"172.31.69.{i}" for i in rng.integers(1, 30, rows)]
        frame.insert(0, "Dst IP", "18.219.193.20")
        frame.insert(0, "Src Port", rng.integers(1024, 65535, rows))
        frame.insert(0, "Src IP", src)
        frame.insert(0, "Flow ID", [f"{s}-18.219.193.20-80-6" for s in src])
    text = frame.astype(object)
    text.loc[5, "Flow Byts/s"] = "Infinity"
    text.loc[7, "Flow Pkts/s"] = "NaN"
    header = pd.DataFrame([list(frame.columns)], columns=frame.columns)
    text = pd.concat([text.iloc[:60], header, text.iloc[60:]], ignore_index=True)
    text.to_csv(path, index=False)
    return path


def main() -> None:
    """Write the example folder and 2018 file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=1000, help="rows per day file")
    args = parser.parse_args()
    write_glf_folder(args.out / "glf", rows=args.rows)
    path = args.out / "Wednesday-21-02-2018_TrafficForML_CICFlowMeter.csv"
    write_ids2018_file(path, rows=args.rows)
    print(f"wrote {args.out / 'glf'} and {path}")


if __name__ == "__main__":
    main()
