"""msgconv: every malformed message is refused with MessageError naming the problem; good ones convert exactly."""

from __future__ import annotations

import array
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vjepa_core.msgconv import (
    MessageError,
    fill_latent_msg,
    fill_pose_msg,
    fill_pose_xyzq,
    gripper_closedness,
    latent_from_msg,
    pose_state_from_msg,
    pose_xyzq_from_msg,
)
from vjepa_core.tokens import normalize_tokens


def _latent(**kw):
    base = dict(frames=1, height=4, width=4, dim=8, image_size=64, patch_size=16, tubelet_size=2, model_id="m@1",
                normalized=True, inference_time=0.0, header=NS(stamp=NS(sec=3, nanosec=500_000_000), frame_id="cam"))
    base.update(kw)
    if "data" not in base:
        base["data"] = np.arange(base["frames"] * base["height"] * base["width"] * base["dim"], dtype=np.float32)
    return NS(**base)


def test_latent_round_trip():
    tokens = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype(np.float32)
    msg = fill_latent_msg(NS(header=NS(stamp=NS(sec=1, nanosec=0), frame_id="c")), tokens, model_id="m@1",
                          normalized=True, image_size=64, patch_size=16, tubelet_size=2, inference_time=0.1)
    assert isinstance(msg.data, array.array)
    lat = latent_from_msg(msg, expected_grid=(4, 4, 8))
    np.testing.assert_array_equal(lat.tokens, tokens)
    assert lat.grid == (2, 4, 4, 8) and lat.model_id == "m@1" and lat.normalized and lat.stamp == 1.0


@pytest.mark.parametrize("kw, needle", [
    (dict(frames=0), "empty token grid"),
    (dict(data=np.zeros(5, np.float32)), "needs 128"),
    (dict(data=np.full(128, np.nan, np.float32)), "non-finite"),
    (dict(data=np.r_[np.zeros(127), np.inf].astype(np.float32)), "non-finite"),
    (dict(height=2, width=8), "does not match image_size"),
    (dict(frames=1 << 20, height=1 << 10, width=1 << 10, dim=1 << 10, image_size=0, data=np.zeros(4, np.float32)),
     "more than"),
    (dict(data=["a"] * 128), "not a float32 array"),
    (dict(dim=-1), "negative"),
])
def test_malformed_latents_are_refused(kw, needle):
    with pytest.raises(MessageError, match=needle):
        latent_from_msg(_latent(**kw))


def test_grid_shape_checked_against_expectation():
    msg = _latent(height=2, width=8, image_size=0, patch_size=0)  # 16 tokens, like 4x4, but another shape
    assert latent_from_msg(msg).grid == (1, 2, 8, 8)
    with pytest.raises(MessageError, match="expected 4x4x8"):
        latent_from_msg(msg, expected_grid=(4, 4, 8))


def test_pose_conversion_and_refusals():
    q = np.array([0.0, 0.0, np.sin(0.25), np.cos(0.25)])
    msg = NS(header=NS(), pose=NS(position=NS(x=0.4, y=0.1, z=0.3), orientation=NS(x=q[0], y=q[1], z=q[2], w=q[3])))
    state = pose_state_from_msg(msg, 0.5)
    np.testing.assert_allclose(state, [0.4, 0.1, 0.3, 0.0, 0.0, 0.5, 0.5], atol=1e-12)
    back = fill_pose_msg(NS(position=NS(), orientation=NS()), state)
    np.testing.assert_allclose(pose_xyzq_from_msg(back), [0.4, 0.1, 0.3, *q], atol=1e-12)
    direct = fill_pose_xyzq(NS(position=NS(), orientation=NS()), [0.4, 0.1, 0.3], q)
    np.testing.assert_allclose(pose_xyzq_from_msg(direct), [0.4, 0.1, 0.3, *q], atol=0)
    for bad, needle in ((NS(position=NS(x=np.nan, y=0, z=0), orientation=NS(x=0, y=0, z=0, w=1)), "non-finite"),
                        (NS(position=NS(x=0, y=0, z=0), orientation=NS(x=0, y=0, z=0, w=0)), "zero"),
                        (NS(foo=1), "carries no pose")):
        with pytest.raises(MessageError, match=needle):
            pose_xyzq_from_msg(bad)


def test_gripper_closedness():
    assert gripper_closedness(NS(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.04, 0.04])) == 0.0
    assert gripper_closedness(NS(name=["a", "fr3_finger_joint1", "fr3_finger_joint2"], position=[9, 0.01, 0.01])) \
        == pytest.approx(0.75)
    assert gripper_closedness(NS(name=[], position=[0.0, 0.0])) == 1.0
    assert gripper_closedness(NS(data=0.3)) == pytest.approx(0.3)
    for bad, needle in ((NS(name=["j1", "j2", "j3"], position=[0, 0, 0]), "no finger joints"),
                        (NS(name=["fr3_finger_joint1"], position=[0.0, 0.0]), "1 names but 2"),
                        (NS(name=[], position=[]), "no positions"),
                        (NS(name=[], position=[np.nan]), "not finite"),
                        (NS(x=1), "carries no gripper")):
        with pytest.raises(MessageError, match=needle):
            gripper_closedness(bad)


def test_normalize_tokens_torch_and_numpy_agree():
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(normalize_tokens(x), F.layer_norm(x, (16,)))
    y = normalize_tokens(x.numpy().astype(np.float16))
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), F.layer_norm(x, (16,)).numpy(), atol=5e-3)
