"""Token hysteresis: a published Mesh-VQ-VAE token changes only when the network insists.

The engine gives, per person and frame, the argmax token of each of the T positions and its softmax probability,
not the full distribution. So the stability rule works on argmax streaks: at each position the published ("held")
token is replaced by a new argmax only when that argmax

* has been the argmax for `hold_frames` consecutive frames (2: a one-frame blip never flips a token), or
* has a probability of at least `switch_confidence` (a clear change is followed at once).

The published confidence of a held token that is not this frame's argmax is an upper bound of its probability:
the argmax took `p`, so any other token has at most `1 - p`; it is also capped by the held token's own last
probability.

What the tokens then describe: the published vertices come from the network's decoding of this frame's tokens
(their argmax codes or their expected codebook rows, `model.token_decoding`), smoothed by the body filter (the
decoder is inside the exported graph, so stabilised tokens are not decoded again). The held tokens are a stable,
slightly delayed description of the same body: decoding them gives the smoothed mesh only approximately.
"""

from __future__ import annotations

import numpy as np


class TokenHysteresis:
    """hold_frames >= 1 (1: no hysteresis), switch_confidence in [0, 1] (above 1: never at once)."""

    def __init__(self, hold_frames: int, switch_confidence: float):
        self.hold_frames = int(hold_frames)
        self.switch_confidence = float(switch_confidence)
        self.held: np.ndarray | None = None  # (T,) int64
        self.held_confidence: np.ndarray | None = None  # (T,) float32, the held token's last own probability
        self.candidate: np.ndarray | None = None  # (T,) the current argmax streak's token
        self.streak: np.ndarray | None = None  # (T,) frames of that streak

    def reset(self) -> None:
        self.held = self.held_confidence = self.candidate = self.streak = None

    def __call__(self, tokens, confidence) -> tuple[np.ndarray, np.ndarray]:
        """This frame's argmax tokens (T,) and their probabilities (T,) -> the published tokens and confidences."""
        tokens = np.asarray(tokens, dtype=np.int64)
        confidence = np.asarray(confidence, dtype=np.float32)
        if self.held is None or self.held.shape != tokens.shape:
            self.held, self.held_confidence = tokens.copy(), confidence.copy()
            self.candidate, self.streak = tokens.copy(), np.ones(len(tokens), dtype=np.int64)
            return self.held.copy(), self.held_confidence.copy()
        self.streak[tokens != self.candidate] = 0
        self.streak += 1
        self.candidate = tokens.copy()
        update = (tokens == self.held) | (self.streak >= self.hold_frames) | (confidence >= self.switch_confidence)
        self.held[update] = tokens[update]
        self.held_confidence[update] = confidence[update]
        published = np.minimum(self.held_confidence, 1.0 - confidence)
        published[update] = confidence[update]
        return self.held.copy(), published
