"""Token hysteresis: a one-frame blip never flips a published token; a lasting or confident change does."""

import numpy as np

from vqhps_ros.temporal import TokenHysteresis


def feed(hysteresis, frames):
    return [hysteresis(np.array(tokens), np.array(confidence, np.float32)) for tokens, confidence in frames]


def test_a_one_frame_blip_does_not_flip_a_token():
    outputs = feed(TokenHysteresis(2, 0.9), [([5, 7], [0.6, 0.6]), ([9, 7], [0.5, 0.6]), ([5, 7], [0.6, 0.6])])
    assert [tokens.tolist() for tokens, _ in outputs] == [[5, 7], [5, 7], [5, 7]]
    # while held against the argmax, the confidence is a bound: at most 1 - p(argmax), at most its own last p
    np.testing.assert_allclose(outputs[1][1], [0.5, 0.6])


def test_a_change_that_lasts_hold_frames_is_followed():
    frames = [([5], [0.6])] + [([9], [0.5])] * 3
    assert [int(t[0]) for t, _ in feed(TokenHysteresis(2, 0.9), frames)] == [5, 5, 9, 9]
    assert [int(t[0]) for t, _ in feed(TokenHysteresis(3, 0.9), frames)] == [5, 5, 5, 9]
    assert [int(t[0]) for t, _ in feed(TokenHysteresis(1, 0.9), frames)] == [5, 9, 9, 9]  # 1: no hysteresis


def test_a_confident_change_is_followed_at_once():
    outputs = feed(TokenHysteresis(3, 0.8), [([5], [0.6]), ([9], [0.85])])
    assert int(outputs[1][0][0]) == 9 and outputs[1][1][0] == np.float32(0.85)


def test_alternating_blips_never_flip():
    frames = [([1], [0.6])] + [([2], [0.4]), ([1], [0.6])] * 10
    assert {int(t[0]) for t, _ in feed(TokenHysteresis(2, 0.9), frames)} == {1}


def test_a_streak_must_be_of_the_same_token():
    # 9 then 8: two frames away from 5 but not two frames of one token
    frames = [([5], [0.6]), ([9], [0.4]), ([8], [0.4]), ([8], [0.4])]
    assert [int(t[0]) for t, _ in feed(TokenHysteresis(2, 0.9), frames)] == [5, 5, 5, 8]
