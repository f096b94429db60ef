"""ROS parameters from the one configuration schema: declared with description and range, read back validated.

Every leaf of `vqhps_ros.config` becomes a parameter of the same dotted name ("persons.min_score"), typed as the
schema says, with its description, unit and allowed values in the descriptor and numeric ranges as
Integer/FloatingPointRange (so `ros2 param describe` shows them and rclpy refuses values out of range). A parameter
file (config/estimator.yaml) sets them; `read_config` turns them back into an `EstimatorConfig`, whose validation
names the parameter, the value and what is allowed.
"""

from __future__ import annotations

from ..config import ConfigError, EstimatorConfig, ParameterSpec, parameter_specs


def declare_parameters(node) -> dict[str, str]:
    """Declare every schema parameter on `node`; returns the problems of refused overrides (wrong type, out of
    range) by parameter name, each naming the parameter: those parameters keep their default and `configure`
    reports the problems, so a bad parameter file fails the transition with a message instead of killing the node
    at start. The node drops a problem once its parameter is set to an accepted value."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    problems = {}
    for spec in parameter_specs():
        if node.has_parameter(spec.name):
            continue
        descriptor = parameter_descriptor(spec)
        try:
            node.declare_parameter(spec.name, _ros_default(spec), descriptor)
        except (InvalidParameterTypeException, InvalidParameterValueException) as error:
            problems[spec.name] = f"{spec.name}: {error} (expected {spec.allowed})"
            node.declare_parameter(spec.name, _ros_default(spec), descriptor, ignore_override=True)
    return problems


def read_config(node, problems: list[str] = ()) -> EstimatorConfig:
    """The node's parameters as a validated EstimatorConfig; ConfigError lists every problem, with those found
    when the parameters were declared."""
    source = f"parameters of {node.get_fully_qualified_name()}"
    if problems:
        raise ConfigError(list(problems), source)
    values = {spec.name: _plain(node.get_parameter(spec.name).value) for spec in parameter_specs()}
    return EstimatorConfig.from_dict(values, source=source)


def parameter_descriptor(spec: ParameterSpec):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    types = {"bool": ParameterType.PARAMETER_BOOL, "integer": ParameterType.PARAMETER_INTEGER,
             "double": ParameterType.PARAMETER_DOUBLE, "string": ParameterType.PARAMETER_STRING,
             "string_array": ParameterType.PARAMETER_STRING_ARRAY,
             "double_array": ParameterType.PARAMETER_DOUBLE_ARRAY}
    unit = f" [{spec.unit}]" if spec.unit else ""
    descriptor = ParameterDescriptor(name=spec.name, type=types[spec.type], description=spec.description + unit,
                                     additional_constraints=f"allowed: {spec.allowed}")
    if spec.type == "integer" and (spec.min is not None or spec.max is not None):
        descriptor.integer_range = [IntegerRange(from_value=int(_bound(spec.min, -(2**63))),
                                                 to_value=int(_bound(spec.max, 2**63 - 1)), step=0)]
    if spec.type == "double" and (spec.min is not None or spec.max is not None):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(_bound(spec.min, -1e308)),
                                                              to_value=float(_bound(spec.max, 1e308)), step=0.0)]
    return descriptor


def _bound(value, fallback):
    return fallback if value is None else value


def _ros_default(spec: ParameterSpec):
    return list(spec.default) if isinstance(spec.default, tuple) else spec.default


def _plain(value):
    """rclpy returns array parameters as array.array or lists; the schema reads lists."""
    return list(value) if hasattr(value, "__len__") and not isinstance(value, str) else value
