"""The configuration schema: defaults, the shipped YAML file, overrides and the validation messages."""

import dataclasses
import pickle
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from vqhps_ros.config import (
    ConfigError,
    EstimatorConfig,
    ModelConfig,
    flatten,
    load_config,
    parameter_specs,
)
from vqhps_ros.errors import InputError

CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "estimator.yaml"
ROS_TYPES = {"bool": bool, "integer": int, "double": float, "string": str, "string_array": str, "double_array": float}


def write_yaml(tmp_path: Path, document) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def config_error(document) -> str:
    with pytest.raises(ConfigError) as caught:
        EstimatorConfig.from_dict(document)
    return str(caught.value)


def dotted_keys(mapping, prefix=""):
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from dotted_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


# --- defaults and the schema ---

def test_defaults_round_trip_through_dict_and_flatten():
    config = EstimatorConfig()
    assert EstimatorConfig.from_dict(config.to_dict()) == config
    assert EstimatorConfig.from_dict(flatten(config)) == config  # the ROS node reads its parameters back flat
    assert list(flatten(config)) == [spec.name for spec in parameter_specs()]
    assert flatten(config) == {spec.name: list(spec.default) if isinstance(spec.default, tuple) else spec.default
                               for spec in parameter_specs()}
    assert flatten(config)["temporal.enabled"] is True
    assert config.to_dict()["persons"]["class_ids"] == ["person", "0"]
    assert hash(config) == hash(EstimatorConfig())  # frozen all the way down


def test_every_leaf_is_a_documented_ros_parameter():
    for spec in parameter_specs():
        assert spec.description and spec.allowed, spec.name
        item_type = ROS_TYPES[spec.type]
        items = spec.default if spec.type.endswith("_array") else [spec.default]
        assert items and all(type(item) is item_type for item in items), spec.name  # ROS types no [] nor None
        if spec.type in ("integer", "double"):
            assert spec.min is not None, spec.name
        if spec.choices:
            assert spec.default in spec.choices, spec.name


def test_specs_carry_ranges_units_and_choices():
    specs = {spec.name: spec for spec in parameter_specs()}
    assert (specs["persons.min_score"].min, specs["persons.min_score"].max) == (0.0, 1.0)
    assert specs["persons.detection_timeout"].unit == "seconds"
    assert specs["model.max_persons"].type == "integer" and specs["model.max_persons"].max == 64
    assert specs["model.backend"].choices == ("auto", "tensorrt", "onnxruntime", "pytorch")
    assert specs["camera.fallback_intrinsics"].length == 4
    assert specs["persons.min_box_size"].allowed == "a number >= 0 pixels"


def test_engine_choices_match_the_runtime():
    from vqhps_ros.runtime import BACKENDS, PRECISIONS

    specs = {spec.name: spec for spec in parameter_specs()}
    assert specs["model.backend"].choices == ("auto", *BACKENDS)
    assert specs["model.precision"].choices == ("", *PRECISIONS)


def test_importing_the_schema_needs_only_the_standard_library():
    check = "import sys, vqhps_ros.config; print(sorted({'yaml', 'numpy', 'torch'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the shipped file ---

def test_shipped_file_gives_exactly_the_defaults():
    assert load_config(CONFIG_FILE) == EstimatorConfig()


def test_shipped_file_names_every_key_with_its_ros_type():
    document = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    parameters = document["/**"]["ros__parameters"]
    specs = {spec.name: spec for spec in parameter_specs()}
    assert sorted(dotted_keys(parameters)) == sorted(specs)
    for name, spec in specs.items():
        section, key = name.split(".")
        value = parameters[section][key]
        items = value if spec.type.endswith("_array") else [value]
        # ROS types each parameter from its literal: 16 for a double would be refused by the node
        assert all(type(item) is ROS_TYPES[spec.type] for item in items), name


def test_every_key_in_the_shipped_file_has_a_comment():
    lines = [line for line in CONFIG_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    key_lines = [index for index, line in enumerate(lines) if re.match(r"\s*[\w/*]+:", line)]
    sections = len(dataclasses.fields(EstimatorConfig))
    assert len(key_lines) == len(parameter_specs()) + sections + 2  # leaves, sections, node entry, ros__parameters
    for index in key_lines:
        has_comment = "#" in lines[index] or lines[index - 1].lstrip().startswith("#")
        assert index > 0 and has_comment, lines[index]


# --- overrides ---

@pytest.mark.parametrize(
    ("override", "name", "expected"),
    [
        ("outputs.publish_tf=false", "outputs.publish_tf", False),
        ("model.max_persons=16", "model.max_persons", 16),
        ("persons.min_score=0.5", "persons.min_score", 0.5),
        ("persons.min_box_size=20", "persons.min_box_size", 20.0),  # an int widened to the float leaf
        ("camera.fallback_intrinsics=[600,600,320,240]", "camera.fallback_intrinsics", [600.0, 600.0, 320.0, 240.0]),
        ("persons.class_ids=[person,0]", "persons.class_ids", ["person", "0"]),  # 0 stays the text typed
        ("persons.class_ids=['*']", "persons.class_ids", ["*"]),
        ("model.device=cuda:1", "model.device", "cuda:1"),
        ("model.path=/models/vqhps fp16.onnx", "model.path", "/models/vqhps fp16.onnx"),
        ("outputs.body_frame_prefix = person_", "outputs.body_frame_prefix", "person_"),
        ("model.precision=", "model.precision", ""),
        ("model={backend: pytorch}", "model.backend", "pytorch"),
    ],
)
def test_overrides_set_values_of_each_type(override, name, expected):
    values = flatten(load_config(None, [override]))
    assert values[name] == expected and type(values[name]) is type(expected)


def test_overrides_win_over_the_file_and_keep_its_other_values(tmp_path):
    path = write_yaml(tmp_path, {"model": {"backend": "pytorch", "threads": 4}})
    config = load_config(path, ["model.backend=onnxruntime"])
    assert (config.model.backend, config.model.threads) == ("onnxruntime", 4)
    assert config.persons == EstimatorConfig().persons


def test_a_malformed_override_is_reported_with_the_other_problems():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["temporal.enabled", "persons.class_ids=[*]", "model.threads=-1"])
    problems = caught.value.problems
    assert problems[0] == ("override 'temporal.enabled': expected KEY=VALUE with a dotted key, "
                           "e.g. temporal.enabled=false")
    assert problems[1].startswith("override 'persons.class_ids=[*]': '[*]' is not a YAML value")
    assert problems[2] == "model.threads: expected an integer from 0 to 256 threads, found -1"
    assert caught.value.source == "overrides"


# --- validation messages ---

@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"persons": {"min_scor": 0.5}}, "persons.min_scor: unknown key (found 0.5); did you mean persons.min_score?"),
        ({"min_score": 0.5}, "min_score: unknown key (found 0.5); did you mean persons.min_score?"),
        ({"model": {"max_persons": 8.5}}, "model.max_persons: expected an integer from 1 to 64 persons, "
                                          "found 8.5 (a number)"),
        ({"persons": {"min_score": True}}, "persons.min_score: expected a number from 0 to 1, found true (a boolean)"),
        ({"model": {"path": 3}}, 'model.path: expected a string, found 3 (an integer; quote it in YAML to make it '
                                 'a string: "3")'),
        ({"persons": {"class_ids": ["person", 0]}},
         'persons.class_ids: expected a non-empty list of non-empty class ids (strings; "*" = every class), '
         'found [\'person\', 0] (item 1 is an integer; quote it in YAML to make it a string: "0")'),
        ({"persons": {"min_score": 1.5}}, "persons.min_score: expected a number from 0 to 1, found 1.5"),
        ({"persons": {"detection_timeout": float("nan")}},
         "persons.detection_timeout: expected a number from 0 to 10 seconds, found nan"),
        ({"model": {"backend": "cuda"}}, "model.backend: expected one of 'auto', 'tensorrt', 'onnxruntime', "
                                         "'pytorch', found 'cuda'"),
        ({"camera": {"fallback_intrinsics": [600, 600, 320]}},
         "camera.fallback_intrinsics: expected a list of 4 numbers [fx, fy, cx, cy] in pixels with fx > 0 and "
         "fy > 0, or [0, 0, 0, 0] (none), found [600, 600, 320] (3 items)"),
        ({"camera": {"fallback_horizontal_fov_deg": 0.5}},
         "camera.fallback_horizontal_fov_deg: expected 0 (none) or a number from 1 to 179 degrees, found 0.5"),
        ({"model": {"device": "gpu"}}, 'model.device: expected "" (automatic), "cpu", "cuda" or "cuda:N", '
                                       "found 'gpu'"),
        ({"outputs": {"humans_topic": "humans topic"}}, "outputs.humans_topic: expected a ROS topic name such as "
                                                        "\"~/humans\" (in the node's namespace) or \"/humans\", "
                                                        "found 'humans topic'"),
        ({"persons": {"class_ids": []}}, "persons.class_ids: expected a non-empty list of non-empty class ids "
                                         '(strings; "*" = every class), found []'),
        ({"model": 3}, "model: expected a mapping of the section's keys (path, backend, precision, "
                       "engine_cache_dir, max_persons, device, threads, min_keypoints, place_on_keypoints, "
                       "orient_on_keypoints, mirror_average, token_decoding), found 3"),
        ({"model": {"backend": "pytorch"}, "model.backend": "pytorch"},
         "model.backend: given twice (nested and as a dotted key)"),
    ],
)
def test_each_kind_of_problem_names_key_value_and_what_is_allowed(document, message):
    assert config_error(document) == f"invalid configuration: {message}"


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        EstimatorConfig.from_dict({"model": {"backend": "x", "threads": 1.0},
                                   "outputs": {"publish_tf": "yes"}, "temporal": {"confirm_hits": 0}})
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "model.backend", "model.threads", "temporal.confirm_hits", "outputs.publish_tf"]
    assert str(caught.value).startswith("4 problems in the configuration:\n  - model.backend: expected one of")


def test_the_temporal_stage_is_on_by_default_and_can_be_switched_off():
    assert EstimatorConfig().temporal.enabled is True
    assert load_config(None, ["temporal.enabled=false"]).temporal.enabled is False
    assert config_error({"temporal": {"confirm_hits": 0}}) == (
        "invalid configuration: temporal.confirm_hits: expected an integer from 1 to 30 frames, found 0")


def test_values_are_checked_however_a_config_is_built():
    with pytest.raises(ConfigError, match="model.max_persons: expected an integer from 1 to 64 persons, found 0"):
        replace(EstimatorConfig().model, max_persons=0)
    assert ModelConfig(threads=2) == replace(ModelConfig(), threads=2)


def test_config_error_is_an_input_error_and_survives_pickling():
    error = ConfigError(["a: expected x, found y", "b: expected x, found z"], source="f.yaml")
    assert isinstance(error, InputError) and isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.problems, copy.source, str(copy)) == (error.problems, error.source, str(error))


# --- files ---

def test_ros_parameter_file_and_bare_mapping_give_the_same_config(tmp_path):
    parameters = {"model": {"backend": "pytorch"}, "persons": {"class_ids": ["*"]}}
    bare = load_config(write_yaml(tmp_path, parameters))
    assert load_config(write_yaml(tmp_path, {"vqhps": {"ros__parameters": parameters}})) == bare
    assert load_config(write_yaml(tmp_path, {"/robot": {"vqhps": {"ros__parameters": parameters}}})) == bare
    # ROS 2 also accepts dotted parameter names inside ros__parameters
    dotted = {"/**": {"ros__parameters": {"model.backend": "pytorch", "persons.class_ids": ["*"]}}}
    assert load_config(write_yaml(tmp_path, dotted)) == bare
    assert (bare.model.backend, bare.persons.class_ids) == ("pytorch", ("*",))


def test_a_file_with_two_node_entries_is_refused(tmp_path):
    path = write_yaml(tmp_path, {"a": {"ros__parameters": {}}, "b": {"ros__parameters": {}}})
    with pytest.raises(ConfigError, match=r"must hold one node entry with ros__parameters; found 2 entries at the "
                                          r"top level: 'a', 'b'"):
        load_config(path)


def test_an_empty_file_gives_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n", encoding="utf-8")
    assert load_config(path) == EstimatorConfig()
    assert load_config(write_yaml(tmp_path, {"/**": {"ros__parameters": {"model": None}}})) == EstimatorConfig()


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = write_yaml(tmp_path, ["model", "persons"])
    with pytest.raises(ConfigError, match=f"the configuration file {re.escape(str(path))} must hold a mapping .* "
                                          "found a list"):
        load_config(path)


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "estimator.yaml"
    with pytest.raises(ConfigError, match=f"the configuration file {re.escape(str(path))} does not exist"):
        load_config(path)


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: {backend: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{re.escape(str(path))} is not valid YAML"):
        load_config(path)


def test_problems_in_a_file_name_the_file(tmp_path):
    path = write_yaml(tmp_path, {"/**": {"ros__parameters": {"persons": {"max_persons": 100}}}})
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["model.threads=2"])
    assert str(caught.value) == (f"invalid configuration ({path} + overrides): persons.max_persons: expected an "
                                 "integer from 1 to 64 persons, found 100")
