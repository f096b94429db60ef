"""What to tell a user whose publisher and our subscription cannot be matched (the incompatible-QoS event).

The usual case: a camera driver publishes best effort (sensor data) and the node was set to subscribe reliable; the
reverse always matches. Durability too: a volatile publisher cannot serve a transient-local subscription.
"""

from __future__ import annotations


def incompatible_qos_advice(topic: str, policy: str, requested: str) -> str:
    """policy: the QoS policy kind DDS reported (e.g. "RELIABILITY", "DURABILITY"); requested: inputs.qos."""
    policy = policy.upper().removeprefix("QOSPOLICYKIND.").removeprefix("RMW_QOS_POLICY_")
    if "RELIABILITY" in policy:
        return (f"{topic}: the publisher offers best-effort delivery but this node requests reliable "
                f"(inputs.qos={requested}); nothing will be received. Set inputs.qos=sensor_data "
                "(best effort accepts both), or make the publisher reliable.")
    if "DURABILITY" in policy:
        return (f"{topic}: the publisher is volatile but a transient-local subscription was requested; "
                "subscribe volatile or publish transient local.")
    return (f"{topic}: the publisher's QoS ({policy}) is incompatible with this node's subscription "
            f"(inputs.qos={requested}); compare them with `ros2 topic info -v {topic}`.")
