"""The package's layers (scripts/import_graph.py): imports flow one way, from cli down to the
foundation, with no cycles; every top-level package or module has its place in the layering."""

from __future__ import annotations

from tests.support.scripts import load_script


def import_graph():
    return load_script("import_graph")


def test_no_import_cycles():
    graph = import_graph()
    assert graph.cycles(graph.graph()) == []


def test_no_upward_imports():
    graph = import_graph()
    assert graph.upward(graph.graph()) == []


def test_every_package_has_a_layer():
    graph = import_graph()
    names = {p.stem for p in graph.ROOT.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in graph.ROOT.glob("*/__init__.py")
    }
    assert sorted(names - set(graph.LAYERS)) == []


def test_the_checker_sees_an_upward_import_and_a_cycle():
    """The checks above could pass on a graph the parser got wrong: feed them known bad edges."""
    graph = import_graph()
    edges = {
        "bigmodel_cli.models.cnn": {"bigmodel_cli.commands.train"},
        "bigmodel_cli.commands.train": set(),
        "bigmodel_cli.data.a": {"bigmodel_cli.data.b"},
        "bigmodel_cli.data.b": {"bigmodel_cli.data.a"},
    }
    assert graph.upward(edges) == [("bigmodel_cli.models.cnn", "bigmodel_cli.commands.train")]
    assert graph.cycles(edges) == [["bigmodel_cli.data.a", "bigmodel_cli.data.b"]]
    real = graph.graph()
    assert "bigmodel_cli.commands.job" in real["bigmodel_cli.commands.train"]  # from-imports are edges
    assert "bigmodel_cli.commands.app" in real["bigmodel_cli.cli.main"]  # so are imports inside functions
