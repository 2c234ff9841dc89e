"""`vjepa-run`: start a set of vjepa2_ros nodes as separate processes from a YAML file.

Where `ros2 launch` exists (a lab machine with ROS 2 installed), use the launch files in `launch/`. This runner is
for environments without the ROS 2 CLI or `launch_ros` (ROS 2 from PyPI wheels, CI, a laptop), and reads the same
ROS 2 parameter files (`config/*.yaml`), so both paths run identical node configurations.

A run file lists nodes::

    nodes:
      - package: vjepa_sim          # ROS package that owns the executable
        executable: sim_node        # console-script name, as `ros2 run vjepa_sim sim_node`
        name: sim_node              # optional: node name (remaps __node)
        namespace: /                # optional
        parameters:                 # ROS 2 params files (relative to this file, then the repo root) and/or dicts
          - config/sim.yaml
          - {camera_rate_hz: 10.0}
        remappings: {/camera/image_raw: /cam0/image_raw}
        env: {SOME_VAR: value}      # optional extra environment
        exit_shuts_down: false      # optional: a clean exit of this node stops the others too

Semantics follow `ros2 launch`: Ctrl-C (SIGINT) or SIGTERM stops every node (SIGINT, then SIGTERM, then SIGKILL
after timeouts); a node that exits with a non-zero status stops the others and makes the runner exit non-zero.
Output lines of each node are prefixed with its name. This module imports no rclpy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

__all__ = ["NodeSpec", "RunnerError", "load_run_file", "resolve_executable", "Runner", "main"]


class RunnerError(RuntimeError):
    """A run file or node specification that cannot be started."""


_NODE_KEYS = {"package", "executable", "name", "namespace", "parameters", "remappings", "env", "exit_shuts_down",
              "arguments"}


@dataclass
class NodeSpec:
    """One node process: what to run and with which ROS arguments."""

    package: str
    executable: str
    name: str | None = None
    namespace: str | None = None
    parameters: list[Any] = field(default_factory=list)
    remappings: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    exit_shuts_down: bool = False
    arguments: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Name used to prefix the node's output."""
        return self.name or self.executable

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeSpec:
        """Validate one `nodes:` entry of a run file."""
        if not isinstance(d, dict):
            raise RunnerError(f"each entry of 'nodes' must be a mapping, got {d!r}")
        unknown = set(d) - _NODE_KEYS
        if unknown:
            raise RunnerError(f"unknown key(s) {sorted(unknown)} in node entry; allowed: {sorted(_NODE_KEYS)}")
        for key in ("package", "executable"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise RunnerError(f"node entry {d!r} needs a non-empty '{key}'")
        params = d.get("parameters") or []
        if not isinstance(params, list):
            raise RunnerError(f"'parameters' of {d['executable']} must be a list of files and/or mappings")
        return cls(
            package=d["package"], executable=d["executable"], name=d.get("name"), namespace=d.get("namespace"),
            parameters=list(params), remappings=dict(d.get("remappings") or {}),
            env={str(k): str(v) for k, v in (d.get("env") or {}).items()},
            exit_shuts_down=bool(d.get("exit_shuts_down", False)),
            arguments=[str(a) for a in d.get("arguments") or []],
        )


def load_run_file(path: str | os.PathLike[str]) -> list[NodeSpec]:
    """Parse and validate a run file into node specifications."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RunnerError(f"cannot read run file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RunnerError(f"run file {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
        raise RunnerError(f"run file {path} must have a non-empty 'nodes:' list")
    unknown = set(doc) - {"nodes", "description"}
    if unknown:
        raise RunnerError(f"unknown top-level key(s) {sorted(unknown)} in {path}")
    return [NodeSpec.from_dict(d) for d in doc["nodes"]]


def resolve_executable(package: str, executable: str) -> list[str]:
    """Command that runs `executable` of `package`, as `ros2 run` would find it.

    Looks first in the ament index (`<prefix>/lib/<package>/<executable>`, what colcon installs), then at the
    console-script entry points of the installed Python distribution named `package`.
    """
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "lib" / package / executable
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    for ep in metadata.entry_points(group="console_scripts"):
        dist = getattr(ep, "dist", None)
        if ep.name == executable and (dist is None or dist.metadata["Name"].replace("-", "_") == package):
            module, _, attr = ep.value.partition(":")
            code = f"import sys; from {module} import {attr} as _m; sys.exit(_m())"
            return [sys.executable, "-c", code]
    raise RunnerError(
        f"executable '{executable}' of package '{package}' not found (searched AMENT_PREFIX_PATH and console "
        "scripts); is the workspace built and sourced (`make setup`, `source scripts/env.sh`)?"
    )


def _resolve_params_file(entry: str, run_file_dir: Path) -> Path:
    for base in (run_file_dir, run_file_dir.parent, Path.cwd()):
        candidate = (base / entry).resolve()
        if candidate.is_file():
            return candidate
    raise RunnerError(f"parameter file '{entry}' not found (relative to {run_file_dir}, its parent, or cwd)")


class Runner:
    """Start node processes, relay their output, and stop them all together."""

    def __init__(self, specs: list[NodeSpec], run_file_dir: Path, *, stop_timeout: float = 10.0,
                 overrides: dict[str, dict[str, Any]] | None = None) -> None:
        self.specs = specs
        self.run_file_dir = run_file_dir
        self.stop_timeout = stop_timeout
        self.overrides = overrides or {}
        self.procs: list[tuple[NodeSpec, subprocess.Popen[bytes]]] = []
        self._tmpdir = Path(tempfile.mkdtemp(prefix="vjepa-run-"))
        self._stop = threading.Event()
        self._print_lock = threading.Lock()

    def command(self, spec: NodeSpec) -> list[str]:
        """Full command line of a node: executable, its arguments, then `--ros-args` as `ros2 run` builds it."""
        cmd = resolve_executable(spec.package, spec.executable) + list(spec.arguments) + ["--ros-args"]
        if spec.name:
            cmd += ["-r", f"__node:={spec.name}"]
        if spec.namespace:
            cmd += ["-r", f"__ns:={spec.namespace}"]
        inline: dict[str, Any] = {}
        for entry in spec.parameters:
            if isinstance(entry, str):
                cmd += ["--params-file", str(_resolve_params_file(entry, self.run_file_dir))]
            elif isinstance(entry, dict):
                inline.update(entry)
            else:
                raise RunnerError(f"parameter entry {entry!r} of {spec.label} is neither a file nor a mapping")
        inline.update(self.overrides.get(spec.label, {}))
        if inline:
            path = self._tmpdir / f"{spec.label}_{len(self.procs)}.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": inline}}))
            cmd += ["--params-file", str(path)]
        for src, dst in spec.remappings.items():
            cmd += ["-r", f"{src}:={dst}"]
        return cmd

    def _pump(self, spec: NodeSpec, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._print_lock:
                print(f"[{spec.label}] {line}", flush=True)
        stream.close()

    def start(self) -> None:
        """Start every node (in file order)."""
        for spec in self.specs:
            env = dict(os.environ, PYTHONUNBUFFERED="1", **spec.env)
            cmd = self.command(spec)
            print(f"[vjepa-run] starting {spec.label}: {' '.join(cmd)}", flush=True)
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            threading.Thread(target=self._pump, args=(spec, proc.stdout), daemon=True).start()
            self.procs.append((spec, proc))

    def request_stop(self, *_: Any) -> None:
        """Signal handler: ask the supervision loop to stop every node."""
        self._stop.set()

    def supervise(self, duration: float | None = None) -> int:
        """Wait until a stop request, a failed node or `duration` seconds; then stop all. Returns the exit code."""
        deadline = None if duration is None else time.monotonic() + duration
        code = 0
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                print(f"[vjepa-run] duration of {duration:.1f} s reached, stopping", flush=True)
                break
            running = 0
            for spec, proc in self.procs:
                rc = proc.poll()
                if rc is None:
                    running += 1
                    continue
                if getattr(proc, "_vjepa_reported", False):
                    continue
                proc._vjepa_reported = True  # type: ignore[attr-defined]
                if rc != 0:
                    print(f"[vjepa-run] {spec.label} died with exit code {rc}; stopping all nodes", flush=True)
                    code = 1
                    self._stop.set()
                else:
                    print(f"[vjepa-run] {spec.label} exited cleanly", flush=True)
                    if spec.exit_shuts_down:
                        self._stop.set()
            if running == 0:
                break
            time.sleep(0.1)
        self.stop_all()
        return code

    def stop_all(self) -> None:
        """SIGINT every node still running, then SIGTERM and SIGKILL after `stop_timeout` seconds each."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [(s, p) for s, p in self.procs if p.poll() is None]
            if not alive:
                break
            for _, proc in alive:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + self.stop_timeout
            while time.monotonic() < deadline and any(p.poll() is None for _, p in alive):
                time.sleep(0.05)
            still = [s.label for s, p in alive if p.poll() is None]
            if still and sig != signal.SIGKILL:
                print(f"[vjepa-run] {', '.join(still)} did not stop after {sig.name}; escalating", flush=True)
        shutil.rmtree(self._tmpdir, ignore_errors=True)


def _parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, param = key.partition(".")
        if not sep or not dot or not node or not param:
            raise RunnerError(f"--set expects NODE.PARAM=VALUE, got {item!r}")
        out.setdefault(node, {})[param] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of `vjepa-run`."""
    parser = argparse.ArgumentParser(
        prog="vjepa-run",
        description="Start vjepa2_ros nodes as processes from a run file (the launch-file equivalent where "
                    "`ros2 launch` is not installed). Ctrl-C stops all nodes; a failing node fails the run.",
    )
    parser.add_argument("run_file", help="YAML run file, e.g. launch/sim_demo.run.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override a parameter of one node (YAML value), repeatable")
    parser.add_argument("--duration", type=float, default=None, help="stop all nodes after this many seconds")
    parser.add_argument("--stop-timeout", type=float, default=10.0,
                        help="seconds to wait after each of SIGINT/SIGTERM before escalating")
    parser.add_argument("--dry-run", action="store_true", help="print the command lines and exit")
    args = parser.parse_args(argv)
    try:
        specs = load_run_file(args.run_file)
        runner = Runner(specs, Path(args.run_file).resolve().parent, stop_timeout=args.stop_timeout,
                        overrides=_parse_overrides(args.set))
        if args.dry_run:
            for spec in specs:
                print(" ".join(runner.command(spec)))
            return 0
    except RunnerError as exc:
        print(f"vjepa-run: error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, runner.request_stop)
    signal.signal(signal.SIGTERM, runner.request_stop)
    try:
        runner.start()
    except (RunnerError, OSError) as exc:
        print(f"vjepa-run: error: {exc}", file=sys.stderr)
        runner.stop_all()
        return 2
    return runner.supervise(args.duration)


if __name__ == "__main__":
    sys.exit(main())
