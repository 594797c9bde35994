"""`lbc generate`: write the synthetic reference wave, or a scaled wave, to a folder.

    lbc generate                                   # reference wave 2019 -> data/raw/2019, csv
    lbc generate --format sav --out /tmp/w2019     # the same wave as SPSS files
    lbc generate --n 1000000 --format parquet --out /tmp/scale1m   # a scaled wave

Also `python -m lbc_pipeline.lib.synthetic.cli ...`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lbc_pipeline.config import incoming_dir, raw_dir
from lbc_pipeline.lib.synthetic.formats import FORMATS
from lbc_pipeline.lib.synthetic.generate import (
    REFERENCE_WAVE,
    STATE_DIR,
    generate_reference_wave,
    generate_scaled_wave,
    write_wave,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbc generate",
        description="Write a SYNTHETIC survey wave: the reference wave 2019, calibrated to the "
        "published tables of Wang (2023), or with --n a scaled wave of N questionnaires.",
    )
    parser.add_argument("--format", choices=list(FORMATS), default="csv",
                        help="file format of questionnaires and distribution (default csv, UTF-8)")
    parser.add_argument("--seed", type=int, default=2019, help="random seed (default 2019)")
    parser.add_argument("--n", type=int, default=None,
                        help="scale mode: number of returned questionnaires (not calibrated)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default data/raw/<wave>; scale mode data/incoming/<wave>)")
    parser.add_argument("--wave", default=None,
                        help=f"wave id written to wave.yaml (reference mode: {REFERENCE_WAVE} only; "
                        "scale mode default: scaled-<n>)")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR,
                        help="folder of the calibrated state (default: the packaged state)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Generate and write one wave; print what was written."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.n is None:
        if args.wave not in (None, REFERENCE_WAVE):
            print(f"the reference wave is {REFERENCE_WAVE}; use --n for another wave", file=sys.stderr)
            return 2
        wave = generate_reference_wave(seed=args.seed, state_dir=args.state_dir)
        out = args.out or raw_dir() / REFERENCE_WAVE
    else:
        if args.n < 1:
            print("--n must be at least 1", file=sys.stderr)
            return 2
        wave_id = args.wave or f"scaled-{args.n}"
        wave = generate_scaled_wave(args.n, args.seed, wave=wave_id, state_dir=args.state_dir)
        out = args.out or incoming_dir() / wave_id
    paths = write_wave(wave, out, args.format)
    expected = wave.manifest["expected"]
    print(
        f"wave {wave.manifest['wave']} (SYNTHETIC): {wave.questionnaires.height} keyed rows; expected "
        + ", ".join(f"{k} {v}" for k, v in expected.items())
        + f"; {time.perf_counter() - started:.1f} s"
    )
    for path in paths:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
