"""Start a set of ROS 2 nodes as processes for a pipeline stage, with their output in a log file.

The pipeline drives the *real* ROS graph (sim_node, recorder_node, encoder_node, planner_node, each its own
process over Fast DDS), started with the project's runner (`vjepa_core.runner`, the engine of `vjepa-run`),
so a stage runs the same node configurations as `vjepa-run launch/sim_demo.run.yaml` and the launch files.

Each stage gets its own ``ROS_DOMAIN_ID`` (unless the caller set one) and localhost-only discovery, so a
pipeline run never hears another one (or a test) on the same host.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

__all__ = ["NodeGraph", "repo_root", "pick_domain_id"]


def repo_root() -> Path:
    """The vjepa2_ros checkout (the directory holding ``config/`` and ``launch/``).

    Found from ``VJEPA_ROOT``, the current directory, or this file's location (editable/symlink installs).
    """
    candidates = [os.environ.get("VJEPA_ROOT", ""), os.getcwd(), *map(str, Path(__file__).resolve().parents)]
    for c in candidates:
        if c and (Path(c) / "config" / "sim_pipeline").is_dir():
            return Path(c)
    raise FileNotFoundError("cannot find the vjepa2_ros checkout (config/sim_pipeline/); run from the repository "
                            "root or set VJEPA_ROOT")


def pick_domain_id() -> int:
    """``ROS_DOMAIN_ID`` from the environment, else one derived from the pid (101..200, clear of the tests')."""
    env = os.environ.get("ROS_DOMAIN_ID")
    if env:
        return int(env)
    return 101 + os.getpid() % 100


class NodeGraph:
    """Context manager: start node processes (runner ``NodeSpec`` dicts), stop them all on exit.

    Node output goes to ``log_path`` (prefixed by node name) instead of the terminal, so a stage can print its
    own progress. :meth:`check` raises when a node died (with the log's tail), so a stage never waits on a
    dead graph.
    """

    def __init__(self, nodes: list[dict[str, Any]], log_path: Path, domain_id: int | None = None) -> None:
        from vjepa_core.runner import NodeSpec

        self.specs = [NodeSpec.from_dict(d) for d in nodes]
        self.log_path = Path(log_path)
        self.domain_id = pick_domain_id() if domain_id is None else int(domain_id)
        self._runner: Any = None
        self._log: Any = None

    def __enter__(self) -> NodeGraph:
        from vjepa_core.runner import Runner

        # the nodes get the graph's domain in their own environment; this process joins it through
        # rclpy.init(domain_id=graph.domain_id) and keeps its own environment untouched
        for spec in self.specs:
            spec.env = {"ROS_DOMAIN_ID": str(self.domain_id),
                        "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
                        "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"), **spec.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed in __exit__)
        log = self._log

        class _LoggedRunner(Runner):
            def _pump(self, spec: Any, stream: Any) -> None:  # node output -> log file
                for raw in iter(stream.readline, b""):
                    log.write(f"[{spec.label}] {raw.decode(errors='replace').rstrip()}\n")
                stream.close()

        self._runner = _LoggedRunner(self.specs, repo_root() / "launch", stop_timeout=5.0)
        self._runner.start()
        return self

    def check(self) -> None:
        """Raise ``RuntimeError`` if a node process has exited."""
        for spec, proc in self._runner.procs:
            rc = proc.poll()
            if rc is not None:
                raise RuntimeError(f"node {spec.label} exited with code {rc}; last log lines:\n{self.tail()}")

    def tail(self, lines: int = 25) -> str:
        """Last lines of the node log (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            self._runner.stop_all()
        if self._log is not None:
            time.sleep(0.1)
            self._log.close()


def wait_for_service(node: Any, client: Any, what: str, timeout: float, graph: NodeGraph | None = None) -> None:
    """Wait until a service has a server; raise ``TimeoutError`` naming it (and the node log) otherwise."""
    deadline = time.monotonic() + timeout
    while not client.wait_for_service(timeout_sec=0.5):
        if graph is not None:
            graph.check()
        if time.monotonic() > deadline:
            tail = graph.tail() if graph is not None else ""
            raise TimeoutError(f"service {what} not available after {timeout:.0f} s\n{tail}")


def call(executor: Any, client: Any, request: Any, what: str, timeout: float = 30.0,
         graph: NodeGraph | None = None) -> Any:
    """Call a service and spin ``executor`` until the response; ``TimeoutError`` after ``timeout`` s."""
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done():
        executor.spin_once(timeout_sec=0.05)
        if graph is not None:
            graph.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"service call {what} timed out after {timeout:.0f} s")
    return future.result()
