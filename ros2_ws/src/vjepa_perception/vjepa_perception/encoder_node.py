"""encoder_node: camera images -> `vjepa_interfaces/Latent` (V-JEPA 2 tokens), plus an on-demand encode service.

Subscribes with sensor-data QoS and keeps only the newest frame (no backlog, bounded memory): the subscription
callback just stores the message, a worker thread converts, encodes and publishes at most ``max_rate_hz``.
Latents carry the source image's stamp and frame_id. ``~/encode`` (vjepa_interfaces/srv/EncodeImage) encodes one
image with the same model for goal images. Bad frames are dropped with a throttled warning naming the problem;
a missing or mismatched checkpoint stops the node at start-up with a clear error.
"""

from __future__ import annotations

import array
import collections
import re
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from vjepa_core.imgmsg import ImageConversionError, msg_to_rgb
from vjepa_core.loading import load_world_model
from vjepa_core.preprocessing import CROP_POLICIES
from vjepa_interfaces.msg import Latent
from vjepa_interfaces.srv import EncodeImage
from vjepa_perception.frame_encoder import EncodedFrame, FrameEncoder

__all__ = ["EncoderNode", "PARAMETERS", "main"]

# name -> (default, description). Defaults mirror config/perception.yaml.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "image_topic": ("/camera/image_raw", "sensor_msgs/Image input (rgb8, bgr8, rgba8, bgra8, mono8)"),
    "compressed_image_topic": ("", "if set, subscribe to this sensor_msgs/CompressedImage topic instead"),
    "latent_topic": ("/vjepa/latent", "vjepa_interfaces/Latent output"),
    "checkpoint": ("", "encoder weights: released/own .pt, or a Hugging Face directory / .safetensors (required)"),
    "model_config": ("", "preset (vit_large, vit_huge, vit_giant, vit_giant_384) or JSON/YAML file; "
                         "empty: the configs embedded in checkpoints written by vjepa2_ros"),
    "checkpoint_key": ("encoder", "checkpoint section to load: encoder | target_encoder"),
    "backend": ("torch", "torch | onnxruntime | onnxruntime-cuda | onnxruntime-trt | tensorrt"),
    "device": ("cpu", "torch device: cpu | cuda | cuda:N"),
    "onnx_dir": ("", "export directory of `vjepa-export onnx` (non-torch backends)"),
    "threads": (0, "CPU inference threads (0 = library default); leave cores for drivers on small machines"),
    "max_rate_hz": (10.0, "encode at most this often; newer frames replace unprocessed ones"),
    "frames_per_clip": (1, "1: each frame repeated into one tubelet (planner); >1: sliding clips (torch only)"),
    "crop": ("center", "preprocessing crop policy: center | eval | resize"),
    "normalize": (True, "layer-norm the tokens (what the V-JEPA 2-AC predictor consumes)"),
    "diagnostics_period_s": (1.0, "period of /diagnostics messages"),
    "warn_throttle_s": (2.0, "minimum seconds between two warnings about the same kind of bad frame"),
}


class _RateMeter:
    """Events per second and latency percentiles over a sliding window."""

    def __init__(self, window: int = 200) -> None:
        self.times: collections.deque[float] = collections.deque(maxlen=window)
        self.latencies: collections.deque[float] = collections.deque(maxlen=window)

    def add(self, t: float, latency: float | None = None) -> None:
        self.times.append(t)
        if latency is not None:
            self.latencies.append(latency)

    def rate(self, now: float, horizon: float = 5.0) -> float:
        recent = [t for t in self.times if now - t <= horizon]
        return len(recent) / horizon if recent else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


class EncoderNode(Node):
    """See the module docstring. Construct, then spin with a multi-threaded executor (see :func:`main`)."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("encoder_node", **node_kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._validate(p)
        self.params = p
        self.get_logger().info(f"loading encoder from {p['checkpoint']} ({p['backend']} on {p['device']})")
        self.model = load_world_model(
            p["checkpoint"], p["model_config"], encoder=True, predictor=False, checkpoint_key=p["checkpoint_key"],
            backend=p["backend"], device=p["device"], export_dir=p["onnx_dir"] or None, threads=p["threads"],
            normalize=p["normalize"])
        self.encoder = FrameEncoder(self.model, crop=p["crop"], frames_per_clip=int(p["frames_per_clip"]))
        self.model_id = self.model.encoder_id
        self._lock = threading.Lock()           # serializes model use (worker thread vs ~/encode)
        self._cond = threading.Condition()
        self._pending: Any = None               # newest unprocessed message
        self._closing = False
        self._stats = {"received": 0, "dropped": 0, "invalid": 0, "published": 0}
        self._in = _RateMeter()
        self._out = _RateMeter()
        self._last_warn: dict[str, float] = {}

        self.pub = self.create_publisher(Latent, p["latent_topic"], 10)
        if p["compressed_image_topic"]:
            self.sub = self.create_subscription(CompressedImage, p["compressed_image_topic"], self._on_image,
                                                qos_profile_sensor_data)
            source = p["compressed_image_topic"]
        else:
            self.sub = self.create_subscription(Image, p["image_topic"], self._on_image, qos_profile_sensor_data)
            source = p["image_topic"]
        self.srv = self.create_service(EncodeImage, "~/encode", self._on_encode,
                                       callback_group=MutuallyExclusiveCallbackGroup())
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(p["diagnostics_period_s"]), self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="encoder_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"encoding {source} -> {p['latent_topic']} with {self.model_id}, grid "
                               f"{'x'.join(map(str, self.encoder.grid))}, at most {p['max_rate_hz']} Hz")

    @staticmethod
    def _validate(p: dict[str, Any]) -> None:
        """Fail fast with one message per bad parameter."""
        errors = []
        if not p["checkpoint"]:
            errors.append("checkpoint is required (path to the encoder weights)")
        if p["checkpoint_key"] not in ("encoder", "target_encoder"):
            errors.append(f"checkpoint_key must be encoder or target_encoder, got {p['checkpoint_key']!r}")
        if not p["max_rate_hz"] > 0:
            errors.append(f"max_rate_hz must be > 0, got {p['max_rate_hz']}")
        if int(p["frames_per_clip"]) < 1:
            errors.append(f"frames_per_clip must be >= 1, got {p['frames_per_clip']}")
        if p["crop"] not in CROP_POLICIES:
            errors.append(f"crop must be one of {CROP_POLICIES}, got {p['crop']!r}")
        if not (p["image_topic"] or p["compressed_image_topic"]):
            errors.append("set image_topic or compressed_image_topic")
        if errors:
            raise ValueError("invalid parameters: " + "; ".join(errors))

    # ---- input ----------------------------------------------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        """Subscription callback: store the newest frame, never block."""
        now = time.monotonic()
        with self._cond:
            self._stats["received"] += 1
            self._in.add(now)
            if self._pending is not None:
                self._stats["dropped"] += 1     # replaced before the worker got to it
            self._pending = msg
            self._cond.notify()

    def _work(self) -> None:
        period = 1.0 / float(self.params["max_rate_hz"])
        next_allowed = 0.0
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait(0.5)
                if self._closing:
                    return
            wait = next_allowed - time.monotonic()
            if wait > 0:
                time.sleep(wait)                # newer frames keep replacing the pending one meanwhile
            with self._cond:
                msg, self._pending = self._pending, None
            if msg is None:
                continue
            next_allowed = time.monotonic() + period
            try:
                self._process(msg)
            except Exception as exc:  # keep serving: one bad frame or transient error must not kill the node
                self._warn("encode", f"failed to encode a frame: {exc}")

    def _process(self, msg: Any) -> None:
        try:
            rgb = msg_to_rgb(msg)
        except ImageConversionError as exc:
            with self._cond:
                self._stats["invalid"] += 1
            self._warn(re.sub(r"\d+", "#", str(exc)), f"dropping frame: {exc}")  # throttled per kind of problem
            return
        with self._lock:
            encoded = self.encoder.push(rgb)
        if encoded is None:
            return
        self.pub.publish(self._to_msg(encoded, msg.header))
        now = time.monotonic()
        with self._cond:
            self._stats["published"] += 1
            self._out.add(now, encoded.inference_time)

    def _on_encode(self, request: EncodeImage.Request, response: EncodeImage.Response) -> EncodeImage.Response:
        """~/encode: one image (raw, or compressed when raw is empty) -> Latent with the same model."""
        msg = request.image if request.image.data else request.compressed_image
        try:
            rgb = msg_to_rgb(msg)
        except ImageConversionError as exc:
            response.success, response.message = False, f"cannot use the image: {exc}"
            return response
        with self._lock:
            encoded = self.encoder.encode_single(rgb)
        response.latent = self._to_msg(encoded, msg.header)
        response.success, response.message = True, f"encoded with {self.model_id}"
        return response

    def _to_msg(self, encoded: EncodedFrame, header: Any) -> Latent:
        cfg = self.encoder.cfg
        out = Latent()
        out.header = header
        out.model_id = self.model_id
        out.frames, out.height, out.width, out.dim = (int(v) for v in encoded.tokens.shape)
        out.image_size, out.patch_size, out.tubelet_size = self.encoder.size, cfg.patch_size, cfg.tubelet_size
        out.normalized = bool(self.model.world_model.normalize)
        out.inference_time = float(encoded.inference_time)
        data = array.array("f")
        data.frombytes(encoded.tokens.astype(np.float32, copy=False).tobytes())
        out.data = data
        return out

    # ---- reporting -------------------------------------------------------------------------------------------
    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(key, -1e9) >= float(self.params["warn_throttle_s"]):
            self._last_warn[key] = now
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._cond:
            stats = dict(self._stats)
            in_rate, out_rate = self._in.rate(now), self._out.rate(now)
            p50, p99 = self._out.percentile(50), self._out.percentile(99)
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: V-JEPA 2 encoder"
        status.hardware_id = self.model_id
        status.level = DiagnosticStatus.OK
        status.message = "encoding"
        if stats["received"] == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no images received yet"
        elif in_rate == 0.0:
            status.level, status.message = DiagnosticStatus.WARN, "no images in the last 5 s"
        values = {
            "input_rate_hz": f"{in_rate:.2f}", "output_rate_hz": f"{out_rate:.2f}",
            "latency_ms_p50": f"{p50 * 1e3:.1f}", "latency_ms_p99": f"{p99 * 1e3:.1f}",
            "received": stats["received"], "published": stats["published"],
            "dropped_frames": stats["dropped"], "invalid_frames": stats["invalid"],
            "backend": self.params["backend"], "device": self.params["device"], "model_id": self.model_id,
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [status]
        self.diag_pub.publish(arr)

    def destroy_node(self) -> None:
        """Stop the worker thread before the node goes away."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vjepa_perception encoder_node`; exit status 1 when the node cannot start."""
    rclpy.init(args=args)
    try:
        node = EncoderNode()
    except Exception as exc:  # a clear refusal to start: bad parameters, missing or mismatched checkpoint
        rclpy.logging.get_logger("encoder_node").fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
