"""The deployment files load for real and agree with each other (deploy/, docs/deploy.md).

- deploy/dagster.k8s.yaml and deploy/dagster.postgres.yaml: validated by Dagster as instance
  files; with PostgreSQL (DAGSTER_PG_* set, as `.ci/run` does) loaded as DagsterInstances,
  their pool limit read through `get_concurrency_config()`, and two instances (two machines)
  shown to take turns for a slot of the `lbc_publish` pool. Without DAGSTER_PG_HOST those
  tests are skipped (and fail in CI).
- The K8sRunLauncher is built from the file's own config, with load_incluster_config false and
  a kubeconfig pointing at https://127.0.0.1:1; its Kubernetes API is a fake that records the
  Job it is asked to create, so nothing is contacted.
- deploy/Dockerfile is parsed (a small parser below) and checked against the repository.
- deploy/k8s/*.yaml are parsed and checked for what refers to what.
Each check is a function that raises AssertionError, run once on the shipped file and once
on a broken copy that it must reject.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import os
import shlex
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lbc_pipeline.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
K8S_INSTANCE = DEPLOY / "dagster.k8s.yaml"
PG_INSTANCE = DEPLOY / "dagster.postgres.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
MANIFESTS = DEPLOY / "k8s"
DOCS = PROJECT_ROOT / "docs" / "deploy.md"
PUBLISH_POOL = "lbc_publish"
IMAGE_PYTHON = "/opt/venv/bin/python"  # what the code server in the image reports as its interpreter
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
# Objects the manifests refer to that an operator creates with kubectl (docs/deploy.md).
CREATED_BY_KUBECTL = {"configmap": {"lbc-dagster-instance"},
                      "secret": {"lbc-dagster-postgresql", "lbc-pseudonym-key"}}
FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: nobody, user: {token: not-a-token}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody, namespace: lbc}}]
current-context: nowhere
"""


# ------------------------------------------------------------------ helpers
def write_home(tmp_path: Path, source: Path, edit=None, name: str = "home") -> Path:
    """A DAGSTER_HOME holding `source` as dagster.yaml, optionally edited (a dict -> None)."""
    home = tmp_path / name
    home.mkdir()
    if edit is None:
        shutil.copy(source, home / "dagster.yaml")
    else:
        settings = yaml.safe_load(source.read_text())
        edit(settings)
        (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return home


def launcher_settings() -> dict:
    return yaml.safe_load(K8S_INSTANCE.read_text())["run_launcher"]["config"]


def env_pairs(entries) -> dict[str, str]:
    """`NAME=VALUE` entries of env_vars (the NAME-only ones pass the launcher's value on)."""
    return dict(e.split("=", 1) for e in entries if "=" in e)


@pytest.fixture
def k8s_env(monkeypatch, tmp_path):
    """What the daemon's environment holds; dummy PostgreSQL values unless a server is set."""
    for var, value in zip(PG_VARS, ("127.0.0.1", "1", "dagster", "", "dagster")):
        if var not in os.environ:
            monkeypatch.setenv(var, value)
    monkeypatch.setenv("LBC_IMAGE", "registry.example.org/lbc-pipeline:test")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    return kubeconfig


def not_in_cluster(kubeconfig: Path):
    """An edit that points the launcher at the fake kubeconfig instead of the cluster."""
    def edit(settings):
        settings["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    return edit


# ------------------------------------------------------------------ the instance files
def check_instance_ref(ref, launcher_class: str) -> None:
    """What deploy/dagster.k8s.yaml (or .postgres.yaml) must configure, read from its ref."""
    assert ref.storage_data.module_name == "dagster_postgres", ref.storage_data
    postgres_db = ref.storage_data.config_dict["postgres_db"]
    assert postgres_db["scheme"] == "postgresql+psycopg2"
    assert {k: v for k, v in postgres_db.items() if k != "scheme"} == {
        "username": {"env": "DAGSTER_PG_USERNAME"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": {"env": "DAGSTER_PG_HOST"}, "db_name": {"env": "DAGSTER_PG_DB"},
        "port": {"env": "DAGSTER_PG_PORT"}}
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"
    assert ref.run_launcher_data.class_name == launcher_class, ref.run_launcher_data
    monitoring = ref.settings["run_monitoring"]
    assert monitoring["enabled"] is True and monitoring["max_resume_run_attempts"] == 0
    assert ref.settings["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("source, launcher_class", [(K8S_INSTANCE, "K8sRunLauncher"),
                                                    (PG_INSTANCE, "LocalRunLauncher")])
def test_the_instance_files_validate(source, launcher_class, k8s_env, tmp_path):
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.errors import DagsterInvalidConfigError

    check_instance_ref(InstanceRef.from_dir(str(write_home(tmp_path, source))), launcher_class)

    # a copy on the default launcher is refused by the check
    def default_launcher(settings):
        settings["run_launcher"] = {"module": "dagster", "class": "DefaultRunLauncher"}
    with pytest.raises(AssertionError):
        check_instance_ref(InstanceRef.from_dir(str(write_home(tmp_path, source, default_launcher, "a"))), launcher_class)

    # and Dagster itself refuses a misspelt pool key
    def misspelt(settings):
        settings["concurrency"]["pools"]["default_limits"] = 1
    with pytest.raises(DagsterInvalidConfigError):
        InstanceRef.from_dir(str(write_home(tmp_path, source, misspelt, "b")))


# ------------------------------------------------------------------ the run pods
class FakeBatchApi:
    """Records the Jobs the launcher creates; nothing goes to a cluster."""

    def __init__(self):
        self.created = []

    def create_namespaced_job(self, body, namespace, **_):
        self.created.append((namespace, body))


class NoCoreApi:
    def __getattr__(self, name):
        raise AssertionError(f"the launcher called the Kubernetes core API ({name})")


def build_launcher(config: dict, kubeconfig: Path):
    """The K8sRunLauncher of `config` (the file's, validated by Dagster), off the cluster."""
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    config = dict(config, load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    result = process_config(K8sRunLauncher.config_type(), config)
    assert result.success, result.errors
    batch = FakeBatchApi()
    launcher = K8sRunLauncher(**result.value, k8s_client_batch_api=batch, k8s_client_core_api=NoCoreApi())
    return launcher, batch


def launch_one_run(launcher, batch, instance):
    """Launch a main_job run of lbc_pipeline.definitions; the Job the launcher would create."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.test_utils import create_run_for_test

    origin = JobPythonOrigin("main_job", RepositoryPythonOrigin(
        IMAGE_PYTHON, ModuleCodePointer("lbc_pipeline.definitions", "defs"), None, None, None))
    launcher.register_instance(instance)
    run = create_run_for_test(instance, job_name="main_job", job_code_origin=origin)
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert len(batch.created) == 1
    return batch.created[0]


def check_run_pod(namespace: str, job, settings: dict) -> None:
    """The run pod: image, environment, /data on the shared claim, the key, the user."""
    image = dockerfile_facts(parse_dockerfile(DOCKERFILE.read_text()))  # the image it runs
    assert namespace == settings["job_namespace"]
    spec = job.spec.template.spec
    (container,) = spec.containers
    assert container.image == os.environ["LBC_IMAGE"]
    assert spec.service_account_name == settings["service_account_name"]
    env = {e.name: e for e in container.env}
    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_DB", "LBC_IMAGE"):
        assert env[var].value == os.environ[var], var  # passed on from the launching process
    password = env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref
    assert (password.name, password.key) == (settings["postgres_password_secret"], "postgresql-password")
    assert env["DAGSTER_HOME"].value == image["env"]["DAGSTER_HOME"]
    data_dir = env["LBC_DATA_DIR"].value
    assert data_dir == image["env"]["LBC_DATA_DIR"] and data_dir in image["volumes"]
    volumes = {v.name: v for v in spec.volumes}
    mounts = {m.mount_path: m for m in container.volume_mounts}
    claim = volumes[mounts[data_dir].name].persistent_volume_claim
    assert claim is not None and claim.claim_name == "lbc-data"
    assert not mounts[data_dir].read_only
    key_file = Path(env["LBC_PSEUDONYM_KEY_FILE"].value)
    key_mount = mounts[str(key_file.parent)]
    assert key_mount.read_only and volumes[key_mount.name].secret.secret_name in CREATED_BY_KUBECTL["secret"]
    assert container.security_context.run_as_user == image["uid"]
    assert spec.security_context.fs_group == image["uid"]  # reads the key Secret (mode 0440)
    # the interpreter the code server reported (the image's virtualenv) runs the run worker
    assert container.args[:5] == [IMAGE_PYTHON, "-m", "dagster", "api", "execute_run"]
    assert image["env"]["PATH"].startswith(str(Path(IMAGE_PYTHON).parent) + ":")


def test_a_run_gets_its_own_pod_with_the_shared_data_volume(k8s_env, tmp_path):
    from dagster import DagsterInstance

    settings = launcher_settings()
    (tmp_path / "sqlite_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "sqlite_home")) as instance:
        launcher, batch = build_launcher(settings, k8s_env)
        namespace, job = launch_one_run(launcher, batch, instance)
        check_run_pod(namespace, job, settings)
        assert job.metadata.labels["dagster/run-id"] == instance.get_runs()[0].run_id

        # a launcher without the data volume is refused
        broken = copy.deepcopy(settings)
        broken["volumes"] = [v for v in broken["volumes"] if v["name"] != "lbc-data"]
        broken["volume_mounts"] = [m for m in broken["volume_mounts"] if m["name"] != "lbc-data"]
        launcher, batch = build_launcher(broken, k8s_env)
        namespace, job = launch_one_run(launcher, batch, instance)
        with pytest.raises((AssertionError, KeyError)):
            check_run_pod(namespace, job, broken)


# ------------------------------------------------------------------ with PostgreSQL
@pytest.fixture
def postgres(monkeypatch):
    """A database of its own on the server DAGSTER_PG_* names (dropped afterwards), so that
    other tests' pools and runs on that server do not mix with these. Requested before
    k8s_env, which fills in dummy DAGSTER_PG_* values."""
    if "DAGSTER_PG_HOST" not in os.environ:
        if os.environ.get("CI"):
            pytest.fail("CI must start PostgreSQL (.ci/run) and set DAGSTER_PG_*")
        pytest.skip("no PostgreSQL: start one with scripts/postgres_local.sh and set DAGSTER_PG_*")
    import psycopg2

    def connect():
        con = psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"],
                               user=os.environ["DAGSTER_PG_USERNAME"],
                               password=os.environ.get("DAGSTER_PG_PASSWORD", ""),
                               dbname=os.environ["DAGSTER_PG_DB"])
        con.autocommit = True
        return con

    name = f"lbc_deploy_{uuid.uuid4().hex[:12]}"
    con = connect()  # (not `with con`: that opens a transaction, and CREATE DATABASE refuses one)
    with con.cursor() as cur:
        cur.execute(f"create database {name}")
    con.close()
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    yield name
    monkeypatch.undo()
    con = connect()
    with con.cursor() as cur:
        cur.execute(f"drop database if exists {name} with (force)")
    con.close()


def check_pools(instance) -> None:
    """Publications take turns: every pool without a limit of its own (so `lbc_publish`) gets
    one slot, enforced per step."""
    from dagster._core.instance.config import PoolGranularity

    pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1, pools
    assert pools.pool_granularity == PoolGranularity.OP, pools


def no_pools(settings):
    del settings["concurrency"]["pools"]


@pytest.mark.parametrize("source", [K8S_INSTANCE, PG_INSTANCE])
def test_the_instance_loads_on_postgres_with_one_publication_at_a_time(source, postgres, k8s_env, tmp_path):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator

    edit = not_in_cluster(k8s_env) if source == K8S_INSTANCE else None
    home = write_home(tmp_path, source, edit)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        launcher = instance.run_launcher
        if source == K8S_INSTANCE:
            from dagster_k8s import K8sRunLauncher
            assert isinstance(launcher, K8sRunLauncher)
            assert launcher.job_namespace == "lbc" and launcher.job_image == os.environ["LBC_IMAGE"]
            assert [m["mount_path"] for m in launcher.volume_mounts if m["name"] == "lbc-data"] == ["/data"]
        else:
            from lbc_pipeline.run_launcher import LocalRunLauncher
            assert isinstance(launcher, LocalRunLauncher)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4
        check_pools(instance)

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(write_home(tmp_path, source, no_pools, "no_pools")))) as instance:
        with pytest.raises(AssertionError):
            check_pools(instance)


def test_the_run_pods_get_the_password_from_the_secret_not_from_the_instance(postgres, k8s_env, tmp_path, monkeypatch):
    """The instance a run pod receives (in its arguments) keeps `env:` references: the pod
    resolves DAGSTER_PG_* itself, and the password never appears in the Job."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster_shared.serdes import serialize_value

    password = f"pw-{uuid.uuid4().hex}"  # the private server trusts any password
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", password)
    home = write_home(tmp_path, K8S_INSTANCE, not_in_cluster(k8s_env))
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        launcher, batch = build_launcher(launcher_settings(), k8s_env)
        namespace, job = launch_one_run(launcher, batch, instance)
        check_run_pod(namespace, job, launcher_settings())
        args = " ".join(job.spec.template.spec.containers[0].args)
        assert "DAGSTER_PG_PASSWORD" in args and password not in args
        assert password not in serialize_value(job.to_dict())
        assert password not in serialize_value(instance.get_ref())


def claim_publication(instance, run_id: str, wait: float = 0.0) -> bool:
    """Whether run `run_id` gets a slot of the publish pool for its publish step, as the
    step executor asks for it (retrying for up to `wait` seconds)."""
    from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
    from dagster._core.test_utils import create_run_for_test

    run = instance.get_run_by_id(run_id) or create_run_for_test(instance, job_name="main_job", run_id=run_id)
    context = InstanceConcurrencyContext(instance, run)
    deadline = time.monotonic() + wait
    while True:
        if context.claim(PUBLISH_POOL, "publish_wave"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(max(0.2, context.interval_to_next_pending_claim_check()))


@pytest.mark.parametrize("pools", ["as shipped", "without the pool block"])
def test_two_machines_take_turns_to_publish(pools, postgres, k8s_env, tmp_path):
    """Two instances on one PostgreSQL (the daemon's and a run pod's on another machine): while
    one run holds the publish slot, a run elsewhere waits for it; then it gets it."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    edit = (lambda s: (not_in_cluster(k8s_env)(s), no_pools(s))) if pools != "as shipped" else not_in_cluster(k8s_env)
    ref = InstanceRef.from_dir(str(write_home(tmp_path, K8S_INSTANCE, edit)))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with DagsterInstance.from_ref(ref) as machine_a, DagsterInstance.from_ref(ref) as machine_b:
        assert claim_publication(machine_a, first)
        blocked = not claim_publication(machine_b, second)
        if pools == "as shipped":
            assert blocked
            assert machine_b.event_log_storage.get_concurrency_info(PUBLISH_POOL).slot_count == 1
            machine_a.event_log_storage.free_concurrency_slot_for_step(first, "publish_wave")
            assert claim_publication(machine_b, second, wait=10.0)
        else:
            assert not blocked  # without the pool block nothing serialises publications


# ------------------------------------------------------------------ the Dockerfile
@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, `\\` continuations joined."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's patterns keep `path` (relative, '/'-separated) out of the
    build context: the last pattern matching the path or one of its parent folders wins."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(c, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(c.rsplit("/", 1)[-1], pattern[3:]))
               for c in candidates):
            excluded = not negate
    return excluded


def dockerfile_facts(instructions: list[Instruction]) -> dict:
    """Checks of the image definition; returns what the other files must agree with."""
    assert instructions[0].keyword == "FROM" and instructions[0].args.split()[0].startswith("python:3.11-slim")
    env, copied, volumes, uid, runs = {}, [], [], None, []
    cmd = expose = None
    ignore = [p.strip() for p in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
              if p.strip() and not p.strip().startswith("#")]
    for ins in instructions:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, _, value = pair.partition("=")
                env[key] = value
        elif ins.keyword == "COPY":
            *sources, _dest = [a for a in shlex.split(ins.args) if not a.startswith("--")]
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not dockerignore_excludes(source, ignore), f"COPY {source}: excluded by .dockerignore"
                copied.append(source)
        elif ins.keyword == "RUN":
            runs.append((ins.args, list(copied)))
        elif ins.keyword == "VOLUME":
            volumes += ins.exec_form() or ins.args.split()
        elif ins.keyword == "USER":
            uid = int(ins.args.split(":")[0])
        elif ins.keyword == "CMD":
            cmd = ins.exec_form()
        elif ins.keyword == "EXPOSE":
            expose = int(ins.args.split("/")[0])
    # the locked tree exactly: `uv pip sync` of requirements.lock, nothing else installed from
    # an index but uv itself and the project without its dependencies
    installs = [(r, c) for r, c in runs if "pip install" in r or "pip sync" in r]
    syncs = [(r, c) for r, c in installs if "uv pip sync" in r]
    assert len(syncs) == 1, "requirements.lock must be installed with one `uv pip sync`"
    sync, copied_before = syncs[0]
    assert "requirements.lock" in shlex.split(sync) and "requirements.lock" in copied_before
    assert "--compile-bytecode" in sync
    for run, _ in installs:
        if run is sync:
            continue
        words = shlex.split(run)
        if "uv==0.13.8" in words:
            continue
        assert "uv" in words and "--no-deps" in words, f"RUN {run}: installs more than the lock"
        assert "-r" not in words and "--requirement" not in words
    assert any("uv==0.13.8" in shlex.split(r) for r, _ in installs)
    # the code server of lbc_pipeline.definitions, a module the image holds
    assert cmd and cmd[:3] == ["dagster", "code-server", "start"], cmd
    module = cmd[cmd.index("-m") + 1]
    assert module == "lbc_pipeline.definitions"
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin
    module_file = Path(spec.origin).resolve().relative_to(PROJECT_ROOT.resolve()).as_posix()
    assert any(module_file == c or module_file.startswith(c.rstrip("/") + "/") for c in copied), module_file
    assert cmd[cmd.index("-h") + 1] == "0.0.0.0"
    port = int(cmd[cmd.index("-p") + 1])
    assert expose == port
    # the data folder is the mounted shared volume
    assert env.get("LBC_DATA_DIR") == "/data" and "/data" in volumes
    assert env.get("DAGSTER_HOME")
    assert uid is not None and uid != 0
    return {"env": env, "volumes": volumes, "uid": uid, "port": port, "copied": copied}


def test_the_dockerfile_installs_the_lock_and_serves_the_code():
    facts = dockerfile_facts(parse_dockerfile(DOCKERFILE.read_text()))
    settings = launcher_settings()
    mount = {m["name"]: m["mount_path"] for m in settings["volume_mounts"]}["lbc-data"]
    assert facts["env"]["LBC_DATA_DIR"] == mount == env_pairs(settings["env_vars"])["LBC_DATA_DIR"]
    assert facts["env"]["DAGSTER_HOME"] == settings["dagster_home"]
    assert facts["uid"] == settings["security_context"]["run_as_user"]
    for secret_path in (".lbc_secret", "data/raw/2019", ".venv", ".git"):  # kept out of the image
        assert dockerignore_excludes(secret_path, [p.strip() for p in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
                                                   if p.strip() and not p.startswith("#")])


@pytest.mark.parametrize("old, new", [
    ("uv pip sync --no-cache --compile-bytecode --python /opt/venv/bin/python requirements.lock",
     "uv pip install --no-cache --compile-bytecode --python /opt/venv/bin/python -r requirements.lock"),
    ("COPY sql ./sql", "COPY sql queries ./sql"),
    ("LBC_DATA_DIR=/data", "LBC_DATA_DIR=/srv/lbc"),
    ('"lbc_pipeline.definitions"', '"lbc_pipeline.nowhere"'),
    ("--no-deps ", ""),
    ("FROM python:3.11-slim", "FROM python:3.12-slim"),
])
def test_a_broken_dockerfile_is_refused(old, new):
    text = DOCKERFILE.read_text()
    assert old in text
    with pytest.raises(AssertionError):
        dockerfile_facts(parse_dockerfile(text.replace(old, new)))


# ------------------------------------------------------------------ the manifests
def load_manifests(root: Path = MANIFESTS) -> list[dict]:
    return [doc for path in sorted(root.glob("*.yaml")) if path.name != "workspace.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def check_manifests(objects: list[dict], workspace: dict) -> None:
    """What refers to what across deploy/k8s, deploy/dagster.k8s.yaml and deploy/Dockerfile."""
    settings = launcher_settings()
    image = dockerfile_facts(parse_dockerfile(DOCKERFILE.read_text()))
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    namespace = settings["job_namespace"]
    assert namespace in by_kind["Namespace"]
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]
    # the shared data claim of the run pods, ReadWriteMany
    (claim,) = [v["persistent_volume_claim"]["claim_name"] for v in settings["volumes"] if "persistent_volume_claim" in v]
    assert by_kind["PersistentVolumeClaim"][claim]["spec"]["accessModes"] == ["ReadWriteMany"]
    # the launcher's service account, allowed to create, watch and delete Jobs
    account = settings["service_account_name"]
    assert account in by_kind["ServiceAccount"]
    binding = [b for b in by_kind["RoleBinding"].values()
               if {"kind": "ServiceAccount", "name": account, "namespace": namespace} in b["subjects"]]
    assert binding, f"no RoleBinding for {account}"
    rules = by_kind["Role"][binding[0]["roleRef"]["name"]]["rules"]
    def allowed(group, resource, verb):
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)
    assert all(allowed("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete"))
    assert all(allowed("", "pods", v) for v in ("get", "list", "watch"))
    env_config = by_kind["ConfigMap"]["lbc-env"]["data"]
    fixed = env_pairs(settings["env_vars"])
    assert env_config["LBC_DATA_DIR"] == fixed["LBC_DATA_DIR"] == image["env"]["LBC_DATA_DIR"]
    assert env_config["LBC_PSEUDONYM_KEY_FILE"] == fixed["LBC_PSEUDONYM_KEY_FILE"]
    passed_on = [e for e in settings["env_vars"] if "=" not in e]
    assert set(passed_on) <= set(env_config), "the daemon must hold what it passes to the run pods"
    deployments = by_kind["Deployment"]
    assert deployments["lbc-daemon"]["spec"]["replicas"] == 1  # one daemon per instance
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        spec = pod["spec"]
        assert spec["serviceAccountName"] == account
        assert spec["securityContext"]["runAsUser"] == image["uid"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in by_kind["ConfigMap"] or v["configMap"]["name"] in CREATED_BY_KUBECTL["configmap"]
            if "secret" in v:
                assert v["secret"]["secretName"] in CREATED_BY_KUBECTL["secret"]
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in by_kind["PersistentVolumeClaim"]
        (container,) = spec["containers"]
        assert container["image"] == env_config["LBC_IMAGE"], name
        assert {"configMapRef": {"name": "lbc-env"}} in container["envFrom"]
        password = {e["name"]: e for e in container["env"]}["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": settings["postgres_password_secret"], "key": "postgresql-password"}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        instance_file = mounts[image["env"]["DAGSTER_HOME"] + "/dagster.yaml"]
        assert volumes[instance_file["name"]]["configMap"]["name"] == settings["instance_config_map"]
        assert instance_file["subPath"] == "dagster.yaml"
        command = container.get("command")
        if command:  # the daemon and the webserver read the workspace from the same ConfigMap
            workspace_file = mounts[command[command.index("-w") + 1]]
            assert workspace_file["subPath"] == "workspace.yaml"
            assert volumes[workspace_file["name"]]["configMap"]["name"] == settings["instance_config_map"]
        else:  # the code server: the image's command; it evaluates the sensors on /data
            data = mounts[image["env"]["LBC_DATA_DIR"]]
            assert volumes[data["name"]]["persistentVolumeClaim"]["claimName"] == claim
            key = mounts[str(Path(env_config["LBC_PSEUDONYM_KEY_FILE"]).parent)]
            assert key["readOnly"] and "secret" in volumes[key["name"]]
            assert {p["containerPort"] for p in container["ports"]} == {image["port"]}
    # every Service reaches a Deployment's port; the workspace reaches the code server
    for service in by_kind["Service"].values():
        targets = [d for d in deployments.values()
                   if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, service["metadata"]["name"]
        ports = {p["containerPort"] for p in targets[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    (location,) = workspace["load_from"]
    server = location["grpc_server"]
    service = by_kind["Service"][server["host"]]
    assert server["port"] in {p["port"] for p in service["spec"]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] == image["port"]


def test_the_manifests_refer_to_each_other():
    workspace = yaml.safe_load((MANIFESTS / "workspace.yaml").read_text())
    objects = load_manifests()
    check_manifests(objects, workspace)
    # the objects created with kubectl are the ones docs/deploy.md tells to create
    docs = DOCS.read_text()
    for name in (*CREATED_BY_KUBECTL["configmap"], *CREATED_BY_KUBECTL["secret"]):
        assert f"kubectl -n lbc create configmap {name}" in docs or f"kubectl -n lbc create secret generic {name}" in docs, name


def _break(objects, kind, name, edit):
    objects = copy.deepcopy(objects)
    edit(next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name))
    return objects


@pytest.mark.parametrize("kind, name, edit", [
    ("PersistentVolumeClaim", "lbc-data", lambda o: o["spec"].update(accessModes=["ReadWriteOnce"])),
    ("Service", "lbc-user-code", lambda o: o["spec"].update(selector={"app.kubernetes.io/name": "lbc-usercode"})),
    ("Deployment", "lbc-daemon", lambda o: o["spec"].update(replicas=2)),
    ("Deployment", "lbc-user-code", lambda o: o["spec"]["template"]["spec"]["volumes"].pop(1)),
    ("RoleBinding", "lbc-dagster-run-launcher", lambda o: o["subjects"][0].update(name="default")),
])
def test_broken_manifests_are_refused(kind, name, edit):
    workspace = yaml.safe_load((MANIFESTS / "workspace.yaml").read_text())
    with pytest.raises((AssertionError, KeyError)):
        check_manifests(_break(load_manifests(), kind, name, edit), workspace)
