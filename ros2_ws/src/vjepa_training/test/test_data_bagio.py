"""Bag I/O, message decoding and alignment: definitions, flush + recovery, encodings, gap rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from vjepa_core.imgmsg import ImageConversionError, msg_to_rgb
from vjepa_core.msgconv import MessageError, gripper_closedness, pose_xyzq_from_msg
from vjepa_training.data.align import AlignConfig, align, nearest_before, sample_frames
from vjepa_training.data.bagio import BagError, BagReader, BagWriter, recover_bag, resolve_msgdef

TS = get_typestore(Stores.LATEST)
SRC = Path(__file__).resolve().parents[2]


def _image(i: int, enc="rgb8", w=4, h=3, pad=0):
    ch = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4}[enc]
    step = w * ch + pad
    data = (np.arange(h * step) + i).astype(np.uint8)
    m = TS.types["sensor_msgs/msg/Image"](
        header=TS.types["std_msgs/msg/Header"](stamp=TS.types["builtin_interfaces/msg/Time"](sec=i, nanosec=5),
                                               frame_id="c"),
        height=h, width=w, encoding=enc, is_bigendian=0, step=step, data=data)
    return m, data.reshape(h, step)[:, : w * ch].reshape(h, w, ch)


def test_bag_images_decode_through_vjepa_core():
    """Messages deserialized from bags (rosbags dataclasses, numpy data) go through the suite's one decoder."""
    m, raw = _image(1, "rgb8", pad=2)
    np.testing.assert_array_equal(msg_to_rgb(m), raw)
    m, raw = _image(1, "bgr8")
    np.testing.assert_array_equal(msg_to_rgb(m), raw[:, :, ::-1])
    m, raw = _image(1, "mono8")
    np.testing.assert_array_equal(msg_to_rgb(m), np.repeat(raw, 3, axis=2))
    m, raw = _image(1, "rgba8")
    np.testing.assert_array_equal(msg_to_rgb(m), raw[:, :, :3])
    m, raw = _image(1, "bgr8")
    m.encoding = "8UC3"  # OpenCV's BGR, as the dataset builder's own decoder read it before
    np.testing.assert_array_equal(msg_to_rgb(m), raw[:, :, ::-1])
    m.encoding = "yuv422"
    with pytest.raises(ImageConversionError, match="unsupported image encoding"):
        msg_to_rgb(m)
    # mono16 (e.g. a depth-like or 16-bit mono camera): the high byte, replicated to RGB.
    mono = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype("<u2")
    m16 = TS.types["sensor_msgs/msg/Image"](
        header=TS.types["std_msgs/msg/Header"](stamp=TS.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                               frame_id="c"),
        height=3, width=4, encoding="mono16", is_bigendian=0, step=8, data=mono.view(np.uint8).reshape(-1))
    np.testing.assert_array_equal(msg_to_rgb(m16), np.repeat((mono >> 8).astype(np.uint8)[:, :, None], 3, axis=2))
    m, _ = _image(1)
    m.data = m.data[:10]
    with pytest.raises(ImageConversionError, match="image data has 10 bytes"):
        msg_to_rgb(m)


def test_bag_pose_and_gripper_decode_through_vjepa_core():
    js = TS.types["sensor_msgs/msg/JointState"](
        header=TS.types["std_msgs/msg/Header"](stamp=TS.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                               frame_id=""),
        name=["fr3_joint1", "fr3_finger_joint1", "fr3_finger_joint2"], position=np.array([1.0, 0.01, 0.01]),
        velocity=np.zeros(0), effort=np.zeros(0))
    assert gripper_closedness(js) == pytest.approx(0.75)
    js.position = np.array([1.0, 0.04, 0.04])
    assert gripper_closedness(js) == 0.0
    P = TS.types["geometry_msgs/msg/Pose"]
    pose = P(position=TS.types["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
             orientation=TS.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    np.testing.assert_array_equal(pose_xyzq_from_msg(pose), [1, 2, 3, 0, 0, 0, 1])
    pose.position.x = float("nan")
    with pytest.raises(MessageError, match="non-finite"):
        pose_xyzq_from_msg(pose)


def test_resolve_msgdef_custom_type_from_share(tmp_path):
    share = tmp_path / "share"
    (share / "my_pkg" / "msg").mkdir(parents=True)
    (share / "my_pkg" / "msg" / "Tokens.msg").write_text("std_msgs/Header header\nuint32[] shape\nfloat32[] data\n")
    msgdef, rihs = resolve_msgdef("my_pkg/msg/Tokens", [share])
    assert msgdef.startswith("std_msgs/Header header") and "MSG: std_msgs/Header" in msgdef
    assert rihs.startswith("RIHS01_")
    with pytest.raises(BagError, match="no message definition"):
        resolve_msgdef("my_pkg/msg/Missing", [share])
    # A bag with the custom type decodes from its own definitions.
    from rosbags.typesys import get_types_from_msg

    ts = get_typestore(Stores.LATEST)
    ts.register(get_types_from_msg((share / "my_pkg/msg/Tokens.msg").read_text(), "my_pkg/msg/Tokens"))
    Tok = ts.types["my_pkg/msg/Tokens"]
    msg = Tok(header=ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
                                                      frame_id="x"),
              shape=np.array([2, 3], np.uint32), data=np.arange(6, dtype=np.float32))
    with BagWriter(tmp_path / "bag", "mcap") as w:
        w.add_topic("/tok", "my_pkg/msg/Tokens", msgdef=msgdef, rihs01=rihs)
        w.write("/tok", 5, ts.serialize_cdr(msg, "my_pkg/msg/Tokens"))
    with BagReader(tmp_path / "bag") as r:
        (_, t, raw), = list(r.messages())
        got = r.deserialize(raw, "my_pkg/msg/Tokens")
    np.testing.assert_array_equal(got.data, np.arange(6, dtype=np.float32))


KILL_SCRIPT = """
import os, sys
sys.path[:0] = {paths!r}
from rosbags.typesys import Stores, get_typestore

from vjepa_core.imgmsg import ImageConversionError, msg_to_rgb
from vjepa_core.msgconv import MessageError, gripper_closedness, pose_xyzq_from_msg
from vjepa_training.data.bagio import BagWriter
ts = get_typestore(Stores.LATEST)
S = ts.types["std_msgs/msg/String"]
w = BagWriter({path!r}, storage={storage!r})
w.add_topic("/s", "std_msgs/msg/String")
for i in range(50):
    w.write("/s", i, ts.serialize_cdr(S(data=f"m{{i}}"), "std_msgs/msg/String"))
    if i == 29:
        w.flush()
os._exit(0)  # hard exit: no close, no summary, no metadata.yaml
"""


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_hard_kill_recovers_flushed_messages(tmp_path, storage):
    bag = tmp_path / "bag"
    paths = [str(SRC / "vjepa_training"), str(SRC / "vjepa_core")]
    subprocess.run([sys.executable, "-c", KILL_SCRIPT.format(paths=paths, path=str(bag), storage=storage)],
                   check=True, timeout=60)
    assert not (bag / "metadata.yaml").exists()
    with pytest.raises(BagError, match="recover"):
        BagReader(bag).open()
    rep = recover_bag(bag)
    # Everything flushed (30 messages) survives; unflushed data may or may not (mcap buffers a chunk).
    assert rep.counts["/s"] >= 30
    with BagReader(rep.output) as r:
        texts = [r.deserialize(raw, "std_msgs/msg/String").data for _, _, raw in r.messages()]
    assert texts[:30] == [f"m{i}" for i in range(30)]


def test_truncated_mcap_recovers_complete_chunks(tmp_path):
    ts = get_typestore(Stores.LATEST)
    S = ts.types["std_msgs/msg/String"]
    w = BagWriter(tmp_path / "bag", "mcap", fsync=False)
    w.add_topic("/s", "std_msgs/msg/String")
    for i in range(20):
        w.write("/s", i, ts.serialize_cdr(S(data=f"m{i}"), "std_msgs/msg/String"))
        if i % 5 == 4:
            w.flush()  # 4 chunks of 5 messages
    w.close()
    f = tmp_path / "bag" / "bag.mcap"
    data = f.read_bytes()
    marker = data.rfind(b"m14")  # cut inside the third chunk: the first two (10 messages) survive
    f.write_bytes(data[: marker + 2])
    (tmp_path / "bag" / "metadata.yaml").unlink()
    rep = recover_bag(tmp_path / "bag", tmp_path / "fixed")
    assert rep.counts == {"/s": 10} and rep.notes


def test_sample_frames_grid_and_gaps():
    period, tol = 250_000_000, 62_500_000
    t = np.arange(0, 3_000_000_000, 33_333_333)  # 30 Hz for 3 s
    (seg,) = sample_frames(t, period, tol)
    assert np.all(np.abs(t[seg] - (t[seg[0]] + np.arange(len(seg)) * period)) <= tol)
    assert len(seg) == 13  # 0, 0.25, ..., 3.0 (the last frame is at 2.99999997 s)
    gap = np.concatenate([t[t < 1e9], t[t > 1.6e9]])
    segs = sample_frames(gap, period, tol)
    assert len(segs) == 2 and gap[segs[1][0]] > 1.6e9
    assert nearest_before(np.array([5, 10, 11]), np.array([0, 10, 20])).tolist() == [0, 1, 1]


def test_align_splits_on_stale_pose():
    frames = np.arange(0, 4_000_000_000, 50_000_000)
    poses = frames[(frames < 1.5e9) | (frames > 2.5e9)]  # no pose for a second
    segs, notes = align(frames, poses, None, AlignConfig(fps=4, max_skew_s=0.1))
    assert len(segs) == 2 and notes
    for s in segs:
        assert np.all(frames[s.frames] - poses[s.poses] <= 100_000_000)
        assert np.all(frames[s.frames] >= poses[s.poses])
