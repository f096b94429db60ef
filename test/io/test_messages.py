"""Message builders against the real .msg definitions: CDR and bag round trips, markers, TF, guards."""

import array
import re
import shutil
import sys
import types as python_types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.body.joints import H36M_17_JOINT_NAMES
from vqhps_ros.errors import InputError
from vqhps_ros.humans import H36M_17_BONES, H36M_17_JOINT_SET, BodyKeypoints, FrameResult, Human, MeshTopology
from vqhps_ros.io import (
    PublishedMarkers,
    RclpyTypes,
    find_msg_dir,
    header,
    human_mesh,
    human_mesh_array,
    markers,
    mesh_topology,
    quaternion_from_matrix,
    region_of_interest,
    rosbags_types,
    track_color,
    transforms,
)

STAMP_NS = 1_700_000_123_456_789
FRAME_ID = "camera_color_optical_frame"
IMAGE_SIZE = (480, 640)  # height, width
CUBE_CORNERS = np.array([[x, y, z] for x in (-0.2, 0.2) for y in (-0.9, 0.9) for z in (-0.1, 0.1)])
CUBE_FACES = np.array([  # two counter-clockwise triangles per side of the box above
    [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
    [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
])  # fmt: skip
MARKER_KINDS = ("mesh", "skeleton", "label")


@pytest.fixture(scope="module")
def types():
    return rosbags_types()


@pytest.fixture
def topology():
    return MeshTopology(topology_id="box_8", num_vertices=8, faces=CUBE_FACES, joint_set=H36M_17_JOINT_SET,
                        joint_names=H36M_17_JOINT_NAMES, num_tokens=4, codebook_size=512)


def make_human(track_id: str, seed: int) -> Human:
    rng = np.random.default_rng(seed)
    rotation = Rotation.random(random_state=seed).as_matrix()
    root = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(2, 5)])
    joints = (root + rng.normal(scale=0.3, size=(17, 3))).astype(np.float32)
    joints_2d = rng.uniform(0, 640, size=(17, 2)).astype(np.float32)
    joints_2d[16] = np.nan  # a joint behind the camera
    return Human(
        id=track_id, score=float(rng.uniform(0.5, 1)), box=np.array([100.25, -20.5, 200.5, 300.0]),
        tokens=rng.integers(0, 512, size=4), token_confidence=rng.uniform(size=4).astype(np.float32),
        vertices=(CUBE_CORNERS @ rotation.T + root).astype(np.float32), joints=joints, joints_2d=joints_2d,
        vertices_2d=np.zeros((8, 2), np.float32), root_position=root, root_rotation=rotation,
        crop_camera=np.array([0.9, 0.0, 0.1]), translation=root)


def make_result(*humans: Human, stamp_ns: int = STAMP_NS) -> FrameResult:
    return FrameResult(stamp_ns=stamp_ns, frame_id=FRAME_ID, image_size=IMAGE_SIZE, humans=list(humans))


def round_trip(types, message):
    msgtype = message.__msgtype__
    return types.typestore.deserialize_cdr(types.typestore.serialize_cdr(message, msgtype), msgtype)


def assert_human_mesh_matches(message, human: Human, topology: MeshTopology):
    assert message.id == human.id and message.topology_id == topology.topology_id
    assert message.confidence == pytest.approx(human.score, rel=1e-7)
    assert message.joint_set == H36M_17_JOINT_SET
    np.testing.assert_array_equal(message.joints.reshape(-1, 3), human.joints)
    expected_2d = np.where(np.isnan(human.joints_2d), -1.0, human.joints_2d).astype(np.float32)
    np.testing.assert_array_equal(message.joints_2d.reshape(-1, 2), expected_2d)
    np.testing.assert_array_equal(message.vertices.reshape(-1, 3), human.vertices)
    assert message.tokens.dtype == np.uint16
    np.testing.assert_array_equal(message.tokens, human.tokens)
    np.testing.assert_array_equal(message.token_confidence, human.token_confidence)
    position = message.root_pose.position
    np.testing.assert_allclose([position.x, position.y, position.z], human.root_position, rtol=0, atol=0)
    orientation = message.root_pose.orientation
    quaternion = [orientation.x, orientation.y, orientation.z, orientation.w]
    np.testing.assert_allclose(Rotation.from_quat(quaternion).as_matrix(), human.root_rotation, atol=1e-12)


# --- the package's messages round trip through CDR ------------------------------------------------------------


def test_human_mesh_array_round_trips_through_cdr(types, topology):
    humans = make_human("alice", 1), make_human("bob", 2)
    decoded = round_trip(types, human_mesh_array(types, make_result(*humans), topology))
    assert decoded.header.stamp.sec == 1_700_000 and decoded.header.stamp.nanosec == 123_456_789
    assert decoded.header.frame_id == FRAME_ID
    assert len(decoded.humans) == 2
    for message, human in zip(decoded.humans, humans, strict=True):
        assert_human_mesh_matches(message, human, topology)
        roi = message.roi  # box x 100.25..300.75, y -20.5..279.5 -> whole pixels, clipped at the top
        assert (roi.x_offset, roi.y_offset, roi.width, roi.height, roi.do_rectify) == (100, 0, 201, 280, False)


def test_mesh_topology_round_trips_through_cdr(types, topology):
    decoded = round_trip(types, mesh_topology(types, topology))
    assert decoded.topology_id == "box_8" and decoded.num_vertices == 8
    assert decoded.faces.dtype == np.uint32
    np.testing.assert_array_equal(decoded.faces.reshape(-1, 3), CUBE_FACES)
    assert decoded.joint_set == H36M_17_JOINT_SET and decoded.joint_names == list(H36M_17_JOINT_NAMES)
    assert (decoded.num_tokens, decoded.codebook_size) == (4, 512)


def test_empty_frame_and_person_without_joints(types, topology):
    assert round_trip(types, human_mesh_array(types, make_result(), topology)).humans == []
    person = replace(make_human("alice", 1), joints=None, joints_2d=None)
    decoded = round_trip(types, human_mesh(types, person, topology, IMAGE_SIZE))
    assert decoded.joints.size == 0 and decoded.joints_2d.size == 0 and decoded.vertices.size == 24


KEYPOINT_NAMES = ("nose", "left_wrist", "right_wrist")


def with_keypoints(human: Human, seed: int = 3) -> Human:
    rng = np.random.default_rng(seed)
    keypoints = BodyKeypoints("three_points", rng.uniform(0, 480, (3, 2)).astype(np.float32),
                              rng.uniform(size=3).astype(np.float32))
    return replace(human, keypoints=keypoints)


def test_keypoints_travel_as_u_v_visibility_rows_named_by_the_topology(types, topology):
    topology = replace(topology, keypoint_set="three_points", keypoint_names=KEYPOINT_NAMES)
    person, plain = with_keypoints(make_human("alice", 1)), make_human("bob", 2)
    decoded = round_trip(types, human_mesh_array(types, make_result(person, plain), topology))
    first, second = decoded.humans
    assert first.keypoint_set == "three_points"
    rows = first.keypoints_2d.reshape(-1, 3)
    np.testing.assert_array_equal(rows[:, :2], person.keypoints.points)
    np.testing.assert_array_equal(rows[:, 2], person.keypoints.visibility)
    assert second.keypoint_set == "" and second.keypoints_2d.size == 0  # a person without keypoints
    decoded_topology = round_trip(types, mesh_topology(types, topology))
    assert decoded_topology.keypoint_set == "three_points"
    assert decoded_topology.keypoint_names == list(KEYPOINT_NAMES)


@pytest.mark.parametrize("change, message", [
    (dict(keypoint_set="other"), "keypoints are 'other', the topology names 'three_points'"),
    (dict(points=np.zeros((2, 2), np.float32)), r"keypoints.points should have shape \(3, 2\)"),
    (dict(visibility=np.array([0.5, np.nan, 1.0], np.float32)), "keypoints.visibility holds NaN"),
])  # fmt: skip
def test_keypoints_that_do_not_fit_the_topology_raise(types, topology, change, message):
    topology = replace(topology, keypoint_set="three_points", keypoint_names=KEYPOINT_NAMES)
    person = with_keypoints(make_human("alice", 1))
    person = replace(person, keypoints=replace(person.keypoints, **change))
    with pytest.raises(InputError, match=message):
        human_mesh(types, person, topology, IMAGE_SIZE)


def test_publish_vertices_false_leaves_vertices_empty_even_when_they_are_unusable(types, topology):
    person = make_human("alice", 1)
    person.vertices = np.full((8, 3), np.nan, np.float32)
    decoded = round_trip(types, human_mesh(types, person, topology, IMAGE_SIZE, publish_vertices=False))
    assert decoded.vertices.size == 0 and decoded.joints.size == 17 * 3


# --- the registered definitions are the .msg files ------------------------------------------------------------

EXPECTED_FIELDS = {
    "HumanMeshArray": [("std_msgs/Header", "header"), ("HumanMesh[]", "humans")],
    "HumanMesh": [
        ("string", "id"), ("float32", "confidence"), ("sensor_msgs/RegionOfInterest", "roi"),
        ("geometry_msgs/Pose", "root_pose"), ("string", "joint_set"), ("float32[]", "joints"),
        ("float32[]", "joints_2d"), ("string", "keypoint_set"), ("float32[]", "keypoints_2d"),
        ("float32[]", "vertices"), ("uint16[]", "tokens"),
        ("float32[]", "token_confidence"), ("string", "topology_id"), ("bool", "refined"),
    ],
    "MeshTopology": [
        ("string", "topology_id"), ("uint32", "num_vertices"), ("uint32[]", "faces"), ("string", "joint_set"),
        ("string[]", "joint_names"), ("string", "keypoint_set"), ("string[]", "keypoint_names"),
        ("uint16", "num_tokens"), ("uint16", "codebook_size"),
    ],
}  # fmt: skip


def msg_fields(text: str) -> list[tuple[str, str]]:
    """(type, name) of each field of a .msg text, comments and blank lines dropped."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [tuple(line.split()[:2]) for line in lines if line]


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_msg_files_hold_exactly_the_designed_fields_each_documented(name):
    text = (find_msg_dir() / f"{name}.msg").read_text()
    assert msg_fields(text) == EXPECTED_FIELDS[name]
    # Every field has a comment block right above it.
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[index - 1].startswith("#"), f"{name}.msg: field {line!r} has no comment"


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_registered_types_are_parsed_from_the_msg_files(types, name):
    _, registered = types.typestore.fielddefs[f"vqhps_ros/msg/{name}"]
    expected = msg_fields((find_msg_dir() / f"{name}.msg").read_text())
    assert [field for field, _ in registered] == [field for _, field in expected]
    definition, _ = types.typestore.generate_msgdef(f"vqhps_ros/msg/{name}", ros_version=2)
    own_part = definition.split("=" * 80)[0]
    assert msg_fields(own_part) == [(re.sub(r"^HumanMesh", "vqhps_ros/HumanMesh", kind), field)
                                    for kind, field in expected]


def test_msg_dir_is_read_not_built_in(tmp_path):
    for path in find_msg_dir().glob("*.msg"):
        shutil.copy(path, tmp_path)
    topology_msg = tmp_path / "MeshTopology.msg"
    topology_msg.write_text(topology_msg.read_text() + "\n# a field only this copy has\nuint8 extra\n")
    _, fields = rosbags_types(tmp_path).typestore.fielddefs["vqhps_ros/msg/MeshTopology"]
    assert fields[-1][0] == "extra"
    (tmp_path / "HumanMesh.msg").unlink()
    with pytest.raises(FileNotFoundError, match="HumanMesh.msg"):
        rosbags_types(tmp_path)


def test_human_mesh_array_round_trips_through_an_mcap_bag_with_its_stored_definition(types, topology, tmp_path):
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    humans = make_human("alice", 1), make_human("bob", 2)
    message = human_mesh_array(types, make_result(*humans), topology)
    msgtype = "vqhps_ros/msg/HumanMeshArray"
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/humans", msgtype, typestore=types.typestore)
        writer.write(connection, STAMP_NS, types.typestore.serialize_cdr(message, msgtype))
    with AnyReader([bag]) as reader:  # no default typestore: only the bag's own definitions
        [connection] = reader.connections
        assert connection.msgtype == msgtype and "MSG: vqhps_ros/HumanMesh" in connection.msgdef.data
        [(_, timestamp, raw)] = list(reader.messages())
        decoded = reader.deserialize(raw, msgtype)
    assert timestamp == STAMP_NS
    assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec) == (1_700_000, 123_456_789)
    for decoded_human, human in zip(decoded.humans, humans, strict=True):
        assert_human_mesh_matches(decoded_human, human, topology)


# --- headers, boxes and guards ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp_ns, sec, nanosec", [
    (STAMP_NS, 1_700_000, 123_456_789), (1_700_000_123_456_789_012, 1_700_000_123, 456_789_012), (0, 0, 0),
    (999_999_999, 0, 999_999_999), (-1, -1, 999_999_999),
])  # fmt: skip
def test_header_splits_the_image_stamp(types, stamp_ns, sec, nanosec):
    head = header(types, stamp_ns, FRAME_ID)
    assert (head.stamp.sec, head.stamp.nanosec, head.frame_id) == (sec, nanosec, FRAME_ID)


@pytest.mark.parametrize("box, expected", [
    ([10.0, 20.0, 30.0, 40.0], (10, 20, 30, 40)),  # whole pixels stay as they are
    ([10.4, 20.6, 30.0, 40.0], (10, 20, 31, 41)),  # partly covered pixels are included
    ([-50.0, -10.0, 100.0, 600.0], (0, 0, 50, 480)),  # clipped to the 640 x 480 image
    ([630.0, 470.0, 50.0, 50.0], (630, 470, 10, 10)),
    ([700.0, 100.0, 50.0, 50.0], (640, 100, 0, 50)),  # outside: zero width at the border
])  # fmt: skip
def test_region_of_interest_is_clipped_to_the_image(types, box, expected):
    roi = region_of_interest(types, np.array(box), IMAGE_SIZE)
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == expected and roi.do_rectify is False


@pytest.mark.parametrize("field, value", [
    ("vertices", np.full((8, 3), np.nan, np.float32)), ("joints", np.full((17, 3), np.inf, np.float32)),
    ("root_position", np.array([0.0, np.nan, 2.0])), ("root_rotation", np.full((3, 3), np.nan)),
    ("token_confidence", np.array([0.5, np.nan, 0.5, 0.5], np.float32)), ("box", np.array([0, 0, np.nan, 10])),
    ("score", np.nan),
])  # fmt: skip
def test_non_finite_values_raise_naming_the_person_and_field(types, topology, field, value):
    person = make_human("alice", 1)
    setattr(person, field, value)
    with pytest.raises(InputError, match=rf"'alice'.*{field}"):
        human_mesh(types, person, topology, IMAGE_SIZE)


@pytest.mark.parametrize("field, value, message", [
    ("vertices", np.zeros((7, 3), np.float32), r"vertices should have shape \(8, 3\)"),
    ("tokens", np.array([0, 1, 2, 512]), r"tokens should lie in \[0, 512\)"),
    ("tokens", np.array([0, 1, 2]), r"tokens should have shape \(4,\)"),
    ("root_rotation", np.diag([1.0, 1.0, -1.0]), "root_rotation should be a rotation matrix"),
])  # fmt: skip
def test_inconsistent_values_raise(types, topology, field, value, message):
    person = make_human("alice", 1)
    setattr(person, field, value)
    with pytest.raises(InputError, match=message):
        human_mesh(types, person, topology, IMAGE_SIZE)


def test_topology_with_faces_outside_the_mesh_raises(types, topology):
    with pytest.raises(InputError, match=r"faces should index \[0, 8\)"):
        mesh_topology(types, replace(topology, faces=CUBE_FACES + 1))


# --- TF ----------------------------------------------------------------------------------------------------------

HALF_TURN_AXES = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3], [0, -1, 1e-9]])
HALF_TURNS = np.pi * HALF_TURN_AXES / np.linalg.norm(HALF_TURN_AXES, axis=1, keepdims=True)


@pytest.mark.parametrize("rotation", [
    *Rotation.random(64, random_state=7).as_matrix(), *Rotation.from_rotvec(HALF_TURNS).as_matrix(), np.eye(3),
    *Rotation.from_rotvec([[np.pi - 1e-7, 0, 0], [0, 1e-8, 0]]).as_matrix(),
])  # fmt: skip
def test_quaternion_from_matrix_matches_scipy(rotation):
    quaternion = quaternion_from_matrix(rotation)
    expected = Rotation.from_matrix(rotation).as_quat()  # x, y, z, w
    assert quaternion[3] >= 0 and np.linalg.norm(quaternion) == pytest.approx(1.0, abs=1e-12)
    assert abs(np.dot(quaternion, expected)) == pytest.approx(1.0, abs=1e-12)  # the same rotation, up to sign
    np.testing.assert_allclose(Rotation.from_quat(quaternion).as_matrix(), rotation, atol=1e-12)


def test_transforms_place_one_frame_per_person_at_its_root(types):
    humans = make_human("alice", 1), make_human("bob", 2)
    message = round_trip(types, transforms(types, make_result(*humans)))
    assert [t.child_frame_id for t in message.transforms] == ["body_alice", "body_bob"]
    for transform, human in zip(message.transforms, humans, strict=True):
        assert transform.header.frame_id == FRAME_ID
        assert (transform.header.stamp.sec, transform.header.stamp.nanosec) == (1_700_000, 123_456_789)
        translation, rotation = transform.transform.translation, transform.transform.rotation
        np.testing.assert_array_equal([translation.x, translation.y, translation.z], human.root_position)
        quaternion = [rotation.x, rotation.y, rotation.z, rotation.w]
        assert rotation.w >= 0
        np.testing.assert_allclose(Rotation.from_quat(quaternion).as_matrix(), human.root_rotation, atol=1e-12)
    prefixed = transforms(types, make_result(humans[0]), frame_prefix="human_")
    assert prefixed.transforms[0].child_frame_id == "human_alice"


# --- RViz markers -----------------------------------------------------------------------------------------------


def by_key(marker_array) -> dict:
    return {(marker.ns, marker.id): marker for marker in marker_array.markers}


def test_markers_draw_mesh_skeleton_and_label_per_person(types, topology):
    alice = make_human("alice", 1)
    message = round_trip(types, markers(types, make_result(alice), topology, PublishedMarkers()))
    marker_class = types.get("visualization_msgs/msg/Marker")
    shown = {marker.ns: marker for marker in message.markers}
    assert sorted(shown) == sorted(MARKER_KINDS)
    for marker in shown.values():
        assert marker.header.frame_id == FRAME_ID
        assert (marker.header.stamp.sec, marker.header.stamp.nanosec) == (1_700_000, 123_456_789)
        assert marker.action == marker_class.ADD and marker.id == 0 and marker.frame_locked is False
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 0)
        assert marker.pose.orientation.w == 1.0
        color = (marker.color.r, marker.color.g, marker.color.b, marker.color.a)
        assert color == pytest.approx((*track_color("alice"), 1.0), rel=1e-7)  # float32 on the wire
    mesh, skeleton, label = shown["mesh"], shown["skeleton"], shown["label"]
    assert mesh.type == marker_class.TRIANGLE_LIST
    points = np.array([[p.x, p.y, p.z] for p in mesh.points])
    np.testing.assert_array_equal(points, alice.vertices[CUBE_FACES.reshape(-1)])
    assert skeleton.type == marker_class.LINE_LIST and len(skeleton.points) == 2 * len(H36M_17_BONES)
    first_bone = [[p.x, p.y, p.z] for p in skeleton.points[:2]]
    np.testing.assert_array_equal(first_bone, alice.joints[list(H36M_17_BONES[0])])
    assert label.type == marker_class.TEXT_VIEW_FACING and label.text == "alice"
    assert label.pose.position.y < alice.vertices[:, 1].min()  # above the head: image up is -y


def test_markers_update_in_place_and_delete_people_who_left(types, topology):
    state, marker_class = PublishedMarkers(), types.get("visualization_msgs/msg/Marker")
    alice, bob, carol = make_human("alice", 1), make_human("bob", 2), make_human("carol", 3)
    first = by_key(markers(types, make_result(alice, bob), topology, state))
    alice_keys = {(kind, state.numbers["alice"]) for kind in MARKER_KINDS}
    bob_keys = {(kind, state.numbers["bob"]) for kind in MARKER_KINDS}
    assert set(first) == alice_keys | bob_keys and not alice_keys & bob_keys

    second = markers(types, make_result(alice, stamp_ns=STAMP_NS + 1), topology, state)
    deletes = [m for m in second.markers if m.action == marker_class.DELETE]
    assert second.markers[:3] == deletes  # deletes come first
    assert {(m.ns, m.id) for m in deletes} == bob_keys
    assert {(m.ns, m.id) for m in second.markers if m.action == marker_class.ADD} == alice_keys  # same ns/id

    third = markers(types, make_result(alice, carol), topology, state)
    assert all(m.action == marker_class.ADD for m in third.markers)  # bob's markers are already gone
    assert {(kind, state.numbers["carol"]) for kind in MARKER_KINDS} == bob_keys  # carol took bob's freed number

    fourth = markers(types, make_result(), topology, state)
    assert {(m.ns, m.id) for m in fourth.markers} == set(first) and state.keys == set() and state.numbers == {}
    assert markers(types, make_result(), topology, state).markers == []  # nothing left behind, nothing repeated


def test_marker_numbers_stay_bounded_with_many_tracks(types, topology):
    state = PublishedMarkers()
    for frame in range(300):
        people = [replace(make_human("x", 1), id=f"track{frame}_{index}") for index in range(3)]
        message = markers(types, make_result(*people), topology, state, mesh=False, skeleton=False)
        assert {m.id for m in message.markers} <= {0, 1, 2}
    assert sorted(state.numbers.values()) == [0, 1, 2] and len(state.keys) == 3


def test_track_colours_are_stable_and_follow_the_id(types, topology):
    assert track_color("alice") == (0.55, 0.34, 0.29)  # crc32, not the salted hash(): the same in every run
    assert track_color("bob") == (0.58, 0.40, 0.74)
    state, marker_class = PublishedMarkers(), types.get("visualization_msgs/msg/Marker")
    for people in ([make_human("alice", 1), make_human("bob", 2)], [make_human("bob", 5), make_human("carol", 3)]):
        message = markers(types, make_result(*people), topology, state)
        owners = {number: track for track, number in state.numbers.items()}
        for marker in message.markers:
            if marker.action == marker_class.ADD:
                assert (marker.color.r, marker.color.g, marker.color.b) == track_color(owners[marker.id])


def test_marker_options_and_switching_a_kind_off_deletes_it(types, topology):
    state, marker_class = PublishedMarkers(), types.get("visualization_msgs/msg/Marker")
    markers(types, make_result(make_human("alice", 1)), topology, state)
    message = markers(types, make_result(make_human("alice", 1)), topology, state, mesh=False, skeleton=False)
    assert {(m.ns, m.action) for m in message.markers} == {("mesh", marker_class.DELETE),
                                                          ("skeleton", marker_class.DELETE),
                                                          ("label", marker_class.ADD)}
    without_joints = replace(make_human("bob", 2), joints=None, joints_2d=None)
    only = markers(types, make_result(without_joints), topology, PublishedMarkers())
    assert sorted(m.ns for m in only.markers) == ["label", "mesh"]


def test_a_frame_that_raises_leaves_the_marker_state_unchanged(types, topology):
    state = PublishedMarkers()
    markers(types, make_result(make_human("alice", 1)), topology, state)
    before = (dict(state.numbers), set(state.keys))
    broken = make_human("bob", 2)
    broken.vertices = np.full((8, 3), np.nan, np.float32)
    with pytest.raises(InputError, match="'bob'.*vertices"):
        markers(types, make_result(broken), topology, state)
    assert (state.numbers, state.keys) == before


# --- rclpy's generated classes, imitated -----------------------------------------------------------------------


def test_rclpy_types_import_classes_by_name_and_pass_arrays_as_array_array(monkeypatch):
    class Thing:  # what rosidl generates: keyword construction with defaults
        def __init__(self, **fields):
            self.fields = fields

    module = python_types.ModuleType("fake_msgs.msg")
    module.Thing = Thing
    monkeypatch.setitem(sys.modules, "fake_msgs", python_types.ModuleType("fake_msgs"))
    monkeypatch.setitem(sys.modules, "fake_msgs.msg", module)
    made = RclpyTypes().make("fake_msgs/msg/Thing", values=np.array([1.5, -2.0], np.float32),
                             tokens=np.array([3, 65535], np.uint16), name="x")
    assert made.fields["name"] == "x"
    assert made.fields["values"] == array.array("f", [1.5, -2.0])
    assert made.fields["tokens"] == array.array("H", [3, 65535])


def test_msg_search_path_puts_the_checkout_first_then_installed_share_folders(monkeypatch, tmp_path):
    from vqhps_ros.io.messages import msg_search_path

    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{tmp_path / 'ws'}:{tmp_path / 'opt'}")
    path = msg_search_path()
    assert path[0] == find_msg_dir() and (path[0].parent / "vqhps_ros" / "io" / "messages.py").is_file()
    assert path[1] == Path(sys.prefix) / "share" / "vqhps_ros" / "msg"  # where setup.py's data_files go
    assert path[-2:] == [tmp_path / "ws" / "share" / "vqhps_ros" / "msg", tmp_path / "opt" / "share/vqhps_ros/msg"]
