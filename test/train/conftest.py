"""The training tools in tools/ loaded as modules, for their tests."""

import importlib.util
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.fixture(scope="module")
def load_tool():
    """load_tool(name) -> the module tools/<name>.py, registered while the test module runs (spawned workers and
    dataclasses look it up by name)."""
    loaded = []

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        loaded.append(name)
        return module

    yield load
    for name in loaded:
        del sys.modules[name]
