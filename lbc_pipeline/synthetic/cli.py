"""`lbc generate`: write a synthetic wave to a folder: the reference wave 2019, its
synthetic follow-up 2021, or a scaled wave.

    lbc generate                                   # reference wave 2019 -> data/raw/2019, csv,
                                                   # with its interview demo set in interviews/
    lbc generate --format sav --out /tmp/w2019     # the same wave as SPSS files
    lbc generate --wave 2021 --seed 2021 --out data/demo/2021   # the follow-up (demo copy)
    lbc generate --n 1000000 --format parquet --out /tmp/scale1m   # a scaled wave

Also `python -m lbc_pipeline.synthetic.cli ...`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lbc_pipeline.config import incoming_dir, raw_dir
from lbc_pipeline.synthetic.formats import FORMATS
from lbc_pipeline.synthetic.generate import (
    FOLLOW_UP_SEED,
    FOLLOW_UP_WAVE,
    REFERENCE_WAVE,
    STATE_DIR,
    generate_follow_up_wave,
    generate_reference_wave,
    generate_scaled_wave,
    write_wave,
)

REFERENCE_SEED = 2019


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbc generate",
        description="Write a SYNTHETIC survey wave: the reference wave 2019, calibrated to the "
        f"published tables of Wang (2023); with --wave {FOLLOW_UP_WAVE} a synthetic follow-up of its "
        "four schools (not calibrated: the 2019 children resampled with documented shifts, "
        "see FollowUpShifts in lbc_pipeline/synthetic/generate.py); or with --n a scaled "
        "wave of N questionnaires. The reference wave (seed 2019) comes with its SYNTHETIC interview "
        "demo set in <out>/interviews (three CSVs and a REFI-QDA .qdpx; lbc_pipeline/synthetic/interviews.py).",
        epilog=f"The follow-up is not written into data/raw (the main job processes every wave "
        f"there): by default it goes to data/incoming/{FOLLOW_UP_WAVE}, where the sensor picks it "
        f"up; a copy is committed under data/demo/{FOLLOW_UP_WAVE}.",
    )
    parser.add_argument("--format", choices=list(FORMATS), default="csv",
                        help="file format of questionnaires and distribution (default csv, UTF-8)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"random seed (default {REFERENCE_SEED}; {FOLLOW_UP_SEED} for --wave {FOLLOW_UP_WAVE})")
    parser.add_argument("--n", type=int, default=None,
                        help="scale mode: number of returned questionnaires (not calibrated)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default data/raw/{REFERENCE_WAVE} for the reference wave; "
                        f"data/incoming/<wave> for the follow-up and in scale mode)")
    parser.add_argument("--wave", default=None,
                        help=f"wave id written to wave.yaml. Without --n: {REFERENCE_WAVE} (default, the "
                        f"reference wave) or {FOLLOW_UP_WAVE} (the synthetic follow-up); "
                        "with --n any id (default scaled-<n>)")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR,
                        help="folder of the calibrated state (default: the packaged state)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Generate and write one wave; print what was written."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.n is None and args.wave == FOLLOW_UP_WAVE:
        seed = FOLLOW_UP_SEED if args.seed is None else args.seed
        wave = generate_follow_up_wave(seed=seed, state_dir=args.state_dir)
        out = args.out or incoming_dir() / FOLLOW_UP_WAVE
    elif args.n is None:
        if args.wave not in (None, REFERENCE_WAVE):
            print(f"the reference wave is {REFERENCE_WAVE} and its synthetic follow-up "
                  f"{FOLLOW_UP_WAVE}; use --n for another wave", file=sys.stderr)
            return 2
        seed = REFERENCE_SEED if args.seed is None else args.seed
        wave = generate_reference_wave(seed=seed, state_dir=args.state_dir)
        out = args.out or raw_dir() / REFERENCE_WAVE
    else:
        if args.n < 1:
            print("--n must be at least 1", file=sys.stderr)
            return 2
        seed = REFERENCE_SEED if args.seed is None else args.seed
        wave_id = args.wave or f"scaled-{args.n}"
        wave = generate_scaled_wave(args.n, seed, wave=wave_id, state_dir=args.state_dir)
        out = args.out or incoming_dir() / wave_id
    paths = write_wave(wave, out, args.format)
    if args.n is None and wave.manifest["wave"] == REFERENCE_WAVE:
        # the reference wave's SYNTHETIC interview demo set (csv tables and a .qdpx export)
        from lbc_pipeline.synthetic import interviews

        demo = interviews.generate_demo_set(survey=wave) if seed == REFERENCE_SEED else None
        if demo is not None:
            paths += interviews.write_demo_set(demo, out / interviews.FOLDER)
    counts = {**wave.manifest["expected"], **wave.manifest.get("expected_groups", {})}
    print(
        f"wave {wave.manifest['wave']} (SYNTHETIC): {wave.questionnaires.height} keyed rows; expected "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; {time.perf_counter() - started:.1f} s"
    )
    for path in paths:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
