"""What one processed frame publishes, for the node and the bag replay alike: one code path, two transports.

`FrameOutputs.messages(result)` returns (kind, message) pairs (`in_turn` yields them one by one): the mesh topology
before anything else, the HumanMeshArray of every frame, the MarkerArray at most `outputs.marker_rate_hz` (by image
stamps, so a replay at any speed gives the node's markers), and the TF message of the frame's people. The node
publishes each kind on its topic as it comes; the replay writes a frame's messages into a bag once all are built.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..humans import FrameResult, MeshTopology
from . import messages

TOPOLOGY, HUMANS, MARKERS, TF = "topology", "humans", "markers", "tf"
MESSAGE_TYPES = {
    HUMANS: messages.HUMAN_MESH_ARRAY, MARKERS: messages.MARKER_ARRAY, TOPOLOGY: messages.MESH_TOPOLOGY,
    TF: messages.TF_MESSAGE,
}  # fmt: skip
NS_PER_S = 1_000_000_000


class FrameOutputs:
    """types: a `messages.MessageTypes`; outputs: the configuration's `outputs` section. send_topology: put the
    topology before the first frame's messages (a bag); False when the caller publishes it itself (the node's
    latched topic)."""

    def __init__(self, types, outputs, topology: MeshTopology, send_topology: bool = True):
        self.types = types
        self.outputs = outputs
        self.topology = topology
        self.markers = messages.PublishedMarkers()
        self._last_marker_stamp: int | None = None
        self._topology_sent = not send_topology

    def topology_message(self):
        return messages.mesh_topology(self.types, self.topology)

    def messages(self, result: FrameResult) -> list[tuple[str, object]]:
        """Every message of the frame, all built before any is returned (a bag gets the whole frame or nothing)."""
        return list(self.in_turn(result))

    def in_turn(self, result: FrameResult) -> Iterator[tuple[str, object]]:
        """The same messages, each built when the previous one has been taken: the node sends the HumanMeshArray
        before the markers are built. A message that fails to build leaves the earlier ones sent."""
        if not self._topology_sent:
            yield TOPOLOGY, self.topology_message()
            self._topology_sent = True
        yield HUMANS, messages.human_mesh_array(self.types, result, self.topology,
                                                publish_vertices=self.outputs.publish_vertices)
        if self._markers_due(result.stamp_ns):
            yield MARKERS, messages.markers(self.types, result, self.topology, self.markers,
                                            mesh=self.outputs.mesh_markers, skeleton=self.outputs.skeleton_markers)
        if self.outputs.publish_tf and result.humans:
            yield TF, messages.transforms(self.types, result, self.outputs.body_frame_prefix)

    def _markers_due(self, stamp_ns: int) -> bool:
        """Markers at most marker_rate_hz, by stamps; a stamp going back (a replayed loop) starts again."""
        rate = self.outputs.marker_rate_hz
        last = self._last_marker_stamp
        due = rate <= 0 or last is None or stamp_ns < last or stamp_ns - last >= NS_PER_S / rate
        if due:
            self._last_marker_stamp = stamp_ns
        return due
