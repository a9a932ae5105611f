"""The deploy files start what `govsms run` starts (workers/local/gateway.py `processes()`), with the
same command lines, and keep their hardening.

No systemd, Docker or Kubernetes here: the files are parsed, each command line is
expanded as its runner would (systemd's specifiers and ${VAR}, Compose's $$, then the
container's or unit's shell for the `sh -c` ones, run for real with `celery` and
`govsms` replaced by a stub that prints its argv), and compared with `processes()`.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from workers.local.gateway import processes
from workers.settings import Settings

yaml = pytest.importorskip("yaml", reason="the deploy file tests parse YAML (PyYAML)")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCS = DEPLOY.parent / "docs" / "deploy.md"
# Settings away from their defaults, so a hard-coded value cannot pass for the setting.
ENV = {"GOVSMS_CONCURRENCY": "3", "GOVSMS_LOG_LEVEL": "WARNING"}
SMPP = "smpp://rx:pw@smsc.example:2775?mode=receiver"
OPTIONAL = {"smpp-ingest"}
VENV_BIN = "/opt/govsms/venv/bin/"
STUB = "#!/bin/sh\nprintf '%s\\0' \"$(basename \"$0\")\" \"$@\"\n"

Command = tuple[str, ...]


def expected() -> Counter[Command]:
    """What `govsms run` starts with ENV's settings, as console commands, hosts as HOST."""
    settings = Settings(concurrency=int(ENV["GOVSMS_CONCURRENCY"]),
                        log_level=ENV["GOVSMS_LOG_LEVEL"], smpp_receiver=SMPP)
    found: Counter[Command] = Counter()
    for argv in processes(settings).values():
        assert argv[0] == sys.executable and argv[1] == "-m"
        program = {"celery": "celery", "workers.cli": "govsms"}[argv[2]]
        found[_hosts((program, *argv[3:]))] += 1
    return found


def expected_without_optional() -> Counter[Command]:
    """`expected()` less the optional processes (smpp-ingest)."""
    smpp = Counter({("govsms", "smpp-ingest"): 1})
    return expected() - smpp


def _hosts(argv: Command) -> Command:
    # Celery's %h (the container's host name), systemd's %H: the node name's host.
    return tuple(a.replace("%h", "HOST") for a in argv)


@pytest.fixture(scope="module")
def stub_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `celery` and `govsms` print their argv, NUL-separated."""
    folder = tmp_path_factory.mktemp("bin")
    for name in ("celery", "govsms"):
        (folder / name).write_text(STUB)
        (folder / name).chmod(0o755)
    return folder


def run_argv(argv: list[str], env: dict[str, str], stub_bin: Path) -> Command:
    """The command `argv` ends up executing, as the stub saw it."""
    argv = [a.replace(VENV_BIN, f"{stub_bin}/") for a in argv]
    if argv[0] in ("celery", "govsms"):
        argv[0] = str(stub_bin / argv[0])
    if argv[0] in ("sh", "/bin/sh"):
        argv[0] = "/bin/sh"
    out = subprocess.run(argv, env={**env, "PATH": f"{stub_bin}:/usr/bin:/bin"},
                         capture_output=True, check=True, timeout=10).stdout
    return _hosts(tuple(out.decode().split("\0")[:-1]))


# --- systemd ---------------------------------------------------------------------------------

def unit(path: Path) -> dict[str, list[str]]:
    """A unit file's settings, continuation lines joined; comments dropped."""
    settings: dict[str, list[str]] = {}
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _systemd_env(settings: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in settings.get("Environment", []):
        env.update(word.split("=", 1) for word in shlex.split(line))
    return {**env, **ENV}   # what the EnvironmentFile sets overrides the unit's defaults


def _systemd_argv(exec_start: str, env: dict[str, str], instance: str) -> list[str]:
    """ExecStart as systemd expands it: specifiers, then ${VAR} and $VAR, then $$."""
    words = []
    for word in shlex.split(exec_start):
        word = word.replace("%i", instance).replace("%H", "HOST").replace("%%", "%")
        word = re.sub(r"(?<!\$)\$\{(\w+)\}", lambda m: env.get(m[1], ""), word)
        words.append(word.replace("$$", "$"))
    return words


def systemd_processes(stub_bin: Path) -> dict[str, Command]:
    """Every unit's command, the template once per service queue `processes()` lists."""
    queues = [a.split("@")[0] for argv in expected() for a in argv if a.startswith("svc.")]
    found = {}
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        settings = unit(path)
        [exec_start] = settings["ExecStart"]
        env = _systemd_env(settings)
        instances = sorted(set(queues)) if path.name.endswith("@.service") else [""]
        for instance in instances:
            name = path.name.replace("@.service", f"@{instance}.service")
            found[name] = run_argv(_systemd_argv(exec_start, env, instance), env, stub_bin)
    return found


def test_systemd_units_start_what_govsms_run_starts(stub_bin):
    found = systemd_processes(stub_bin)
    assert Counter(found.values()) == expected()
    assert found["govsms-smpp-ingest.service"] == ("govsms", "smpp-ingest")


def test_the_systemd_target_enables_every_unit_but_the_optional_ones():
    text = (DEPLOY / "systemd" / "govsms.target").read_text().replace("#", "")
    command = re.findall(r"systemctl enable govsms-(?:.*\\\n)*.*", text)[0]
    enabled = set(re.findall(r"govsms-[\w.@-]+\.service", command))
    units = {p.name for p in (DEPLOY / "systemd").glob("*.service") if "@" not in p.name}
    assert units - enabled == {"govsms-smpp-ingest.service"}


def test_every_unit_is_hardened_and_runs_as_govsms():
    for path in (DEPLOY / "systemd").glob("*.service"):
        settings = unit(path)
        for key, value in [("User", "govsms"), ("NoNewPrivileges", "yes"),
                           ("ProtectSystem", "strict"), ("CapabilityBoundingSet", ""),
                           ("EnvironmentFile", "/etc/govsms/govsms.env")]:
            assert settings.get(key) == [value], (path.name, key)


def test_the_env_example_lists_every_setting():
    text = (DEPLOY / "systemd" / "govsms.env.example").read_text()
    listed = set(re.findall(r"^#?(GOVSMS_\w+)=", text, re.MULTILINE))
    fields = {f"GOVSMS_{name.upper()}" for name in Settings.model_fields}
    assert fields - listed == set()


def test_the_readme_settings_table_lists_every_setting():
    text = (DEPLOY.parent / "README.md").read_text()
    listed = set(re.findall(r"`(GOVSMS_\w+)`", text))
    fields = {f"GOVSMS_{name.upper()}" for name in Settings.model_fields}
    assert fields - listed == set()


# --- Docker Compose ----------------------------------------------------------------------------

def compose() -> dict:
    """compose.yaml with its anchors merged."""
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _compose_value(value: str) -> str:
    """Compose's interpolation of a command word: $$ is a literal $; nothing else is used."""
    assert not re.search(r"(?<!\$)\$\{", value.replace("$$", "")), value
    return value.replace("$$", "$")


def compose_processes(stub_bin: Path) -> dict[str, Command]:
    """Every govsms service's command as its container runs it, but the migration."""
    found = {}
    for name, service in compose()["services"].items():
        if service.get("image", "").split(":")[0] != "govsms" or name == "migrate":
            continue
        command = service["command"]
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        found[name] = run_argv([_compose_value(a) for a in argv], {**env, **ENV}, stub_bin)
    return found


def test_compose_starts_what_govsms_run_starts(stub_bin):
    found = compose_processes(stub_bin)
    assert Counter(found.values()) == expected()
    services = compose()["services"]
    assert found["smpp-ingest"] == ("govsms", "smpp-ingest")
    assert services["smpp-ingest"].get("profiles"), "smpp-ingest is optional: a profile"
    assert all(not s.get("profiles") for n, s in services.items() if n != "smpp-ingest")
    assert services["migrate"]["command"] == ["govsms", "db", "migrate"]


def test_compose_places_flower_and_the_ingest_where_they_can_be_reached():
    services = compose()["services"]
    assert services["flower"]["environment"]["GOVSMS_FLOWER_HOST"] == "0.0.0.0"
    assert services["ingest"]["environment"]["GOVSMS_HTTP_HOST"] == "0.0.0.0"
    [port] = services["ingest"]["ports"]
    assert port.startswith("${GOVSMS_PUBLISH_ADDR:-127.0.0.1}:"), port
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]


def test_compose_never_defaults_to_the_file_transport():
    for name in ("worker-outbound", "worker-bulk"):
        transport = compose()["services"][name]["environment"]["GOVSMS_TRANSPORT"]
        assert transport.startswith("${GOVSMS_TRANSPORT:?"), (name, transport)


# Secrets by process: what each reads (workers/settings.py, the code that calls it).
BASE = {"GOVSMS_REDIS_URL", "GOVSMS_DATABASE_URL"}
WORKER = BASE | {"GOVSMS_SECRET_KEY"}
SECRETS = {
    "ingest": WORKER | {"GOVSMS_BRIDGE_SECRET", "GOVSMS_API_CLIENTS"},
    "worker-inbound": WORKER, "worker-replay": WORKER, "svc": WORKER,
    "worker-outbound": WORKER | {"GOVSMS_TRANSPORT"},
    "worker-bulk": WORKER | {"GOVSMS_TRANSPORT"},
    "beat": {"GOVSMS_REDIS_URL"},
    "flower": {"GOVSMS_REDIS_URL", "GOVSMS_FLOWER_PASSWORD"},
    "console": WORKER | {"GOVSMS_OPERATORS"},
    "smpp-ingest": BASE | {"GOVSMS_SMPP_RECEIVER"},
    "migrate": {"GOVSMS_DATABASE_MIGRATE_URL"},
}
SECRET_NAMES = set().union(*SECRETS.values()) | {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}


def _secrets_of(name: str) -> set[str]:
    return SECRETS["svc" if name.startswith(("worker-svc", "svc-")) else name]


def test_compose_gives_each_container_only_its_secrets_and_drops_its_privileges():
    services = compose()["services"]
    for name, service in services.items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert service.get("security_opt") == ["no-new-privileges:true"], name
        if service.get("image", "").split(":")[0] != "govsms":
            continue
        assert "env_file" not in service or all(
            "secret" not in str(f).lower() and ".env" != f for f in service["env_file"]), name
        env = set(service.get("environment") or {})
        assert env & SECRET_NAMES == _secrets_of(name), name
    # The migration's role owns the schema; the others connect as the runtime role.
    migrate = services["migrate"]["environment"]["GOVSMS_DATABASE_MIGRATE_URL"]
    runtime = services["ingest"]["environment"]["GOVSMS_DATABASE_URL"]
    assert migrate.split("@")[0] != runtime.split("@")[0]


# --- Kubernetes --------------------------------------------------------------------------------

def manifests(*, optional: bool = True) -> list[dict]:
    """The kustomization's resources (and, with `optional`, the files it names as optional)."""
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = list(kustomization["resources"])
    if optional:
        files.append("smpp-ingest.yaml")
    docs = []
    for name in files:
        docs += [d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d]
    return docs


def _config() -> dict[str, str]:
    [config] = [d for d in manifests() if d["kind"] == "ConfigMap"]
    return config["data"]


def _pods(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs
            if d["kind"] in ("Deployment", "Job")}


def k8s_processes(docs: list[dict], stub_bin: Path) -> dict[str, Command]:
    """Every Deployment's command as its container runs it."""
    found = {}
    for name, pod in _pods(docs).items():
        if name == "govsms-migrate":
            continue
        [container] = pod["containers"]
        env = {**_config(), **{e["name"]: e.get("value", "") for e in container.get("env", [])},
               **ENV}
        argv = [*container["command"], *container.get("args", [])]
        found[name] = run_argv(argv, env, stub_bin)
    return found


def test_kubernetes_starts_what_govsms_run_starts(stub_bin):
    assert Counter(k8s_processes(manifests(optional=False), stub_bin).values()) == \
        expected_without_optional()
    found = k8s_processes(manifests(), stub_bin)
    assert Counter(found.values()) == expected()
    assert found["govsms-smpp-ingest"] == ("govsms", "smpp-ingest")


def test_kubernetes_places_flower_where_its_service_reaches_it():
    assert _config()["GOVSMS_FLOWER_HOST"] == "0.0.0.0"


def test_kubernetes_pods_are_restricted_and_get_only_their_secrets():
    docs = manifests()
    secrets = {d["metadata"]["name"]: set(d["stringData"]) for d in docs if d["kind"] == "Secret"}
    for name, pod in _pods(docs).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        [container] = pod["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert context["allowPrivilegeEscalation"] is False, name
        got: set[str] = set()
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                got |= secrets[source["secretRef"]["name"]]
        got |= {e["name"] for e in container.get("env", []) if "secretKeyRef" in
                e.get("valueFrom", {})}
        component = name.removeprefix("govsms-")
        component = {"inbound": "worker-inbound", "outbound": "worker-outbound",
                     "bulk": "worker-bulk", "replay": "worker-replay"}.get(component, component)
        assert got & SECRET_NAMES - {"REDIS_PASSWORD"} == _secrets_of(component), name


def test_kubernetes_migrates_with_its_own_database_role():
    docs = manifests()
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    pods = _pods(docs)

    def database_url(pod: dict, name: str = "GOVSMS_DATABASE_URL") -> str:
        [container] = pod["containers"]
        [url] = [secrets[s["secretRef"]["name"]][name]
                 for s in container["envFrom"] if "secretRef" in s
                 and name in secrets[s["secretRef"]["name"]]]
        return url

    assert database_url(pods["govsms-migrate"], "GOVSMS_DATABASE_MIGRATE_URL").split("@")[0] \
        != database_url(pods["govsms-ingest"]).split("@")[0]


def test_kubernetes_has_a_network_policy_for_every_pod():
    docs = manifests()
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] in ({}, {"matchLabels": {}}) and
               set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in policies), \
        "a default deny of ingress and egress"
    # Only the ingest takes connections from outside the namespace's own pods.
    ingress_from_anywhere = [p["metadata"]["name"] for p in policies
                             for rule in p["spec"].get("ingress", [])
                             if any("ipBlock" in peer for peer in rule.get("from", []))]
    assert ingress_from_anywhere == ["govsms-ingest"]


# --- Kannel and the guide ----------------------------------------------------------------------

def test_kannel_lets_the_get_url_answer_carry_its_coding():
    # smsbox fills every get-url answer with a coding (DC_7BIT unless told): without
    # this it logs "Tried to set Coding field, denied" for every MO.
    groups = (DEPLOY / "kannel" / "smsbox.conf").read_text().split("group = ")
    [service] = [g for g in groups if g.startswith("sms-service")]
    assert re.search(r"^accept-x-kannel-headers = true$", service, re.MULTILINE)


def test_kannel_logs_no_text_or_number():
    # At info smsbox logs every MO's text and sender and every reply (codes included); at
    # debug, Kannel's default for a log file, the URLs with the token too.
    groups = (DEPLOY / "kannel" / "smsbox.conf").read_text().split("group = ")
    [smsbox] = [g for g in groups if g.startswith("smsbox")]
    assert int(re.search(r"^log-level = (\d)$", smsbox, re.MULTILINE)[1]) >= 2
    assert "access-log" not in smsbox


def test_the_guide_sets_the_bridge_secret_before_the_first_start():
    text = DOCS.read_text()
    kannel = text[text.index("## Kannel"):]
    assert re.search(r"GOVSMS_BRIDGE_SECRET`.{0,60}\*\*before the\s+first start", kannel, re.S)


def test_the_guide_names_every_process_and_the_setting_that_places_flower():
    text = DOCS.read_text()
    for name in processes(Settings(smpp_receiver=SMPP)):
        assert f"| {name} |" in text, name
    assert "GOVSMS_FLOWER_HOST" in text
    assert "GOVSMS_HTTP_HOST` is the listen address of both" not in text


def test_the_ha_override_sends_every_process_through_the_sentinels_and_pgbouncer():
    from workers.redis_urls import sentinel_target

    base = compose()["services"]
    ha = yaml.safe_load((DEPLOY / "compose.ha.yaml").read_text())["services"]
    sentinels = {name for name, s in ha.items() if "--sentinel" in str(s.get("command"))}
    assert len(sentinels) == 3
    for name, service in base.items():
        if service.get("image", "").split(":")[0] != "govsms" or name == "migrate":
            continue
        env = {**(service.get("environment") or {}), **ha[name]["environment"]}
        target = sentinel_target(env["GOVSMS_REDIS_URL"])
        assert target is not None and {h for h, _ in target.sentinels} == sentinels, name
        Settings(redis_url=env["GOVSMS_REDIS_URL"])  # a URL the settings take
        if "GOVSMS_DATABASE_URL" in (service.get("environment") or {}):
            assert "@pgbouncer:6432/" in env["GOVSMS_DATABASE_URL"], name
            assert env["GOVSMS_DATABASE_TRANSACTION_POOLER"] == "true", name
    for name in sentinels:  # each watches the master the URL names, with a quorum of two
        assert f"sentinel monitor {target.master} redis 6379 2" in ha[name]["command"][-1]
    assert "--replicaof" in ha["redis-replica"]["command"]
    # The migration keeps its direct URL: its advisory lock needs a session.
    assert "migrate" not in ha
    assert "@postgres:5432/" in base["migrate"]["environment"]["GOVSMS_DATABASE_MIGRATE_URL"]


def test_the_kubernetes_ha_overlay_patches_redis_and_postgresql_and_runs_pgbouncer_locked_down():
    from workers.redis_urls import sentinel_target

    folder = DEPLOY / "k8s" / "ha"
    overlay = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert overlay["resources"][0] == "../"
    patched = {d["metadata"]["name"]: d for d in
               yaml.safe_load_all((folder / "config.yaml").read_text())}
    base = {d["metadata"]["name"] for d in manifests()}
    assert set(patched) <= base  # patches of what the base has, nothing new by mistake
    assert patched["govsms-config"]["data"]["GOVSMS_DATABASE_TRANSACTION_POOLER"] == "true"
    target = sentinel_target(patched["govsms-redis"]["stringData"]["GOVSMS_REDIS_URL"])
    assert target is not None and len(target.sentinels) == 3
    assert "@govsms-pgbouncer.govsms.svc:6432/" in \
        patched["govsms-database"]["stringData"]["GOVSMS_DATABASE_URL"]
    docs = list(yaml.safe_load_all((folder / "pgbouncer.yaml").read_text()))
    [pod] = _pods(docs).values()
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6432}]
