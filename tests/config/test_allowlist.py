"""The `_target_` allowlist: checked on what a target resolves to, before anything is instantiated."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from omegaconf import OmegaConf

from bigmodel_cli.config.catalogue import conf_dir
from bigmodel_cli.config.instantiate import check_targets, instantiate, is_allowed
from bigmodel_cli.errors import UserError
from bigmodel_cli.training import strategies
from tests.conftest import FAST

# (spelled target, what it resolves to; None: it cannot even be located through that module)
WALKAROUNDS = [
    ("torch.nn.functional.torch.load", "torch.serialization.load"),
    ("torch.nn.modules.module.torch.load", "torch.serialization.load"),
    ("bigmodel_cli.runs.records.subprocess.run", "subprocess.run"),
    ("bigmodel_cli.data.text_sources.json.loads", "json.loads"),
    ("torchvision.transforms.v2.functional.torch.load", None),
    ("torchvision.transforms.v2._geometry.torch.load", "torch.serialization.load"),
    ("pytorch_lightning.callbacks.model_checkpoint.os.system", "posix.system"),
    ("torch.optim.lr_scheduler.partial", "functools.partial"),
    ("torch.nn.Module.__init__.__globals__", None),
]


@pytest.mark.parametrize("target", ["os.system", "subprocess.run", "subprocess.Popen", "builtins.eval", "torch.load"])
def test_allowlist_refuses_dangerous_targets(target):
    with pytest.raises(UserError, match=f"refusing to instantiate.*{target}"):
        check_targets({"callbacks": {"evil": {"_target_": target}}})


@pytest.fixture
def my_pkg(tmp_path, monkeypatch):
    """An importable user package my_pkg (and a look-alike my_pkgx) with a module class and a function."""
    for name in ("my_pkg", "my_pkgx"):
        package = tmp_path / "pkgs" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "models.py").write_text(
            "import os\n\nclass Net:\n    def __init__(self, width=1):\n        self.width = width\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("my_pkg", "my_pkgx")]:
        sys.modules.pop(name)


def test_allowlist_is_user_extendable(my_pkg):
    assert not is_allowed("my_pkg.models.Net")
    assert is_allowed("my_pkg.models.Net", ("my_pkg.",))
    assert is_allowed("my_pkg.models.Net", ("my_pkg",))
    assert not is_allowed("my_pkg.models.os.system", ("my_pkg.",)), "an allowed user module is no way around"
    with pytest.raises(UserError, match="refusing"):
        check_targets({"model": {"_target_": "my_pkg.models.Net"}})
    check_targets({"model": {"_target_": "my_pkg.models.Net"}}, ["my_pkg."])
    assert instantiate({"_target_": "my_pkg.models.Net", "width": 3}, ["my_pkg."]).width == 3


@pytest.mark.parametrize(("target", "resolves_to"), WALKAROUNDS, ids=[t for t, _ in WALKAROUNDS])
def test_allowlist_checks_what_a_target_resolves_to(target, resolves_to):
    """Hydra's _locate follows attributes, so a name spelled under an allowed module can reach any
    module that one imports: the check is on the located object's own module and name."""
    assert not is_allowed(target)
    with pytest.raises(UserError) as refused:
        check_targets({"callbacks": {"x": {"_target_": target}}})
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"refusing to instantiate callbacks.x._target_={target}")
    assert "(allowed prefixes: bigmodel_cli., hydra_plugins.bigmodel_sweepers., torch.nn., " in line
    if resolves_to:
        assert f"resolves to {resolves_to}, which is not under an allowed prefix" in line
        assert line.endswith(
            "fix: if you trust it, add its module with allow_targets=[<prefix>], here "
            f"allow_targets=[{resolves_to.rsplit('.', 1)[0]}.]"
        )
    else:  # allow_targets would not help: nothing importable and nameable is there
        assert line.endswith(
            "fix: check the spelling: a _target_ names an importable class or function, e.g. torch.nn.Linear"
        )


def test_allowlist_accepts_what_allowed_names_resolve_to():
    assert is_allowed("pytorch_lightning.Trainer")  # pytorch_lightning.trainer.trainer.Trainer
    assert is_allowed("torch.nn.Linear") and is_allowed("torch.optim.AdamW")
    assert is_allowed("pytorch_lightning.plugins.environments.SLURMEnvironment")  # lightning_fabric's
    assert not is_allowed("torch.nn.functional.conv2d"), "a builtin has no module of its own to check"


def test_allowlist_does_not_import_other_packages(monkeypatch):
    imported = []
    import hydra._internal.utils as hydra_utils

    real = hydra_utils._locate
    monkeypatch.setattr(hydra_utils, "_locate", lambda path: imported.append(path) or real(path))
    for target in ("os.system", "antigravity.fly", "builtins.eval", "my_pkgx.models.Net"):
        assert not is_allowed(target, ("my_pkg",))
    assert imported == [] and "antigravity" not in sys.modules


def test_allowlist_prefixes_end_at_a_module_boundary(my_pkg, monkeypatch):
    """`torch.nn` allows torch.nn.modules..., not a look-alike torch.nnx; `my_pkg` not my_pkgx."""
    lookalike = types.ModuleType("torch.nnx")

    def load(*args, **kwargs):
        raise AssertionError("called")

    load.__module__, load.__qualname__ = "torch.nnx", "load"
    lookalike.load = load
    monkeypatch.setitem(sys.modules, "torch.nnx", lookalike)
    monkeypatch.setattr(torch, "nnx", lookalike, raising=False)
    assert not is_allowed("torch.nnx.load")
    assert not is_allowed("torch.nnx.load", ("torch.nn",))
    assert is_allowed("torch.nn.Linear", ("torch.nn",))
    assert not is_allowed("my_pkgx.models.Net", ("my_pkg",))
    assert is_allowed("my_pkgx.models.Net", ("my_pkgx.",))


def test_allowlist_checks_interpolated_targets(monkeypatch):
    monkeypatch.setenv("BIGMODEL_TEST_TARGET", "torch.nn.functional.torch.load")
    cases = {
        "env": {"m": {"_target_": "${oc.env:BIGMODEL_TEST_TARGET}"}},
        "key": {"name": "bigmodel_cli.runs.records.subprocess.run", "m": {"_target_": "${name}"}},
        "node": {"evil": {"_target_": "os.system"}, "trainer": {"strategy": "${evil}"}},
        "decoded": {"trainer": {"strategy": "${oc.decode:'{_target_: torch.nn.functional.torch.load}'}"}},
    }
    with pytest.raises(
        UserError,
        match=r"m\._target_=\$\{oc.env:BIGMODEL_TEST_TARGET\} \(interpolated: "
        r"torch\.nn\.functional\.torch\.load\): it resolves to torch\.serialization\.load",
    ):
        check_targets(cases["env"])
    with pytest.raises(
        UserError,
        match=r"m\._target_=\$\{name\} \(interpolated: bigmodel_cli.runs.records.subprocess.run\): "
        r"it resolves to subprocess\.run",
    ):
        check_targets(cases["key"])
    # Checked as the node that is instantiated: the interpolation is followed into what it resolves to.
    with pytest.raises(UserError, match=r"refusing to instantiate strategy\._target_=os\.system"):
        check_targets(OmegaConf.create(cases["node"]).trainer)
    with pytest.raises(
        UserError,
        match=r"trainer\.strategy\._target_=torch.nn.functional.torch.load: "
        r"it resolves to torch\.serialization\.load",
    ):
        check_targets(cases["decoded"])
    monkeypatch.setenv("BIGMODEL_TEST_TARGET", "torch.nn.Linear")
    assert instantiate(cases["env"]["m"] | {"in_features": 2, "out_features": 1}).out_features == 1


def test_unresolvable_interpolated_target_is_refused(monkeypatch):
    monkeypatch.delenv("BIGMODEL_UNSET_TARGET", raising=False)
    with pytest.raises(UserError) as refused:
        check_targets({"callbacks": {"x": {"_target_": "${oc.env:BIGMODEL_UNSET_TARGET}"}}})
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(
        "refusing to instantiate callbacks.x._target_=${oc.env:BIGMODEL_UNSET_TARGET}: "
        "the interpolation cannot be resolved to check it"
    )
    assert "fix: write the _target_ as a plain dotted name" in line


def test_every_target_in_conf_is_allowed():
    """Every `_target_` the shipped config tree spells (no composition needed) passes the check."""
    import yaml

    def targets(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_":
                    yield value
                else:
                    yield from targets(value)
        elif isinstance(node, list):
            for value in node:
                yield from targets(value)

    found = {}
    for path in sorted(conf_dir().rglob("*.yaml")):
        for target in targets(yaml.safe_load(path.read_text())):
            found[target] = path.relative_to(conf_dir())
    assert len(found) > 40, found
    refused = {target: str(path) for target, path in found.items() if not is_allowed(target)}
    assert refused == {}
    fsdp_yaml = yaml.safe_load((conf_dir() / "accelerator" / "fsdp.yaml").read_text())
    assert strategies.wrap_classes(fsdp_yaml["strategy"]["auto_wrap"])


def test_fsdp_auto_wrap_names_are_checked_by_what_they_resolve_to():
    from bigmodel_cli.models.transformer import Block

    with pytest.raises(
        UserError,
        match=r"auto_wrap: torch\.nn\.modules\.module\.torch\.Tensor: it resolves to "
        r"torch\.Tensor, which is not under an allowed prefix.*allow_targets=\[torch\.\]",
    ):
        strategies.fsdp(auto_wrap=["torch.nn.modules.module.torch.Tensor"])
    assert strategies.wrap_classes(["bigmodel_cli.models.transformer.Block"]) == {Block}
    node = {
        "strategy": {
            "_target_": "bigmodel_cli.training.strategies.fsdp",
            "auto_wrap": ["torch.nn.functional.torch.load"],
        }
    }
    with pytest.raises(
        UserError,
        match=r"strategy\.auto_wrap: torch\.nn\.functional\.torch\.load: it resolves to "
        r"torch\.serialization\.load",
    ):
        check_targets(node)


def test_cli_refuses_target_before_instantiating_anything(cli, in_tmp_cwd):
    code, _, err = cli("train", *FAST, "+callbacks.evil._target_=os.system", "+callbacks.evil.command=touch pwned")
    assert code == 2 and "refusing to instantiate callbacks.evil._target_=os.system" in err
    assert not (in_tmp_cwd / "pwned").exists()


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_cli_refuses_an_attribute_walkaround_before_instantiating_anything(cli, monkeypatch):
    import hydra.utils

    instantiated = []
    real = hydra.utils.instantiate
    monkeypatch.setattr(hydra.utils, "instantiate", lambda node, **kw: instantiated.append(node) or real(node, **kw))
    code, _, err = cli("train", *FAST, "+callbacks.x._target_=torch.nn.functional.torch.load")
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(
        "error: refusing to instantiate callbacks.x._target_=torch.nn.functional.torch.load: "
        "it resolves to torch.serialization.load"
    )
    assert "allow_targets=[torch.serialization.]" in line
    # Only Hydra's own run callback (run.json) was built: no datamodule, model, trainer or callback.
    assert [node.get("_target_") for node in instantiated] == ["bigmodel_cli.runs.records.RunRecorder"]


def test_cli_checks_fsdp_auto_wrap_names(cli):
    code, _, err = cli(
        "train", *FAST, "accelerator=fsdp", "trainer.strategy.auto_wrap=[torch.nn.modules.module.torch.Tensor]"
    )
    assert code == 2
    assert (
        "trainer.strategy.auto_wrap: torch.nn.modules.module.torch.Tensor: it resolves to torch.Tensor,"
        in one_error_line(err)
    )
