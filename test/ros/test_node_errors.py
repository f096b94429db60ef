"""What the estimator says about a wrong set-up, under `ros2 launch`: a reliable subscription facing a best-effort
camera (the QoS advice), and a parameter out of range in the parameter file (configure fails naming it, the node
stays alive, and configures once the parameter is fixed)."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def parameter_file(path, text: str):
    path.write_text("/**:\n  ros__parameters:\n" + text, encoding="utf-8")
    return path


def test_a_reliable_subscription_reports_a_best_effort_publisher(ros, rh, launch_estimator, tmp_path,
                                                                 sample_frames):
    from vqhps_ros.ros.qos_advice import incompatible_qos_advice

    config = parameter_file(tmp_path / "reliable.yaml", "    inputs:\n      qos: reliable\n")
    launch = launch_estimator("vqhps_reliable", config_file=config)
    launch.wait_for_log(r"\[vqhps_reliable\]: active: ", timeout=240)
    humans = ros.inbox(rh.message_class("vqhps_ros/msg/HumanMeshArray"), "/vqhps_reliable/humans")
    player = rh.Player(ros, "best_effort")
    try:
        player.play(sample_frames[:10], 15.0, wait_for_subscribers=False)
        advice = incompatible_qos_advice("/camera/image_raw/compressed", "RELIABILITY", "reliable")
        line = launch.wait_for_log(r"\[WARN\].*\[vqhps_reliable\]: " + re.escape(advice), timeout=15).group(0)
        assert "inputs.qos=sensor_data" in line
        assert player.subscription_count() == 0  # never matched: nothing arrives
        assert not humans.wait_for(lambda ms: ms, timeout=1.0)
        assert launch.alive() and ros.lifecycle_state("/vqhps_reliable") == "active"
    finally:
        player.close()
        humans.close()
    assert launch.stop() == 0


def test_a_parameter_out_of_range_fails_configure_and_can_be_fixed(ros, launch_estimator, tmp_path):
    config = parameter_file(tmp_path / "bad.yaml", "    persons:\n      min_score: 5.0\n")
    launch = launch_estimator("vqhps_bad_parameters", config_file=config)  # autostart: launch tries to configure
    line = launch.wait_for_log(r"\[vqhps_bad_parameters\]: configure failed: .*", timeout=240).group(0)
    assert "persons.min_score" in line and "5.0" in line
    assert "[vqhps_bad_parameters]: active" not in launch.log()
    assert launch.alive() and ros.lifecycle_state("/vqhps_bad_parameters") == "unconfigured"
    # the node stays up for the parameter to be fixed, then configures
    [result] = ros.set_parameters("/vqhps_bad_parameters", {"persons.min_score": 0.5})
    assert result.successful, result.reason
    assert ros.change_state("/vqhps_bad_parameters", "configure"), launch_tail(launch)
    # inactive, and launch's autostart handler (on reaching inactive) activates it
    launch.wait_for_log(r"\[vqhps_bad_parameters\]: active: ", timeout=30)
    assert ros.lifecycle_state("/vqhps_bad_parameters") == "active"
    assert launch.stop() == 0 and "process has finished cleanly" in launch.log()


def launch_tail(launch) -> str:
    return "\n".join(launch.log().splitlines()[-15:])
