"""One imputation chain of a large wave, timed (measured, not asserted).

Builds the multiple-imputation input of a wave made by `lbc generate --n N --seed 11` with the
library calls the Dagster assets make (load, clean, sample, `sensitivity_frame`; no Dagster),
then runs one chain at scale (`SchoolEffectsChain(...).run(N_ITERATIONS)`, the first chain's
seed) in this process with one BLAS thread, and prints its wall time, CPU time, the peak
resident memory it added and a digest of the imputed values. `--at COMMIT` times the
`missing_data.py` of another commit instead (read with `git show`), so that two versions can
be compared alternately on the same input; equal digests mean equal imputations.

    .venv/bin/python scripts/bench_mi_chain.py --n 1000000 --data /tmp/lbc-mi
    .venv/bin/python scripts/bench_mi_chain.py --n 1000000 --data /tmp/lbc-mi --at e0a0fd6
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_frame(n: int, data: Path) -> Path:
    """The sensitivity frame of the scaled wave of `n` questionnaires (built once, cached)."""
    frame_path = data / f"frame_{n}.parquet"
    if frame_path.exists():
        return frame_path
    os.environ["LBC_DATA_DIR"] = str(data)
    key = data / "pseudonym.key"
    if not key.exists():
        key.write_text("ef" * 32)
    os.environ["LBC_PSEUDONYM_KEY_FILE"] = str(key)
    from lbc_pipeline.config import read_manifest, wave_folder
    from lbc_pipeline.lib.analysis.sample import build_sample, pseudonym_key
    from lbc_pipeline.lib.marts.sensitivity_frame import sensitivity_frame
    from lbc_pipeline.lib.raw.loading import load_wave_files
    from lbc_pipeline.lib.raw.reading import ROW_COLUMN
    from lbc_pipeline.lib.staging.clean import clean_distribution, clean_questionnaires
    from lbc_pipeline.synthetic.generate import generate_scaled_wave, write_wave

    wave = f"scaled-{n}"
    folder = data / "raw" / wave
    if not folder.exists():
        write_wave(generate_scaled_wave(n, 11, wave), folder, "parquet")
    tables = load_wave_files(wave).raw_tables(dt.datetime(2024, 1, 1))

    def as_loaded(raw):
        raw = raw.drop("wave") if "wave" in raw.columns else raw
        return raw.rename({"source_row": ROW_COLUMN}) if "source_row" in raw.columns else raw

    cleaned = clean_questionnaires(as_loaded(tables["raw.questionnaires"]), wave, "questionnaires")
    distribution = clean_distribution(as_loaded(tables["raw.distribution"]), wave, "distribution")
    result = build_sample(cleaned.questionnaires, cleaned.missing_values, distribution,
                          read_manifest(wave_folder(wave)), wave, pseudonym_key())
    sensitivity_frame(result.measures, cleaned.questionnaires, wave).write_parquet(frame_path)
    return frame_path


def missing_data_module(at: str | None):
    """This tree's `lib/marts/missing_data.py`, or that of commit `at`."""
    if at is None:
        from lbc_pipeline.lib.marts import missing_data

        return missing_data
    source = subprocess.run(["git", "show", f"{at}:lbc_pipeline/lib/marts/missing_data.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"missing_data_{at}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"missing_data_{at}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="questionnaires of the generated wave")
    parser.add_argument("--data", type=Path, required=True, help="folder for the generated wave and the frame")
    parser.add_argument("--at", help="time this commit's missing_data.py instead of this tree's")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    if args.build_only:
        build_frame(args.n, args.data)
        return
    frame_path = args.data / f"frame_{args.n}.parquet"
    if not frame_path.exists():  # built by another process: this one's peak memory is the chain's
        subprocess.run([sys.executable, __file__, "--n", str(args.n), "--data", str(args.data), "--build-only"],
                       check=True)
    import numpy as np
    import polars as pl
    from threadpoolctl import threadpool_limits

    frame = pl.read_parquet(frame_path)
    md = missing_data_module(args.at)
    data = md.imputation_input(frame)
    if len(data.values) <= md.MI_DIRECT_MAX_ROWS:
        parser.error(f"{len(data.values)} rows: at most MI_DIRECT_MAX_ROWS, the chain at scale is not used")
    seed = np.random.SeedSequence(md.MI_SEED).spawn(1)[0]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with threadpool_limits(1, "blas"):
        load = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        values, group = md.SchoolEffectsChain(data, np.random.default_rng(seed)).run(md.N_ITERATIONS)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    digest = hashlib.sha256(values.tobytes() + group.tobytes()).hexdigest()[:16]
    print(f"{args.at or 'this tree'}: rows {len(values)}, wall {wall:.2f} s, CPU {cpu:.2f} s, "
          f"peak RSS added {added:.0f} MB, load {load:.2f}, imputations sha256 {digest}")


if __name__ == "__main__":
    main()
