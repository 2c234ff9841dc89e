"""`vjepa-run` starts real rclpy nodes from a YAML run file, stops them cleanly, and fails when a node fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from vjepa_core.runner import NodeSpec, RunnerError, load_run_file, resolve_executable

TALKER = textwrap.dedent(
    """\
    #!{python}
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_msgs.msg import String

    def main():
        rclpy.init()
        node = rclpy.create_node("talker")
        node.declare_parameter("greeting", "hello")
        pub = node.create_publisher(String, "chatter", 10)
        greeting = node.get_parameter("greeting").value
        node.create_timer(0.1, lambda: pub.publish(String(data=greeting)))
        print("talker up with greeting=" + greeting, flush=True)
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        print("talker shutting down cleanly", flush=True)
        node.destroy_node()
        rclpy.try_shutdown()

    main()
    """
)

LISTENER = textwrap.dedent(
    """\
    #!{python}
    import sys
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_msgs.msg import String

    def main():
        rclpy.init()
        node = rclpy.create_node("listener")
        node.declare_parameter("fail_on", "")
        fail_on = node.get_parameter("fail_on").value
        def cb(msg):
            print("heard " + msg.data, flush=True)
            if fail_on and msg.data == fail_on:
                print("listener: failing on purpose", flush=True)
                sys.exit(3)
        node.create_subscription(String, "chatter", cb, 10)
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        print("listener shutting down cleanly", flush=True)
        rclpy.try_shutdown()

    main()
    """
)


@pytest.fixture
def fake_prefix(tmp_path, monkeypatch):
    """An install prefix laid out like colcon's (`lib/<pkg>/<exe>`) holding two trivial rclpy nodes."""
    lib = tmp_path / "prefix" / "lib" / "demo_nodes"
    lib.mkdir(parents=True)
    for name, src in (("talker", TALKER), ("listener", LISTENER)):
        exe = lib / name
        exe.write_text(src.format(python=sys.executable))
        exe.chmod(0o755)
    prefixes = [str(tmp_path / "prefix"), os.environ.get("AMENT_PREFIX_PATH", "")]
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(prefixes))
    return tmp_path


def write_run_file(tmp_path: Path, fail_on: str = "") -> Path:
    params = tmp_path / "config" / "talker.yaml"
    params.parent.mkdir(exist_ok=True)
    params.write_text(yaml.safe_dump({"talker": {"ros__parameters": {"greeting": "from-params-file"}}}))
    run = tmp_path / "launch" / "demo.run.yaml"
    run.parent.mkdir(exist_ok=True)
    run.write_text(yaml.safe_dump({"nodes": [
        {"package": "demo_nodes", "executable": "talker", "parameters": ["config/talker.yaml"]},
        {"package": "demo_nodes", "executable": "listener", "parameters": [{"fail_on": fail_on}]},
    ]}))
    return run


class RunnerProcess:
    """`vjepa-run` in a subprocess, its output collected line by line by a thread."""

    def __init__(self, run_file: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vjepa_core.runner", str(run_file), "--stop-timeout", "5", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and needle not in self.output:
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        assert needle in self.output, f"{needle!r} not seen within {timeout} s; output:\n{self.output}"

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(5)
        self.proc.stdout.close()  # the pipe is ours to close once the reader has drained it
        return rc


def test_two_nodes_start_talk_and_stop_cleanly_on_sigint(fake_prefix, ros_domain_id):
    runner = RunnerProcess(write_run_file(fake_prefix))
    runner.wait_for("[listener] heard from-params-file", 30)
    runner.proc.send_signal(signal.SIGINT)
    rc = runner.wait(30)
    out = runner.output
    assert rc == 0, out
    assert "[talker] talker shutting down cleanly" in out
    assert "[listener] listener shutting down cleanly" in out
    assert "did not stop" not in out


def test_failing_node_makes_runner_exit_nonzero_and_stops_the_rest(fake_prefix, ros_domain_id):
    runner = RunnerProcess(write_run_file(fake_prefix, fail_on="from-params-file"))
    rc = runner.wait(60)
    out = runner.output
    assert rc == 1, out
    assert "listener died with exit code 3" in out
    assert "[talker] talker shutting down cleanly" in out


def test_duration_and_overrides(fake_prefix, ros_domain_id):
    runner = RunnerProcess(write_run_file(fake_prefix), "--duration", "4", "--set", "talker.greeting=overridden")
    rc = runner.wait(60)
    out = runner.output
    assert rc == 0, out
    assert "[listener] heard overridden" in out


def test_bad_run_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [{package: x, executable: y, bogus: 1}]")
    with pytest.raises(RunnerError, match="bogus"):
        load_run_file(bad)
    bad.write_text("nodes: []")
    with pytest.raises(RunnerError, match="non-empty"):
        load_run_file(bad)
    with pytest.raises(RunnerError, match="not found"):
        resolve_executable("no_such_pkg", "no_such_exe")
    with pytest.raises(RunnerError, match="package"):
        NodeSpec.from_dict({"executable": "x"})


def test_missing_params_file_is_reported_without_starting(fake_prefix, tmp_path):
    run = tmp_path / "r.yaml"
    run.write_text(yaml.safe_dump({"nodes": [{"package": "demo_nodes", "executable": "talker",
                                              "parameters": ["config/missing.yaml"]}]}))
    result = subprocess.run([sys.executable, "-m", "vjepa_core.runner", str(run)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr
