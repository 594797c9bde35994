"""Wave manifests: safe wave ids, one-line messages naming wave.yaml and the key, one bad
folder never hiding the others, and wave order from the fieldwork start."""

import datetime as dt

import pytest

from lbc_pipeline.config import ManifestError, WaveManifest, read_manifest, scan_waves, wave_order


def _folder(tmp_path, text, name="w"):
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "questionnaires.csv").write_text("qid\n1\n")
    if text is not None:
        (folder / "wave.yaml").write_text(text)
    return folder


@pytest.mark.parametrize("wave", ["2019", "2021-follow_up.b", "A", "_x", "-x", "9" * 64])
def test_safe_wave_ids_are_accepted(tmp_path, wave):
    assert read_manifest(_folder(tmp_path, f"wave: '{wave}'\n")).wave == wave


def test_an_integer_wave_id_is_read_as_text(tmp_path):
    assert read_manifest(_folder(tmp_path, "wave: 2021\n")).wave == "2021"


@pytest.mark.parametrize("text, message", [
    ("wave: '../../x'\n", "key wave: wave id '../../x' may hold only"),       # path traversal
    ("wave: /etc/passwd\n", "key wave: wave id '/etc/passwd' may hold only"),  # absolute path
    ("wave: '.hidden'\n", "may not start with a dot"),                         # leading dot
    ("wave: ''\n", "key wave: the wave id is empty"),                          # empty id
    ("wave: 'a b'\n", "may hold only"),                                        # space
    ("wave: 'é'\n", "may hold only"),                                          # non-ASCII letter
    (f"wave: '{'x' * 65}'\n", "65 characters long (at most 64)"),              # too long
    ("wave: [1, 2]\n", "key wave: the wave id must be text, got list"),        # list
    ("wave: true\n", "must be text, got bool"),                                # boolean
    ("- wave: '1'\n", "expected a mapping with at least the key wave, got a list"),  # list-shaped file
    ("wave: '1'\n  bad: [\n", "not valid YAML at line"),                       # invalid YAML
    ("wave: '1'\nexpected: {valid: 'many'}\n", "key expected.valid: 'many' is not a whole number"),
    ("wave: '1'\nexpected: {valid: 9.5}\n", "key expected.valid: 9.5 is not a whole number"),
    ("wave: '1'\nexpected: {valid: -3}\n", "key expected.valid: -3 is negative"),
    ("wave: '1'\nexpected: {kept: 3}\n", "key expected.kept: unknown count"),
    ("wave: '1'\nexpected: [1, 2]\n", "key expected: expected a mapping"),
    ("wave: '1'\nfieldwork: {start: 2020-06-30, end: 2019-11-01}\n",
     "key fieldwork.end: 2019-11-01 is before fieldwork.start 2020-06-30"),
    ("wave: '1'\nfieldwork: {start: 2020-06-30}\n", "key fieldwork: needs both start and end"),
    ("wave: '1'\nfieldwork: {start: 'soon', end: 2020-01-01}\n", "key fieldwork.start: 'soon' is not a date"),
    ("wave: '1'\nfieldwork: 2020\n", "key fieldwork: expected start: and end: dates"),
    ("wave: '1'\nsynthetic: 'yes please'\n", "key synthetic: 'yes please' is not true or false"),
])
def test_bad_manifests_get_one_line_naming_wave_yaml_and_the_key(tmp_path, text, message):
    with pytest.raises(ManifestError) as caught:
        read_manifest(_folder(tmp_path, text))
    assert message in str(caught.value)
    assert "wave.yaml" in str(caught.value) and "\n" not in str(caught.value)


def test_a_folder_name_that_is_not_a_safe_id_is_refused_without_a_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no wave.yaml: the folder name is the wave id"):
        read_manifest(_folder(tmp_path, None, name="bad name"))


def test_one_bad_manifest_does_not_hide_the_other_waves(tmp_path):
    _folder(tmp_path, "wave: '2019'\n", name="a")
    bad = _folder(tmp_path, "- not a mapping\n", name="b")
    _folder(tmp_path, "wave: '2021'\n", name="c")
    scan = scan_waves(tmp_path)
    assert [m.wave for m in scan.manifests] == ["2019", "2021"]
    assert list(scan.problems) == [bad] and "wave.yaml" in scan.problems[bad]


def _m(wave, start):
    return WaveManifest(wave, None, start, start)


@pytest.mark.parametrize("manifests, order", [
    # by fieldwork start, whatever the ids' text order
    ([_m("b", dt.date(2021, 1, 1)), _m("a", dt.date(2022, 1, 1))], ["b", "a"]),
    # "10" before "9" as text, but "9" was surveyed first
    ([_m("10", dt.date(2021, 1, 1)), _m("9", dt.date(2019, 1, 1))], ["9", "10"]),
    # same start: by id
    ([_m("y", dt.date(2020, 1, 1)), _m("x", dt.date(2020, 1, 1))], ["x", "y"]),
    # no fieldwork window: after the dated waves, by id
    ([_m("z", None), _m("a", None), _m("m", dt.date(2030, 1, 1))], ["m", "a", "z"]),
])
def test_wave_order(manifests, order):
    assert wave_order(manifests) == order
