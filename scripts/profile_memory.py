"""Where a `lossbench` command's memory goes: VmRSS sampled every 20 ms on a side thread, with
the innermost lossbench frames of the main thread at that moment (issue 35).

usage: .venv/bin/python scripts/profile_memory.py LOG [--steps N] -- run --loss ce --epochs 1 ...

LOG gets a line each time VmRSS moves by more than 100 MB, then the highest VmRSS seen at each
place (over 900 MB) and VmHWM. `--steps N` cuts each epoch to its first N steps (reading the
whole training split first, as a full epoch would), to profile a 2.8-million-row run in minutes.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import traceback


def _rss_mb(key: str = "VmRSS") -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024
    return 0


def _where(frame) -> str:
    stack = traceback.extract_stack(frame) if frame else []
    own = [s for s in stack if "/lossbench/" in s.filename][-3:] or stack[-2:]
    return " < ".join(f"{s.name}@{os.path.basename(s.filename)}:{s.lineno}" for s in reversed(own))


def main() -> None:
    log_path, rest = sys.argv[1], sys.argv[2:]
    steps = None
    if rest[:1] == ["--steps"]:
        steps, rest = int(rest[1]), rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    log = open(log_path, "w")
    main_id = threading.get_ident()
    best: dict[str, tuple[int, float]] = {}

    def sample() -> None:
        t0, last = time.time(), 0
        while True:
            rss, where = _rss_mb(), _where(sys._current_frames().get(main_id))
            if rss > best.get(where, (-1, 0.0))[0]:
                best[where] = (rss, time.time() - t0)
            if abs(rss - last) > 100:
                print(f"{time.time() - t0:7.1f} {rss:6d} {where}", file=log, flush=True)
                last = rss
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    if steps is not None:
        import lossbench.runner as runner

        fit = runner._fit

        def short_fit(*args, **kwargs):
            from lossbench.training.trainer import Trainer  # TensorFlow: as late as the run

            if not getattr(Trainer, "_short", False):
                batches = Trainer.epoch_batches

                def first_steps(self, epoch):
                    float(self._X_tr_np.sum(dtype="float64"))  # read in, as a whole epoch does
                    return itertools.islice(batches(self, epoch), steps)

                Trainer.epoch_batches, Trainer._short = first_steps, True
            return fit(*args, **kwargs)

        runner._fit = short_fit
    from lossbench.cli import main as cli_main

    try:
        code = cli_main(rest)
    finally:
        print("=== highest VmRSS at each place (MB, seconds)", file=log)
        for where, (rss, t) in sorted(best.items(), key=lambda kv: kv[1][1]):
            if rss > 900:
                print(f"{t:7.1f} {rss:6d} {where}", file=log)
        print(f"VmHWM {_rss_mb('VmHWM')} MB", file=log, flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
