"""The `lbc` command: strict arguments (exit 2) and failures in one or two lines."""


import pytest

from lbc_pipeline import cli
from lbc_pipeline_tests.rows import DISTRIBUTION, varied_rows, write_wave


@pytest.mark.parametrize("argv", [
    ["run", "--wavee", "1999"],          # a misspelt flag used to run every wave and exit 0
    ["flow", "--wave", "2019", "--x"],
    ["replication", "--bogus"],
    ["calibration", "--wave", "2019"],
    ["run", "--log-level", "LOUD"],
    ["nope"],
])
def test_unknown_flags_are_usage_errors(data_env, argv, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert "usage: lbc" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", "--wave", "nope"], ["flow", "--wave", "nope"], ["replication", "--wave", "nope"]])
def test_unknown_waves_are_usage_errors(data_env, argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    # run and flow name the unknown wave; replication without a warehouse says to run first
    assert "'nope'" in err if argv[0] in ("run", "flow") else "run `lbc run` first" in err


def test_a_refused_delivery_is_one_line_without_trace(data_env, capsys):
    schools = [dict(s, distributed="100") for s in DISTRIBUTION]
    schools[1]["distributed"] = "-5"
    write_wave(data_env / "raw" / "2031", varied_rows(40, seed=2), wave="2031", distribution=schools)
    bad = data_env / "raw" / "broken"
    bad.mkdir()
    (bad / "questionnaires.csv").write_text("qid\n1\n")
    (bad / "wave.yaml").write_text("- a list\n")
    summary = cli.run_waves(["2031"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert summary.code == 1
    assert "skipped a wave folder: " in out.err and "expected a mapping" in out.err  # the bad folder, one line
    assert ("step load_raw_wave FAILED: distribution.csv, row 2, column 'distributed': '-5' is not a valid "
            "distributed") in text
    assert "Traceback" not in text and 'File "' not in text
    assert "materialised staging" not in text
