"""What one processed frame publishes, for the node and the bag replay alike: one code path, two transports.

`FrameOutputs.messages(result)` returns (kind, message) pairs: the mesh topology before anything else, the
HumanMeshArray of every frame, the MarkerArray at most `outputs.marker_rate_hz` (by image stamps, so a replay at
any speed gives the node's markers), and the TF message of the frame's people. The node publishes each kind on its
topic; the replay writes them into a bag.
"""

from __future__ import annotations

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
        records = []
        if not self._topology_sent:
            records.append((TOPOLOGY, self.topology_message()))
            self._topology_sent = True
        records.append((HUMANS, messages.human_mesh_array(self.types, result, self.topology,
                                                          publish_vertices=self.outputs.publish_vertices)))
        if self._markers_due(result.stamp_ns):
            records.append((MARKERS, messages.markers(self.types, result, self.topology, self.markers,
                                                      mesh=self.outputs.mesh_markers,
                                                      skeleton=self.outputs.skeleton_markers)))
        if self.outputs.publish_tf and result.humans:
            records.append((TF, messages.transforms(self.types, result, self.outputs.body_frame_prefix)))
        return records

    def _markers_due(self, stamp_ns: int) -> bool:
        """Markers at most marker_rate_hz, by stamps; a stamp going back (a replayed loop) starts again."""
        rate = self.outputs.marker_rate_hz
        last = self._last_marker_stamp
        due = rate <= 0 or last is None or stamp_ns < last or stamp_ns - last >= NS_PER_S / rate
        if due:
            self._last_marker_stamp = stamp_ns
        return due
