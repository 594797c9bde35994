"""Validate, then commit: every rule that can reject a delivery, run before anything is written.

`validate_delivery` reads a wave folder completely (manifest, both files, shape, encoding),
types and checks every value of the distribution and questionnaires as staging will, and
builds the analysis sample as the analysis stage will (with a throwaway key: nothing of it
is kept), so that a delivery the job would reject later is rejected here, by the sensor and
by the raw step alike, while the warehouse still holds the previous complete version.
Refusals are `RawFileError`s naming file, row and column.

Rules beyond reading (each a `RawFileError`):
- the wave id is claimed by another folder under data/raw or data/incoming;
- the distribution: a count that is not a whole number in 0-100000, a school listed twice
  or without id (staging's rules, `clean_distribution`);
- the questionnaires: a row without qid (`clean_questionnaires`); no valid questionnaire; no
  child with every model variable; head-teacher items that cannot carry a factor score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lbc_pipeline.config import incoming_dir, raw_dir, scan_waves
from lbc_pipeline.lib.raw.loading import WaveFiles, load_folder
from lbc_pipeline.lib.raw.reading import RawFileError

# Child keys computed during validation are thrown away; any key gives the same verdict.
_THROWAWAY_KEY = bytes(32)


@dataclass(frozen=True)
class ValidatedDelivery:
    """A delivery that passed every rule: its files, and the counts validation saw."""

    files: WaveFiles
    returned: int
    valid: int
    analysed: int


def claimed_elsewhere(folder: Path, wave: str) -> list[Path]:
    """Other folders under data/raw and data/incoming whose manifest names the same wave."""
    here = folder.resolve()
    return [m.folder for root in (raw_dir(), incoming_dir()) for m in scan_waves(root).manifests
            if m.wave == wave and m.folder.resolve() != here]


def validate_delivery(folder: Path, wave: str | None = None) -> ValidatedDelivery:
    """Read and check a wave folder completely; raise `RawFileError` at the first refusal."""
    from lbc_pipeline.lib.analysis.derive import FactorError
    from lbc_pipeline.lib.analysis.derive import derive_measures
    from lbc_pipeline.lib.analysis.sample import build_sample, count_blank_items, invalid_flags
    from lbc_pipeline.lib.staging.clean import clean_distribution, clean_questionnaires

    files = load_folder(folder, wave)
    manifest = files.manifest
    others = claimed_elsewhere(folder, manifest.wave)
    if others:
        raise RawFileError(folder / "wave.yaml" if manifest.has_manifest else folder,
                           f"wave id {manifest.wave!r} is already delivered in {others[0]}; give this "
                           "delivery its own wave id, or replace the files of that folder")
    q_name, d_name = files.questionnaires.path.name, files.distribution.path.name
    cleaned = clean_questionnaires(files.questionnaires.frame, manifest.wave, q_name)
    distribution = clean_distribution(files.distribution.frame, manifest.wave, d_name)
    measures = invalid_flags(derive_measures(cleaned.questionnaires), count_blank_items(cleaned.missing_values),
                             distribution["school_id"].to_list(), manifest)
    if (measures["invalid_reasons"].list.len() == 0).sum() == 0:
        raise RawFileError(files.questionnaires.path, f"none of the {cleaned.questionnaires.height} "
                           "questionnaires is valid (see the invalidity rules); check the delivery")
    try:
        sample = build_sample(cleaned.questionnaires, cleaned.missing_values, distribution, manifest,
                              manifest.wave, _THROWAWAY_KEY)
    except FactorError as exc:
        raise RawFileError(files.questionnaires.path, f"the head-teacher items of the valid questionnaires "
                           f"cannot carry the teacher's-attitude score: {exc}",
                           column="ht_ask_life") from None
    flow = dict(sample.flow.select("step", "n_after").iter_rows())
    if flow.get("analysed", 0) == 0:
        raise RawFileError(files.questionnaires.path, "no valid questionnaire has every model variable; "
                           "check the delivery")
    return ValidatedDelivery(files=files, returned=cleaned.questionnaires.height,
                             valid=int(flow["valid"]), analysed=int(flow["analysed"]))
