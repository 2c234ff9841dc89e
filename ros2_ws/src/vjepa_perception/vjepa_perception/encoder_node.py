"""encoder_node: camera images -> `vjepa_interfaces/Latent` (V-JEPA 2 tokens), plus an on-demand encode service.

Subscribes with sensor-data QoS and keeps only the newest frame (no backlog, bounded memory): the subscription
callback just stores the message, a worker thread converts, encodes and publishes at most ``max_rate_hz``.
Latents carry the source image's stamp and frame_id. ``~/encode`` (vjepa_interfaces/srv/EncodeImage) encodes one
image with the same model for goal images. Bad frames are dropped with a throttled warning naming the problem;
a missing or mismatched checkpoint stops the node at start-up with one fatal log line and exit status 1.

``/diagnostics`` counts what happened to the frames (published, dropped, invalid, failed to encode, with the last
reason) and grades the last 5 s: ERROR when no frame became a latent, WARN when some did not.
SIGINT / SIGTERM stop the executor, then the worker (joined before any ROS entity goes away), then the context:
nothing is published on a dead context.
"""

from __future__ import annotations

import collections
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from vjepa_core.imgmsg import SUPPORTED_ENCODINGS, ImageConversionError, msg_to_rgb
from vjepa_core.loading import load_world_model
from vjepa_core.msgconv import fill_latent_msg
from vjepa_core.preprocessing import CROP_POLICIES
from vjepa_core.process import tune_node_process
from vjepa_interfaces.msg import Latent
from vjepa_interfaces.srv import EncodeImage
from vjepa_perception.frame_encoder import EncodedFrame, FrameEncoder

__all__ = ["DrainingExecutor", "EncoderNode", "PARAMETERS", "frame_health", "main", "run_node"]

# name -> (default, description). Defaults mirror config/perception.yaml.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "image_topic": ("/camera/image_raw", f"sensor_msgs/Image input ({', '.join(SUPPORTED_ENCODINGS)})"),
    "compressed_image_topic": ("", "if set, subscribe to this sensor_msgs/CompressedImage topic instead"),
    "latent_topic": ("/vjepa/latent", "vjepa_interfaces/Latent output"),
    "checkpoint": ("", "encoder weights: released/own .pt, or a Hugging Face directory / .safetensors (required)"),
    "model_config": ("vit_giant", "preset (vit_large, vit_huge, vit_giant, vit_giant_384) or JSON/YAML file; "
                                  "empty: the configs embedded in checkpoints written by vjepa2_ros"),
    "checkpoint_key": ("encoder", "checkpoint section to load: encoder | target_encoder"),
    "backend": ("torch", "torch | onnxruntime | onnxruntime-cuda | onnxruntime-trt | tensorrt"),
    "device": ("cpu", "torch device: cpu | cuda | cuda:N"),
    "onnx_dir": ("", "export directory of `vjepa-export onnx` (non-torch backends)"),
    "threads": (0, "CPU inference threads (0 = library default); leave cores for drivers on small machines"),
    "max_rate_hz": (10.0, "encode at most this often; newer frames replace unprocessed ones"),
    "frames_per_clip": (1, "1: each frame repeated into one tubelet (planner); >1: sliding clips (torch only)"),
    "crop": ("center", "preprocessing crop policy: center | eval | resize | droid (the released AC model's "
                       "DROID training crop: full height x 1.35 height, stretched; vjepa_core.preprocessing)"),
    "normalize": (True, "layer-norm the tokens (what the V-JEPA 2-AC predictor consumes)"),
    "diagnostics_period_s": (1.0, "period of /diagnostics messages"),
    "warn_throttle_s": (2.0, "minimum seconds between two warnings about the same kind of bad frame"),
}


HEALTH_HORIZON_S = 5.0  # /diagnostics grades the frames of this many recent seconds


class _RateMeter:
    """Events per second and latency percentiles over a sliding window."""

    def __init__(self, window: int = 200) -> None:
        self.times: collections.deque[float] = collections.deque(maxlen=window)
        self.latencies: collections.deque[float] = collections.deque(maxlen=window)

    def add(self, t: float, latency: float | None = None) -> None:
        self.times.append(t)
        if latency is not None:
            self.latencies.append(latency)

    def rate(self, now: float, horizon: float = HEALTH_HORIZON_S) -> float:
        recent = [t for t in self.times if now - t <= horizon]
        return len(recent) / horizon if recent else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def frame_health(outcomes: list[str]) -> tuple[int, str] | None:
    """Diagnostic level and message from the outcomes of recent frames ("ok", "invalid", "failed"), or None when
    every frame became a latent (or there were none): ERROR when none did, WARN when some did not."""
    failed, invalid = outcomes.count("failed"), outcomes.count("invalid")
    if not failed and not invalid:
        return None
    parts = [f"{n} {what}" for n, what in ((failed, "failed to encode"), (invalid, "invalid")) if n]
    if failed + invalid == len(outcomes):
        return DiagnosticStatus.ERROR, f"no latent from the last {len(outcomes)} frames: {', '.join(parts)}"
    return DiagnosticStatus.WARN, f"{failed + invalid} of the last {len(outcomes)} frames gave no latent: " \
                                  f"{', '.join(parts)}"


class EncoderNode(Node):
    """See the module docstring. Construct, then spin with a multi-threaded executor (see :func:`main`)."""

    def __init__(self, **node_kwargs: Any) -> None:
        # What destroy_node() needs exists before anything can fail: rclpy destroys a node whose constructor
        # raised when its context shuts down.
        self._cond = threading.Condition()      # guards the pending slot, the counters and _closing
        self._publish_lock = threading.Lock()   # held across "not closing? publish": destroy_node waits for it
        self._closing = False
        self._worker: threading.Thread | None = None
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
        self._pending: Any = None               # newest unprocessed message
        self._stats = {"received": 0, "dropped": 0, "invalid": 0, "published": 0, "failed": 0}
        self._last_error = ""                   # the last encode failure's reason
        self._outcomes: collections.deque[tuple[float, str]] = collections.deque(maxlen=1000)
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
                if self._closing:
                    return
                msg, self._pending = self._pending, None
            if msg is None:
                continue
            next_allowed = time.monotonic() + period
            try:
                self._process(msg)
            except Exception as exc:  # keep serving: a failed frame or a transient backend error must not kill it
                self._record("failed", exc)
                self._warn("encode", f"failed to encode a frame: {type(exc).__name__}: {exc}")

    def _process(self, msg: Any) -> None:
        """Convert, encode and publish one frame. Unusable images are counted here; the caller counts what raises."""
        try:
            rgb = msg_to_rgb(msg)
        except ImageConversionError as exc:
            self._record("invalid")
            self._warn(re.sub(r"\d+", "#", str(exc)), f"dropping frame: {exc}")  # throttled per kind of problem
            return
        with self._lock:
            encoded = self.encoder.push(rgb)
        if encoded is None:
            return                              # a clip is still filling
        out = self._to_msg(encoded, msg.header)
        with self._publish_lock:
            if self._closing:                   # shutting down: the publisher may be gone already
                return
            self.pub.publish(out)
        with self._cond:
            self._stats["published"] += 1
            self._out.add(time.monotonic(), encoded.inference_time)
            self._outcomes.append((time.monotonic(), "ok"))

    def _record(self, outcome: str, exc: BaseException | None = None) -> None:
        """Count a frame that gave no latent ("invalid" image, or "failed" to encode with ``exc``)."""
        with self._cond:
            self._stats[outcome] += 1
            self._outcomes.append((time.monotonic(), outcome))
            if exc is not None:
                self._last_error = f"{type(exc).__name__}: {exc}"

    def _on_encode(self, request: EncodeImage.Request, response: EncodeImage.Response) -> EncodeImage.Response:
        """~/encode: one image (raw, or compressed when raw is empty) -> Latent with the same model."""
        msg = request.image if request.image.data else request.compressed_image
        try:
            rgb = msg_to_rgb(msg)
        except ImageConversionError as exc:
            response.success, response.message = False, f"cannot use the image: {exc}"
            return response
        try:
            with self._lock:
                encoded = self.encoder.encode_single(rgb)
        except Exception as exc:  # an error response, never an exception out of the executor
            with self._cond:
                self._stats["failed"] += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"~/encode failed: {self._last_error}")
            response.success, response.message = False, f"encoding failed: {self._last_error}"
            return response
        response.latent = self._to_msg(encoded, msg.header)
        response.success, response.message = True, f"encoded with {self.model_id}"
        return response

    def _to_msg(self, encoded: EncodedFrame, header: Any) -> Latent:
        out = Latent()
        out.header = header
        cfg = self.encoder.cfg
        return fill_latent_msg(out, encoded.tokens, model_id=self.model_id,
                               normalized=self.model.world_model.normalize, image_size=self.encoder.size,
                               patch_size=cfg.patch_size, tubelet_size=cfg.tubelet_size,
                               inference_time=encoded.inference_time)

    # ---- reporting -------------------------------------------------------------------------------------------
    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(key, -1e9) >= float(self.params["warn_throttle_s"]):
            self._last_warn[key] = now
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._cond:
            if self._closing:
                return
            stats = dict(self._stats)
            last_error = self._last_error
            recent = [kind for t, kind in self._outcomes if now - t <= HEALTH_HORIZON_S]
            in_rate, out_rate = self._in.rate(now), self._out.rate(now)
            p50, p99 = self._out.percentile(50), self._out.percentile(99)
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: V-JEPA 2 encoder"
        status.hardware_id = self.model_id
        status.level = DiagnosticStatus.OK
        status.message = "encoding"
        health = frame_health(recent)
        if health is not None:
            status.level, status.message = health
            if "failed" in recent:
                status.message += f" (last error: {last_error})"
        elif stats["received"] == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no images received yet"
        elif in_rate == 0.0:
            status.level, status.message = DiagnosticStatus.WARN, "no images in the last 5 s"
        values = {
            "input_rate_hz": f"{in_rate:.2f}", "output_rate_hz": f"{out_rate:.2f}",
            "latency_ms_p50": f"{p50 * 1e3:.1f}", "latency_ms_p99": f"{p99 * 1e3:.1f}",
            "received": stats["received"], "published": stats["published"],
            "dropped_frames": stats["dropped"], "invalid_frames": stats["invalid"],
            "encode_failures": stats["failed"], "last_encode_error": last_error,
            "backend": self.params["backend"], "device": self.params["device"], "model_id": self.model_id,
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [status]
        self.diag_pub.publish(arr)

    def destroy_node(self) -> None:
        """Stop the worker (it publishes nothing once this starts) and join it, then destroy the ROS entities.

        Safe on a node whose constructor failed part-way (rclpy destroys such nodes on context shutdown).
        """
        with self._publish_lock, self._cond:    # a publish in progress completes first; none starts after
            self._closing = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)      # an encode in flight finishes, then the worker sees _closing
            if self._worker.is_alive():
                self.get_logger().warning("the encoder worker is still busy after 5 s; it will publish nothing")
        super().destroy_node()


class DrainingExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor whose shutdown first lets its thread pool finish the callbacks already handed to it.

    rclpy 9 destroys the executor's guard condition before the pool has run every queued handler; a handler that
    starts after that raises "cannot use Destroyable because destruction was requested", printed at exit as "The
    following exception was never retrieved". Shut down only after the spinning thread has stopped spinning.
    """

    def shutdown(self, timeout_sec: float | None = None, *, wait_for_threads: bool = True) -> bool:
        """Wait (at most 5 s) for the handlers in the pool, then shut down as MultiThreadedExecutor does."""
        deadline = time.monotonic() + 5.0
        while any(not task.done() for task in self._futures) and time.monotonic() < deadline:
            time.sleep(0.01)
        return super().shutdown(timeout_sec, wait_for_threads=wait_for_threads)


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None = None, threads: int = 2) -> int:
    """Spin the node ``factory()`` builds until SIGINT/SIGTERM; exit status 1 (one FATAL line, no traceback) when it
    cannot start. Used by every perception node's ``main``.

    SIGINT and SIGTERM end the spin loop; the node (worker first) is destroyed before the context shuts down, so
    nothing is published on a dead context. rclpy's own signal handlers are not installed: they shut the context
    down first.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        tune_node_process()  # the inference worker and the executor share the GIL (vjepa_core.process)
        node = factory()
    except Exception as exc:  # a clear refusal to start: bad parameters, missing or mismatched model files
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # one log line
        rclpy.logging.get_logger(name).fatal(f"cannot start: {reason}")
        rclpy.try_shutdown()
        return 1
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    executor = DrainingExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)  # returns at least every 0.1 s to see the stop request
    finally:
        executor.shutdown()                     # runs the callbacks already taken (a ~/encode request, ...)
        node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vjepa_perception encoder_node`; exit status 1 when the node cannot start."""
    return run_node(EncoderNode, "encoder_node", args)


if __name__ == "__main__":
    sys.exit(main())
