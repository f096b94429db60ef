"""CDR bytes written from numpy arrays (`io.cdr`): equal, byte for byte, to an independent serialiser's.

Here the reference is rosbags' CDR serialiser (Jazzy's message definitions, no ROS install needed); the ROS tests
compare with rclpy's own serialiser for the installed distribution (test/ros/test_cdr_rclpy.py).
"""

import numpy as np
import pytest
from test_messages import CUBE_FACES, H36M_17_JOINT_NAMES, make_human, make_result, with_keypoints

from vqhps_ros.errors import InputError
from vqhps_ros.humans import H36M_17_JOINT_SET, MeshTopology
from vqhps_ros.io import messages
from vqhps_ros.io.cdr import CdrTypes, serialize

ROSBAGS_NAMES = {"float64": "double", "float32": "float", "bool": "boolean", "byte": "octet", "char": "uint8"}


@pytest.fixture(scope="module")
def rosbags():
    return messages.rosbags_types()


@pytest.fixture(scope="module")
def cdr(rosbags):
    """CdrTypes reading Jazzy's layouts and constants from the rosbags typestore instead of a ROS install."""
    return CdrTypes(layout=lambda msgtype: rosbags_layout(rosbags.typestore, msgtype), classes=rosbags.get)


def rosbags_layout(typestore, msgtype: str) -> tuple[tuple[str, str], ...]:
    """A rosbags field definition spelt the way rosidl's get_fields_and_field_types() spells it."""
    from rosbags.interfaces import Nodetype

    def spelt(kind, detail) -> str:
        if kind == Nodetype.BASE:
            return ROSBAGS_NAMES.get(detail[0], detail[0])
        if kind == Nodetype.NAME:
            return detail.replace("/msg/", "/")
        (item_kind, item), length = detail
        inner = spelt(item_kind, item)
        return f"{inner}[{length}]" if kind == Nodetype.ARRAY else f"sequence<{inner}>"

    _, fields = typestore.fielddefs[msgtype]
    return tuple((name, spelt(*description)) for name, description in fields)


def same_bytes(rosbags, cdr, build) -> bytes:
    """The message `build(types)` makes, serialised both ways: the bytes must be equal."""
    reference = build(rosbags)
    expected = bytes(rosbags.typestore.serialize_cdr(reference, reference.__msgtype__))
    written = cdr.serialize(build(cdr))
    assert written == expected
    return written


@pytest.fixture
def topology():
    return MeshTopology("box_8", 8, CUBE_FACES, H36M_17_JOINT_SET, H36M_17_JOINT_NAMES, 4, 512, "three_points",
                        ("nose", "left_wrist", "right_wrist"))


@pytest.mark.parametrize("names", [("alice", "bob"), ("a", "bb", "ccc"), ()])
def test_human_mesh_arrays_match(rosbags, cdr, topology, names):
    humans = [with_keypoints(make_human(name, seed)) if seed % 2 else make_human(name, seed)
              for seed, name in enumerate(names)]  # odd string lengths shift every later field's alignment
    same_bytes(rosbags, cdr, lambda types: messages.human_mesh_array(types, make_result(*humans), topology))


def test_marker_arrays_with_meshes_skeletons_labels_and_deletions_match(rosbags, cdr, topology):
    shown = make_result(make_human("alice", 1), make_human("bob", 2))
    left = make_result(make_human("bob", 2))

    def both_arrays(types):
        state = messages.PublishedMarkers()
        return [messages.markers(types, result, topology, state) for result in (shown, left)]

    written = [cdr.serialize(array) for array in both_arrays(cdr)]
    expected = [bytes(rosbags.typestore.serialize_cdr(array, array.__msgtype__)) for array in both_arrays(rosbags)]
    assert written == expected  # the second array updates bob and deletes alice's markers
    assert len(written[0]) > 2 * 24 * 3 * len(CUBE_FACES)  # every triangle corner of both meshes is in


def test_transforms_and_topology_match(rosbags, cdr, topology):
    result = make_result(make_human("alice", 1), make_human("bob", 2))
    same_bytes(rosbags, cdr, lambda types: messages.transforms(types, result))
    same_bytes(rosbags, cdr, lambda types: messages.mesh_topology(types, topology))


# --- the writer's rules on a layout of its own ------------------------------------------------------------------

LAYOUTS = {
    "t/msg/Point": (("x", "double"), ("y", "double"), ("z", "double")),
    "t/msg/Inner": (("flag", "boolean"), ("value", "double")),
    "t/msg/Outer": (("name", "string"), ("inner", "t/Inner"), ("points", "sequence<t/Point>"),
                    ("counts", "sequence<uint16>"), ("pair", "float[2]"), ("items", "sequence<t/Inner, 4>")),
}  # fmt: skip


OWN_TYPES = CdrTypes(layout=LAYOUTS.__getitem__, classes=lambda msgtype: object)


def outer(**fields):
    return OWN_TYPES.make("t/msg/Outer", **fields)


def test_fields_are_aligned_to_their_size_from_the_payload_start_and_defaults_fill_the_rest():
    inner = OWN_TYPES.make("t/msg/Inner", flag=True, value=2.5)
    data = OWN_TYPES.serialize(outer(name="ab", inner=inner, points=np.array([[1.0, 2.0, 3.0]]),
                                     counts=np.array([7, 8], np.uint16)))
    expected = (b"\x00\x01\x00\x00"  # little-endian CDR
                + (3).to_bytes(4, "little") + b"ab\x00"  # name: length with the terminating zero
                + b"\x01" + np.float64(2.5).tobytes()  # inner: flag at 7, its value at 8 needs no padding
                + (1).to_bytes(4, "little") + bytes(4) + np.array([1.0, 2.0, 3.0]).tobytes()  # one point, aligned to 8
                + (2).to_bytes(4, "little") + np.array([7, 8], "<u2").tobytes()  # counts
                + np.zeros(2, "<f4").tobytes()  # pair: fixed array, no length, defaults to zeros
                + (0).to_bytes(4, "little"))  # items: empty sequence, no padding after its length
    assert data == expected


@pytest.mark.parametrize("fields, error", [
    (dict(points=np.zeros((2, 2))), r"expected an \(N, 3\) array of t/msg/Point"),
    (dict(pair=np.zeros(3, np.float32)), "expected 2 items, found 3"),
    (dict(name=5), "expected a string, found int"),
    (dict(items=np.zeros((1, 2))), "an array only stands for all-double"),
])  # fmt: skip
def test_values_that_do_not_fit_the_layout_raise_naming_the_field(fields, error):
    with pytest.raises(InputError, match=error):
        OWN_TYPES.serialize(outer(**fields))


def test_unknown_fields_are_refused_when_the_message_is_made():
    with pytest.raises(InputError, match=r"t/msg/Outer has no field\(s\) \['nmae'\]"):
        outer(nmae="typo")


def test_serialize_reads_messages_it_did_not_make():
    class Inner:  # any object with the fields as attributes, e.g. an rclpy message
        flag, value = False, 1.0

    payload = serialize(outer(inner=Inner()), LAYOUTS.__getitem__)[4:]
    # name "" takes 5 bytes, the flag 1, then 2 bytes of padding put the value at 8
    assert payload[5:8] == b"\x00\x00\x00" and payload[8:16] == np.float64(1.0).tobytes()
