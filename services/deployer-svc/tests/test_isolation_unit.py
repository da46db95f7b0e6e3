"""What the local backend decides about isolating a hub's users, without making accounts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from deployer_svc.backends.base import BackendError, HubDeployment, Roster
from deployer_svc.backends.cgroups import CgroupHost
from deployer_svc.backends.isolation import (
    NO_ROOT,
    account_name,
    admit,
    closed_folder,
    decide,
    first_closed_ancestor,
    hub_prefix,
)
from deployer_svc.backends.local import LocalBackend
from deployer_svc.backends.local_config import HubLayout, Ports, SeparateAccounts, render_config
from jhaas_launcher.testing import sample_spec
from jhaas_schemas.hubnames import hub_username

pytestmark = pytest.mark.unit

ROSTER = Roster(
    leader=hub_username("lea"),
    tutors=frozenset({hub_username("tom")}),
    participants=frozenset({hub_username("ann"), hub_username("ben")}),
)


def test_without_root_only_the_leader_is_let_in_and_the_warning_says_why() -> None:
    plan = decide(wanted=True, is_root=False)
    assert not plan.accounts and not plan.limits
    assert plan.warnings == (
        "participants cannot sign in: the deployer does not run as root, so their servers "
        "could not be isolated from each other",
    )
    assert plan.warnings == (NO_ROOT,)
    assert admit(ROSTER, plan, wanted=True) == Roster(leader=ROSTER.leader)


def test_a_closed_folder_above_the_homes_admits_only_the_leader_too() -> None:
    plan = decide(wanted=True, is_root=True, closed=Path("/root"))
    assert plan.warnings == (closed_folder(Path("/root")),)
    assert admit(ROSTER, plan, wanted=True) == Roster(leader=ROSTER.leader)


def test_with_root_everyone_is_let_in_and_a_refused_limit_is_said() -> None:
    full = decide(wanted=True, is_root=True)
    assert full.complete and full.warnings == ()
    assert admit(ROSTER, full, wanted=True) == ROSTER
    partial = decide(wanted=True, is_root=True, cgroup_problem="read-only file system")
    assert partial.accounts and not partial.limits
    assert partial.warnings == (
        "memory and CPU limits are not enforced by the kernel: read-only file system",
    )
    assert admit(ROSTER, partial, wanted=True) == ROSTER


def test_account_names_are_unique_per_hub_and_fit_linux() -> None:
    user = hub_username("the-same-person")
    names = {
        account_name(hub_prefix(inst, dep), user)
        for inst, dep in [("a", "d1"), ("a", "d2"), ("b", "d1")]
    }
    assert len(names) == 3
    assert all(name is not None and len(name) <= 32 for name in names)
    prefix = hub_prefix("a", "d1")
    for bad in ["", "-r", "Root", "a/b", "x" * 22, "name with space", "../etc", "ü"]:
        assert account_name(prefix, bad) is None, bad


def test_only_folders_below_the_data_folder_are_the_deployers_to_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "hubs").mkdir(parents=True)
    os.chmod(tmp_path, 0o711)  # noqa: S103 - what the deployer does to the path
    os.chmod(data, 0o700)
    # The data folder (0700) is not in the way; pytest's own folders above may be.
    closed = first_closed_ancestor(data / "hubs", own_from=data)
    assert closed is None or closed in tmp_path.parents
    os.chmod(tmp_path, 0o700)
    assert first_closed_ancestor(data / "hubs", own_from=data) == tmp_path


def test_required_isolation_fails_the_deploy_for_good_and_starts_nothing(tmp_path: Path) -> None:
    backend = LocalBackend(
        tmp_path / "hubs",
        isolate=True,
        require_isolation=True,
        singleuser_venv=tmp_path / "no-venv",
    )
    hub = HubDeployment(
        deployment_id="dep-1",
        request_id="r",
        slug="c",
        configuration=sample_spec(),
        api_token="t" * 64,
    )
    with pytest.raises(BackendError) as raised:
        asyncio.run(backend.deploy(hub))
    assert raised.value.temporary is False
    assert "could not be isolated" in raised.value.reason
    assert not (tmp_path / "hubs" / "dep-1").exists()


def test_isolated_servers_get_their_own_accounts_venv_and_no_inherited_env(
    tmp_path: Path,
) -> None:
    accounts = SeparateAccounts(
        account_prefix="jh12345678-",
        singleuser_bin=Path("/opt/jhaas/singleuser/bin"),
        cgroup_procs=("/sys/fs/cgroup/memory/jhaas/{account}/cgroup.procs",),
    )
    hub = HubDeployment(
        deployment_id="dep-1", request_id="r", slug="c", configuration=sample_spec(), api_token="t"
    )
    files = render_config(
        hub,
        HubLayout(tmp_path),
        Ports(public=1, hub=2, proxy_api=3),
        bin_dir=Path("/root/.venv/bin"),
        python="/root/.venv/bin/python",
        as_root=True,
        accounts=accounts,
    )
    config = json.loads(files.settings)["config"]
    assert config["JupyterHub"]["spawner_class"] == "jhaas-isolated"
    assert config["IsolatedSpawner"]["account_prefix"] == "jh12345678-"
    spawner = config["Spawner"]
    assert spawner["cmd"] == ["/opt/jhaas/singleuser/bin/jupyterhub-singleuser"]
    assert spawner["args"] == []  # never --allow-root: the server is not root
    assert "/root" not in spawner["environment"]["PATH"]
    assert spawner["env_keep"] == ["LANG", "LC_ALL", "LC_CTYPE", "TZ"]


def test_cgroup_v2_files_get_the_approved_limits(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    (tmp_path / "jhaas").mkdir()
    (tmp_path / "jhaas" / "cgroup.subtree_control").write_text("")
    host = CgroupHost(tmp_path)
    assert host.version == 2
    host.create("acct", 512 * 1024**2, 0.5)
    folder = tmp_path / "jhaas" / "acct"
    assert (folder / "memory.max").read_text() == str(512 * 1024**2)
    assert (folder / "cpu.max").read_text() == "50000 100000"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert host.procs_templates() == [f"{tmp_path}/jhaas/{{account}}/cgroup.procs"]


def test_cgroup_v1_layout_and_a_refusal_in_words(tmp_path: Path) -> None:
    host = CgroupHost(tmp_path)
    assert host.version == 1
    assert host.procs_files("acct") == [
        f"{tmp_path}/memory/jhaas/acct/cgroup.procs",
        f"{tmp_path}/cpu/jhaas/acct/cgroup.procs",
    ]
    (tmp_path / "memory").write_text("not a folder")  # as if the controller were absent
    problem = host.probe()
    assert problem is not None and problem.startswith("this host refused cgroup v1 limits")
