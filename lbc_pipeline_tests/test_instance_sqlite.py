"""SQLite instance pragmas (lbc_pipeline/instance_sqlite.py): NORMAL sync, no checkpoint per
closed connection, every event still there for the next process, FULL on request.

Each case runs in a fresh process: the listener is global to the process that installs it.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

WRITES = textwrap.dedent("""
    import json, os, sys
    import sqlalchemy as sa
    from lbc_pipeline import instance_sqlite

    path = sys.argv[1]
    instance_sqlite.install()
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text("PRAGMA journal_mode=WAL"))
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        conn.commit()
    for i in range(20):  # as Dagster stores events: a connection per write, closed after
        with engine.connect() as conn:
            sync = conn.execute(sa.text("PRAGMA synchronous")).scalar()
            conn.execute(sa.text("INSERT INTO t VALUES (:i)"), {"i": i})
            conn.commit()
        engine.dispose()
    wal_while_running = os.path.exists(path + "-wal")
    kept = instance_sqlite.kept()
    instance_sqlite.close_kept()
    print(json.dumps({"sync": sync, "wal_while_running": wal_while_running, "kept": kept,
                      "wal_after": os.path.exists(path + "-wal")}))
""")


def _run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def _count(path) -> int:
    import sqlite3

    with sqlite3.connect(path) as con:
        return con.execute("SELECT count(*) FROM t").fetchone()[0]


def test_normal_sync_and_one_kept_connection_and_nothing_lost(tmp_path):
    db = str(tmp_path / "events.db")
    done = _run(WRITES, db, LBC_SQLITE_SYNC="")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["sync"] == 1  # NORMAL
    assert out["kept"] == [db]
    assert out["wal_while_running"]  # closing Dagster's connections did not checkpoint
    assert not out["wal_after"]  # the last connection checkpointed and removed the log
    assert _count(db) == 20  # another process reads every write


def test_full_sync_on_request_keeps_no_connection(tmp_path):
    db = str(tmp_path / "events.db")
    done = _run(WRITES, db, LBC_SQLITE_SYNC="full")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["sync"] == 2  # FULL, SQLite's default
    assert out["kept"] == []
    assert not out["wal_while_running"]  # each closing connection was the last and checkpointed
    assert _count(db) == 20


def test_writes_of_a_killed_process_are_read_by_the_next(tmp_path):
    # kill -9 right after the writes: the log is not checkpointed, the next process recovers it
    db = str(tmp_path / "events.db")
    code = WRITES.replace("wal_while_running = ", "import signal; os.kill(os.getpid(), signal.SIGKILL)\nwal_while_running = ")
    done = _run(code, db, LBC_SQLITE_SYNC="")
    assert done.returncode == -9
    assert os.path.exists(db + "-wal")
    assert _count(db) == 20


def test_an_unknown_level_is_refused(monkeypatch):
    from lbc_pipeline import instance_sqlite

    monkeypatch.setenv("LBC_SQLITE_SYNC", "sometimes")
    with pytest.raises(ValueError, match="LBC_SQLITE_SYNC='SOMETIMES': expected one of OFF, NORMAL, FULL, EXTRA"):
        instance_sqlite.level()
    monkeypatch.setenv("LBC_SQLITE_SYNC", "off")
    assert instance_sqlite.level() == "OFF"


def test_a_dagster_run_is_stored_whole(tmp_path):
    # a real job on a SQLite instance with the pragmas: every event is in the history afterwards
    code = textwrap.dedent("""
        import json
        from dagster import DagsterInstance, asset, materialize
        from lbc_pipeline import instance_sqlite

        @asset
        def one():
            return 1

        instance_sqlite.install()
        with DagsterInstance.get() as instance:
            result = materialize([one], instance=instance)
            print(json.dumps({"run": result.run_id, "events": len(instance.all_logs(result.run_id)),
                              "kept": len(instance_sqlite.kept())}))
    """)
    home = tmp_path / "home"
    home.mkdir()
    done = _run(code, DAGSTER_HOME=str(home), LBC_SQLITE_SYNC="")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["kept"] >= 2  # the run's shard and the index
    reread = _run("import sys\nfrom dagster import DagsterInstance\n"
                  "print(len(DagsterInstance.get().all_logs(sys.argv[1])))", out["run"], DAGSTER_HOME=str(home))
    assert reread.returncode == 0, reread.stderr
    assert int(reread.stdout.splitlines()[-1]) == out["events"] > 5


def test_a_forked_child_does_not_close_its_parents_connection(tmp_path):
    db = str(tmp_path / "events.db")
    code = WRITES.replace("wal_while_running = ", textwrap.dedent("""\
        pid = os.fork()
        if pid == 0:
            instance_sqlite.close_kept()  # as an exiting child would
            os._exit(0 if instance_sqlite.kept() == [] else 1)
        assert os.waitpid(pid, 0)[1] == 0
        wal_while_running = """))
    done = _run(code, db, LBC_SQLITE_SYNC="")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["kept"] == [db] and out["wal_while_running"] and not out["wal_after"]
    assert _count(db) == 20


def test_a_connection_that_is_not_sqlite_is_left_alone(monkeypatch):
    # PostgreSQL (deploy/dagster.postgres.yaml): no pragma, no kept connection
    from lbc_pipeline import instance_sqlite

    class NotSqlite:
        def cursor(self):
            raise AssertionError("a non-SQLite connection was given a pragma")

    monkeypatch.setenv("LBC_SQLITE_SYNC", "")
    before = instance_sqlite.kept()
    instance_sqlite._on_connect(NotSqlite(), None)
    assert instance_sqlite.kept() == before


SPARED = textwrap.dedent("""
    import json, sys
    import sqlalchemy.engine.create
    from dagster import DagsterInstance, DynamicPartitionsDefinition, asset, materialize
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from lbc_pipeline import instance_sqlite

    engines, lookups = [], []
    create = sqlite_event_log.create_engine
    sqlite_event_log.create_engine = lambda *a, **k: engines.append(a[0]) or create(*a, **k)
    dialect_has_table = sqlalchemy.dialects.sqlite.base.SQLiteDialect.has_table
    def counted(self, *a, **k):
        lookups.append(a[1] if len(a) > 1 else k.get("table_name"))
        return dialect_has_table(self, *a, **k)
    sqlalchemy.dialects.sqlite.base.SQLiteDialect.has_table = counted
    if sys.argv[1] == "install":
        instance_sqlite.install()

    waves = DynamicPartitionsDefinition(name="waves")

    @asset(partitions_def=waves)
    def one():
        return 1

    @asset(partitions_def=waves)
    def two(one):
        return one + 1

    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("waves", ["w1"])
        engines.clear(), lookups.clear()
        runs = [materialize([one, two], instance=instance, partition_key="w1").run_id for _ in range(3)]
        stored = sum(len(instance.all_logs(r)) for r in runs)
        partitions = instance.get_dynamic_partitions("waves")
        print(json.dumps({"engines": len(engines), "lookups": lookups.count("dynamic_partitions"),
                          "stored": stored, "partitions": partitions}))
""")


@pytest.mark.parametrize("mode", ["install", "plain"])
def test_the_event_storage_keeps_its_engines_and_the_tables_it_found(tmp_path, mode):
    home = tmp_path / "home"
    home.mkdir()
    done = _run(SPARED, mode, DAGSTER_HOME=str(home), LBC_SQLITE_SYNC="")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["partitions"] == ["w1"]
    if mode == "install":
        # three runs: about an engine per run shard (measured: 4 for 75 events) and the
        # dynamic-partitions table looked up at most once a run (measured: 3), where Dagster
        # alone builds one per stored event and looks the table up before every partition
        # query (measured: 203 and 40)
        assert out["engines"] <= 6 < out["stored"]
        assert out["lookups"] <= 3
    else:
        assert out["engines"] > out["stored"] > 20
        assert out["lookups"] > 9
    reread = _run("import sys, json\nfrom dagster import DagsterInstance\n"
                  "i = DagsterInstance.get()\nprint(sum(len(i.all_logs(r.run_id)) for r in i.get_runs()))",
                  DAGSTER_HOME=str(home))
    assert reread.returncode == 0, reread.stderr
    assert int(reread.stdout.splitlines()[-1]) == out["stored"]
