"""Every launch file in launch/ run by the real `ros2 launch`, and the README's `ros2 ...` commands run against it.

Each test starts `ros2 launch` as a subprocess in its own ROS_DOMAIN_ID (``ros_domain_id``, localhost discovery) and
its own session, checks behaviour with the real `ros2` CLI (nodes listed, parameters with their types, latents and
plan status flowing, services answering), then presses Ctrl-C the way a terminal does (SIGINT to the process group)
or the way a supervisor does (``--noninteractive``, SIGINT to `ros2 launch` alone) and requires exit status 0, every
node "finished cleanly", no traceback, and no process left behind (each subprocess carries a token in its
environment; the /proc scan finds anything that kept it, the `ros2` daemon included).

franka_vjepa.launch.py runs against test-only stand-ins (tests/standins/franka_ros2, put on AMENT_PREFIX_PATH of the
subprocess only): franka_bringup's franka.launch.py with franka_ros2's exact launch arguments, recording what it was
given, and controller_manager's spawner, recording its command line. The planner's franka_action gripper adapter
imports the real franka_msgs (the ``franka_interfaces`` test workspace).

Where the launch system or `ros2` is missing the tests skip saying how to get them (``ros2_cli``); with CI=true they
fail instead. Polls, never fixed sleeps: the CLI needs a few seconds to discover a graph on a loaded machine.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml
from _ros2_helpers import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
STANDINS = ROOT / "tests" / "standins" / "franka_ros2"
TINY = ROOT / "tests" / "fixtures" / "parity_tiny_a"  # 64 px encoder + AC predictor (torch, CPU: seconds to load)
TOKEN_VAR = "VJEPA_LAUNCH_TEST_TOKEN"
START_TIMEOUT = 120.0  # s until every node of a launch is listed (model loading on 2 busy cores)
CALL_TIMEOUT = 90.0    # s for one CLI command (2 busy cores: a `ros2` command alone needs ~1 s of CPU)
QUERY_TIMEOUT = 45.0   # s for one repeated graph query (`ros2 node info` in a poll) before it counts as a miss


# ---- processes -------------------------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process from /proc, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def _pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live process below ``root``."""
    table = {pid: st for pid in _pids() if (st := _stat(pid)) is not None}
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (state, ppid, start) in table.items():
            if ppid == parent and pid not in found and state != "Z":
                found[pid] = start
                frontier.append(pid)
    return found


def alive(pid: int, start: int) -> bool:
    """The process ``pid`` started at ``start`` still runs (not a zombie, not a reused pid)."""
    st = _stat(pid)
    return st is not None and st[2] == start and st[0] != "Z"


def carrying(token: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment holds this test's token."""
    needle = f"{TOKEN_VAR}={token}".encode()
    found = {}
    for pid in _pids():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
            if needle in env.split(b"\0") and (st := _stat(pid)) is not None and st[0] != "Z":
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def poll(check: Callable[[], object], timeout: float, what: str, interval: float = 0.5,
         detail: Callable[[], str] = lambda: "") -> object:
    """Call ``check`` until it returns something truthy (returned) or ``timeout`` s pass (test failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")
        time.sleep(interval)


class Launch:
    """One `ros2 launch` subprocess in its own session; output in a log file.

    Interactive (the default) it gets a pseudo-terminal as stdin, as from a shell: `ros2 launch` then leaves Ctrl-C
    to the terminal, which signals the whole foreground group. ``noninteractive`` adds ``--noninteractive`` (stdin
    not a terminal): `ros2 launch` forwards the SIGINT it gets to its processes, as under a supervisor. Either way
    every process gets exactly one SIGINT."""

    def __init__(self, argv: list[str], env: dict, log: Path, noninteractive: bool) -> None:
        self.argv, self.log, self.noninteractive = argv, log, noninteractive
        self._log_file = log.open("wb")
        self._pty = None if noninteractive else os.openpty()
        # A session of its own: Ctrl-C reaches it as from a terminal (the group), never from pytest's terminal; SIGINT
        # restored to its default in case pytest runs with it ignored (a background job)
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL if self._pty is None else self._pty[1],
                                     start_new_session=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        if self._pty is not None:
            os.close(self._pty[1])
        self.children: dict[int, int] = {}

    def _close(self) -> None:
        if not self._log_file.closed:
            self._log_file.close()
        if self._pty is not None:
            os.close(self._pty[0])
            self._pty = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, n: int = 60) -> str:
        return f"--- {' '.join(self.argv[1:4])} (rc {self.proc.poll()}) ---\n" + "\n".join(
            self.output().splitlines()[-n:])

    def running(self) -> bool:
        return self.proc.poll() is None

    def note_children(self) -> dict[int, int]:
        """Remember every process below `ros2 launch` now (checked for leftovers after the stop)."""
        self.children.update(descendants(self.proc.pid))
        return self.children

    def interrupt(self, timeout: float = 45.0) -> int:
        """Ctrl-C: SIGINT to the process group (interactive, as a terminal does) or to `ros2 launch` alone
        (--noninteractive: it forwards the signal to its processes); the exit status."""
        self.note_children()
        if self.noninteractive:
            self.proc.send_signal(signal.SIGINT)
        else:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`ros2 launch` still running {timeout:.0f} s after SIGINT\n{self.tail()}")
        finally:
            self._close()

    def kill(self) -> None:
        """Teardown of a test that failed half-way: stop the group, hard if need be."""
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self._close()


class Graph:
    """The ROS graph of one test: an environment (domain, token, extra variables), `ros2` commands, launches."""

    def __init__(self, ros2: str, tmp_path: Path, env: dict) -> None:
        self.ros2, self.tmp_path, self.token = ros2, tmp_path, uuid.uuid4().hex
        log_dir = tmp_path / "ros_log"
        log_dir.mkdir(exist_ok=True)
        self.env = {**env, TOKEN_VAR: self.token, "PYTHONUNBUFFERED": "1", "ROS_LOG_DIR": str(log_dir),
                    "RCUTILS_COLORIZED_OUTPUT": "0"}
        self.launches: list[Launch] = []

    # -- launches --
    def launch(self, package: str, file: str, *arguments: str, noninteractive: bool = False) -> Launch:
        argv = [self.ros2, "launch", *(["--noninteractive"] if noninteractive else []), package, file, *arguments]
        run = Launch(argv, self.env, self.tmp_path / f"launch_{len(self.launches)}_{file}.log", noninteractive)
        self.launches.append(run)
        return run

    def tails(self) -> str:
        return "\n".join(run.tail() for run in self.launches)

    # -- ros2 commands --
    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.ros2, *args], env=self.env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)

    def finish(self, proc: subprocess.Popen, timeout: float = CALL_TIMEOUT) -> tuple[int, str]:
        rc, out = self.finish_or_kill(proc, timeout)
        if rc is None:
            pytest.fail(f"`ros2 {' '.join(proc.args[1:])}` did not finish in {timeout:.0f} s:\n{out}\n{self.tails()}")
        return rc, out

    @staticmethod
    def finish_or_kill(proc: subprocess.Popen, timeout: float) -> tuple[int | None, str]:
        """Wait for ``proc``; its exit status and output, or (None, what it printed) when it ran past ``timeout`` s
        (it is killed). For queries a poll repeats: the `ros2` CLI now and then prints its whole answer and then
        hangs in its DDS shutdown (seen in CI), which is the CLI's trouble, not the graph's."""
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return None, out
        return proc.returncode, out

    def cli(self, *args: str, timeout: float = CALL_TIMEOUT) -> str:
        """Run `ros2 ARGS`; its output (a test failure when it exits non-zero)."""
        rc, out = self.finish(self.start(*args), timeout)
        assert rc == 0, f"`ros2 {' '.join(args)}` exited {rc}:\n{out}\n{self.tails()}"
        return out

    def cli_many(self, commands: Iterable[tuple[str, ...]], at_once: int = 4) -> list[str]:
        """Run `ros2` commands ``at_once`` at a time (each mostly waits on discovery); their outputs in order."""
        commands = list(commands)
        outs: list[str] = []
        for first in range(0, len(commands), at_once):
            procs = [(cmd, self.start(*cmd)) for cmd in commands[first:first + at_once]]
            for cmd, proc in procs:
                rc, out = self.finish(proc)
                assert rc == 0, f"`ros2 {' '.join(cmd)}` exited {rc}:\n{out}\n{self.tails()}"
                outs.append(out)
        return outs

    def nodes(self, daemon: bool = False) -> set[str]:
        """`ros2 node list` (through the daemon, or a direct discovery of 1.5 s)."""
        args = ("node", "list") if daemon else ("node", "list", "--no-daemon", "--spin-time", "1.5")
        rc, out = self.finish_or_kill(self.start(*args), QUERY_TIMEOUT)   # a hung query is a miss: asked again
        return set(out.split()) if rc == 0 else set()

    def wait_logged(self, *markers: str, timeout: float = START_TIMEOUT) -> None:
        """Poll the launch logs (free, unlike a `ros2` command) until each marker, a node's own line saying it is
        ready, appears; fails early when a launch exits."""
        def check() -> bool:
            for run in self.launches:
                if not run.running():
                    pytest.fail(f"`ros2 launch` exited {run.proc.returncode} before {list(markers)} were logged:\n"
                                f"{run.tail()}")
            text = "".join(run.output() for run in self.launches)
            return all(marker in text for marker in markers)
        poll(check, timeout, f"start-up lines {list(markers)}", detail=self.tails)

    def wait_nodes(self, expected: set[str], ready: Iterable[str] = (), daemon: bool = False,
                   timeout: float = START_TIMEOUT) -> set[str]:
        """Poll `ros2 node list` until every expected node is listed (after the ``ready`` log lines, so the CLI is
        not run over and over while models load)."""
        self.wait_logged(*ready, timeout=timeout)

        def check() -> set[str] | None:
            listed = self.nodes(daemon)
            return listed if expected <= listed else None
        return poll(check, timeout, f"nodes {sorted(expected)} in `ros2 node list`", detail=self.tails)

    def stop_all(self, launches: list[Launch] | None = None) -> None:
        """Ctrl-C every launch; each must exit 0 with every process finished cleanly, and nothing may remain."""
        for run in launches or self.launches:
            rc = run.interrupt()
            out = run.output()
            assert rc == 0, f"`ros2 launch` exited {rc} after SIGINT\n{run.tail()}"
            started = re.findall(r"\[INFO\] \[([\w.-]+)\]: process started with pid \[(\d+)\]", out)
            assert started, f"no process started\n{run.tail()}"
            for name, pid in started:
                assert f"[{name}]: process has finished cleanly [pid {pid}]" in out, (
                    f"{name} did not exit 0 after SIGINT\n{run.tail()}")
            assert "Traceback" not in out, f"a traceback in the launch output\n{run.tail(200)}"
            left = [pid for pid, start in run.children.items() if alive(pid, start)]
            assert not left, f"processes left behind by `ros2 launch`: {left}\n{run.tail()}"
        self.assert_nothing_left()

    def assert_nothing_left(self) -> None:
        left = carrying(self.token)
        assert not left, f"processes of this test still running: {left}"

    def cleanup(self) -> None:
        """Teardown: end whatever this test started and is still running (by pid)."""
        for run in self.launches:
            run.kill()
        for pid in carrying(self.token):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while carrying(self.token) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in carrying(self.token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---- parsing the CLI's output ----------------------------------------------------------------------------------
PARAM_TYPES = {"Integer": int, "Double": float, "String": str, "Boolean": bool}


def param_value(out: str) -> tuple[type | str, object]:
    """`ros2 param get` output -> (python type, value); arrays -> ('<Type> array', list)."""
    m = re.search(r"^(Integer|Double|String|Boolean) value is: (.*)$", out, re.M)
    if m:
        kind, text = PARAM_TYPES[m.group(1)], m.group(2)
        return kind, (text == "True" if kind is bool else kind(text))
    m = re.search(r"^(Integer|Double|String|Boolean) values are: (.*)$", out, re.M)
    assert m, f"unexpected `ros2 param get` output:\n{out}"
    kind = PARAM_TYPES[m.group(1)]
    return f"{m.group(1)} array", [kind(v) for v in ast.literal_eval(m.group(2))]


def as_param(value: object) -> tuple[type | str, object]:
    """A params-file (YAML) value as `param_value` reports it: (python type, value), arrays ('<Type> array', list)."""
    if isinstance(value, list):
        kind = {bool: "Boolean", int: "Integer", float: "Double", str: "String"}[type(value[0])]
        return f"{kind} array", value
    return type(value), value


def from_params_file(path: str, node: str, *names: str) -> dict[str, tuple[type | str, object]]:
    """The values (typed) of ``names`` in the ``node`` block of config/``path``: what the node must report."""
    block = yaml.safe_load((ROOT / "config" / path).read_text())[node]["ros__parameters"]
    return {name: as_param(block[name]) for name in names}


def get_params(graph: Graph, wanted: dict[str, list[str]], *extra: tuple[str, ...]
               ) -> tuple[dict[str, dict[str, tuple[type | str, object]]], list[str]]:
    """`ros2 param get NODE NAME` for every node -> names in ``wanted`` and the ``extra`` `ros2` commands, all run
    together (each mostly waits on discovery): ({node: {name: (type, value)}}, outputs of ``extra``)."""
    pairs = [(node, name) for node, names in wanted.items() for name in names]
    outs = graph.cli_many([("param", "get", "--no-daemon", "--timeout", "30", node, name) for node, name in pairs]
                          + list(extra))
    params: dict[str, dict[str, tuple[type | str, object]]] = {node: {} for node in wanted}
    for (node, name), out in zip(pairs, outs):
        params[node][name] = param_value(out)
    return params, outs[len(pairs):]


def dump_command(node: str) -> tuple[str, ...]:
    """`ros2 param dump NODE`: every parameter of the node in one command (YAML, so types show: 1 vs 1.0 vs true)."""
    return ("param", "dump", "--no-daemon", "--timeout", "30", node)


def dumped(out: str) -> dict[str, object]:
    """`ros2 param dump` output -> {name: value}."""
    (block,) = yaml.safe_load(out).values()
    return block["ros__parameters"]


def assert_params_file_arrived(params: dict[str, object], path: str | Path, node: str, given: Iterable[str] = ()
                               ) -> None:
    """Every parameter of the ``node`` block of a params file (config/``path``) reached the node with its value and
    type, except those the launch file sets (``given``): no launch default replaced one, none was dropped."""
    file = path if isinstance(path, Path) else ROOT / "config" / path
    block = yaml.safe_load(file.read_text())[node]["ros__parameters"]
    wrong = {name: (value, params.get(name, "<not declared>")) for name, value in block.items()
             if name not in given and (name not in params or as_param(params[name]) != as_param(value))}
    assert not wrong, f"{node}: parameters of {file.name} that did not arrive as written (file, node): {wrong}"


def response(out: str) -> dict[str, str]:
    """The fields of a `ros2 service call` response (``..._Response(success=True, message='...')``)."""
    body = out.split("response:", 1)[-1]
    assert "_Response(" in body, f"no response in:\n{out}"
    return {k: v.strip("'\"") for k, v in re.findall(r"(\w+)=('[^']*'|\"[^\"]*\"|[^,()]+)", body)}


def echo_messages(out: str) -> list[dict]:
    """`ros2 topic echo` output -> the YAML documents before each '---' (a failure when there is none: `echo
    --timeout` exits 0 without a message)."""
    docs = [yaml.safe_load(doc) for doc in out.split("\n---") if doc.strip()]
    if not docs:
        pytest.fail(f"`ros2 topic echo` got no message:\n{out}")
    return docs


def image_yaml(size: int = 32) -> str:
    """A small rgb8 test pattern as a sensor_msgs/Image in YAML (the encoder resizes any image to its input)."""
    data = [((x * 7 + y * 3 + c * 50) % 256) for y in range(size) for x in range(size) for c in range(3)]
    return f"{{height: {size}, width: {size}, encoding: rgb8, step: {3 * size}, data: [{','.join(map(str, data))}]}}"


def goal_request(size: int = 32) -> str:
    """A SetGoal request with a small rgb8 test pattern."""
    return f"{{image: {image_yaml(size)}, task: launch test, start: true}}"


def echo_once_while(graph: Graph, topic: str, msg_type: str, trigger: Callable[[], None], timeout: float = 60.0,
                    extra: tuple[str, ...] = ()) -> dict:
    """`ros2 topic echo TOPIC --once` running while ``trigger`` is called until a message arrives (the subscription
    needs a moment to match: the trigger is repeated, not delayed); the message."""
    echo = graph.start("topic", "echo", "--no-daemon", "--once", *extra, topic, msg_type)
    deadline = time.monotonic() + timeout
    while echo.poll() is None and time.monotonic() < deadline:
        trigger()
        try:
            echo.wait(3.0)
        except subprocess.TimeoutExpired:
            pass
    rc, out = graph.finish(echo, timeout=5)
    assert rc == 0 and out.strip(), f"no message on {topic} (rc {rc}):\n{out}\n{graph.tails()}"
    return echo_messages(out)[0]


# ---- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture
def graph(ros2_cli, ros_domain_id, tmp_path):
    """A Graph in this test's domain; everything it started is ended at teardown."""
    g = Graph(ros2_cli, tmp_path, dict(os.environ))
    yield g
    g.cleanup()


def _installed_launch_file(name: str) -> None:
    """`ros2 launch vjepa2_ros NAME` runs the installed copy: fail clearly when the build predates the file."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = Path(get_package_share_directory("vjepa2_ros"))
    except PackageNotFoundError:
        pytest.fail("vjepa2_ros is not installed in this environment: run `make setup` and `source scripts/env.sh`")
    installed = share / "launch" / name
    assert installed.is_file() and installed.read_bytes() == (ROOT / "launch" / name).read_bytes(), (
        f"the installed {installed} is missing or differs from launch/{name}: run `make setup` (colcon build)")


# ---- sim_demo.launch.py: the whole graph, README commands as a user types them (with the ros2 daemon) -----------
def test_sim_demo_launch_runs_the_closed_loop_and_the_readme_commands(graph):
    _installed_launch_file("sim_demo.launch.py")
    # half real time: the same graph for half the CPU (2 shared cores); a launch argument typed float below
    run = graph.launch("vjepa2_ros", "sim_demo.launch.py", "real_time_factor:=0.5")
    # the daemon a user's first `ros2` command starts: started once here, stopped at the end, never left running
    graph.cli("daemon", "start")
    graph.wait_nodes({"/sim_node", "/encoder_node", "/planner_node"},
                     ready=["[sim_node]: sim_node up", "[encoder_node]: encoding", "[planner_node]: planner ready"],
                     daemon=True)
    run.note_children()

    # parameters with their types (`param get`, `param dump`), the README's `ros2 param describe`, and a latent
    # (camera -> encoder_node), at once
    params, (planner_dump, encoder_dump, described, latent_out) = get_params(
        graph, {"/planner_node": ["cem_samples", "use_sim_time", "checkpoint", "workspace_min"],
                "/sim_node": ["real_time_factor"]},
        dump_command("/planner_node"), dump_command("/encoder_node"),
        ("param", "describe", "--timeout", "30", "/planner_node", "cem_samples"),
        ("topic", "echo", "--once", "--no-arr", "--timeout", "60", "/vjepa/latent", "vjepa_interfaces/msg/Latent"))
    planner = params["/planner_node"]
    assert planner["cem_samples"] == from_params_file("sim_pipeline/planner.yaml", "planner_node", "cem_samples")[
        "cem_samples"] and planner["cem_samples"][0] is int
    assert planner["use_sim_time"] == (bool, True)        # the launch file's inline override
    assert planner["checkpoint"][0] is str and planner["checkpoint"][1].endswith("models/sim_reach/vjepa2_sim.pt")
    assert planner["workspace_min"][0] == "Double array"
    assert params["/sim_node"] == {"real_time_factor": (float, 0.5)}  # a launch argument, typed float
    model = ("checkpoint", "model_config", "onnx_dir")  # the launch file points them at model_dir
    assert_params_file_arrived(dumped(planner_dump), "sim_pipeline/planner.yaml", "planner_node", model)
    assert_params_file_arrived(dumped(encoder_dump), "sim_pipeline/encoder.yaml", "encoder_node", model)
    assert "Type: integer" in described and "CEM samples per iteration" in described, described
    latent = echo_messages(latent_out)[0]
    assert (latent["frames"], latent["height"], latent["width"], latent["dim"]) == (1, 6, 6, 64), latent
    assert latent["model_id"].startswith("vit_custom_d64_l3_h2_96px@"), latent
    assert latent["data"] == "<sequence type: float, length: 2304>", latent

    # the README's goal / status / stop commands
    goal = response(graph.cli("service", "call", "/planner_node/set_goal", "vjepa_interfaces/srv/SetGoal",
                              goal_request(), timeout=90))
    assert goal["success"] == "True" and goal["episode"] == "1", goal
    status = poll(lambda: next((m for m in echo_messages(graph.cli("topic", "echo", "/planner_node/status", "--once",
                                                                   "--no-arr", timeout=90))
                                if m["episode"] == 1), None), 90, "a status of episode 1", detail=graph.tails)
    assert status["state"] in range(0, 8) and (int, status["num_samples"]) == planner["cem_samples"], status
    stop = response(graph.cli("service", "call", "/planner_node/stop", "std_srvs/srv/Trigger"))
    assert stop["success"] == "True", stop

    graph.cli("daemon", "stop")
    graph.stop_all()


# ---- perception.launch.py + planner.launch.py: the two halves, on a lab machine with franka_msgs ---------------
def test_perception_and_planner_launch_files_work_together(graph, franka_interfaces):
    for name in ("perception.launch.py", "planner.launch.py"):
        _installed_launch_file(name)
    graph.env = franka_interfaces.env(graph.env)  # planner.launch.py's default gripper adapter needs franka_msgs
    # sigterm_timeout: launch's default (5 s) is shorter than these nodes' exit on a busy machine (the interpreter's
    # teardown alone takes seconds there); franka_vjepa/sim_demo/record.launch.py declare 15 s themselves
    model = (f"checkpoint:={TINY / 'checkpoint.pt'}", f"model_config:={TINY / 'config.json'}", "sigterm_timeout:=15")
    perception = graph.launch("vjepa2_ros", "perception.launch.py", *model)
    planner = graph.launch("vjepa2_ros", "planner.launch.py", *model, noninteractive=True)
    graph.wait_nodes({"/encoder_node", "/planner_node"},
                     ready=["[encoder_node]: encoding", "[planner_node]: planner ready"])
    perception.note_children()
    planner.note_children()

    params, (encoder_dump, planner_dump, described) = get_params(
        graph, {"/encoder_node": ["device"], "/planner_node": ["device", "cem_samples"]},
        dump_command("/encoder_node"), dump_command("/planner_node"),
        ("param", "describe", "--no-daemon", "--timeout", "30", "/planner_node", "cem_samples"))
    # config/perception.yaml and config/planner.yaml as written, device included: no launch default replaces one
    # (issue 14: device:=cuda killed the nodes on a CPU machine)
    assert params["/encoder_node"]["device"] == params["/planner_node"]["device"] == (str, "cpu")
    assert params["/planner_node"]["cem_samples"][0] is int
    assert_params_file_arrived(dumped(encoder_dump), "perception.yaml", "encoder_node", ("checkpoint", "model_config"))
    assert_params_file_arrived(dumped(planner_dump), "planner.yaml", "planner_node", ("checkpoint", "model_config"))
    assert dumped(encoder_dump)["model_config"] == dumped(planner_dump)["model_config"] == str(TINY / "config.json")
    assert "Type: integer" in described, described

    # set_goal crosses the two launch files: planner_node -> /encoder_node/encode -> a goal latent
    goal = response(graph.cli("service", "call", "/planner_node/set_goal", "vjepa_interfaces/srv/SetGoal",
                              goal_request(), timeout=90))
    assert goal["success"] == "True" and goal["message"] == "episode 1 started", goal

    def stop() -> None:
        assert response(graph.cli("service", "call", "/planner_node/stop", "std_srvs/srv/Trigger"))[
            "success"] == "True"
    status = echo_once_while(graph, "/planner_node/status", "vjepa_interfaces/msg/PlanStatus", stop,
                             extra=("--no-arr",))
    assert status["episode"] == 1 and (int, status["num_samples"]) == params["/planner_node"]["cem_samples"], status

    graph.stop_all()


# ---- record.launch.py -----------------------------------------------------------------------------------------
def test_record_launch_records_an_episode_and_keeps_the_params_file(graph, tmp_path):
    _installed_launch_file("record.launch.py")
    params = yaml.safe_load((ROOT / "config" / "recorder.yaml").read_text())
    params["recorder_node"]["ros__parameters"].update(storage="sqlite3", bag_prefix="lab")
    params_file = tmp_path / "recorder.yaml"
    params_file.write_text(yaml.safe_dump(params))
    bags = tmp_path / "bags"
    run = graph.launch("vjepa2_ros", "record.launch.py", f"params_file:={params_file}", f"output_dir:={bags}",
                       "task:=42", noninteractive=True)
    graph.wait_nodes({"/recorder_node"}, ready=["[recorder_node]: recording"])
    run.note_children()
    params, (dump,) = get_params(graph, {"/recorder_node": ["storage", "task", "split_duration_s", "use_sim_time"]},
                                 dump_command("/recorder_node"))
    got = params["/recorder_node"]
    # the edited params file holds (a launch default no longer replaces it); given arguments override, typed
    assert got["storage"] == (str, "sqlite3") and got["task"] == (str, "42")  # `task:=42` stays text
    assert got["split_duration_s"][0] is float and got["use_sim_time"] == (bool, False)
    assert_params_file_arrived(dumped(dump), params_file, "recorder_node", ("output_dir", "task"))
    assert dumped(dump)["output_dir"] == str(bags)

    start = response(graph.cli("service", "call", "/recorder_node/start_episode", "std_srvs/srv/Trigger"))
    assert start["success"] == "True", start
    stop = response(graph.cli("service", "call", "/recorder_node/stop_episode", "std_srvs/srv/Trigger"))
    assert stop["success"] == "True", stop
    (bag,) = [p for p in bags.iterdir() if p.is_dir()]
    assert bag.name.startswith("lab_"), bag
    assert json.loads((bag / "episode.json").read_text())["task"] == "42"
    assert any(bag.glob("*.db3")), f"no sqlite3 bag in {sorted(p.name for p in bag.iterdir())}"
    graph.stop_all()


# ---- franka_vjepa.launch.py against the franka_ros2 stand-ins ------------------------------------------------
def _declared(path: Path) -> dict[str, str]:
    """name -> ast dump of the default (``None`` when required) of every DeclareLaunchArgument in a launch file."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            name = node.args[0].value if node.args else next(k.value.value for k in node.keywords if k.arg == "name")
            default = next((k.value for k in node.keywords if k.arg == "default_value"), None)
            found[name] = None if default is None else ast.dump(default)
    return found


def test_standin_declares_exactly_franka_bringups_arguments(ros2_tools):
    reference = ros2_tools / "src" / "franka_ros2" / "franka_bringup" / "launch" / "franka.launch.py"
    if not reference.is_file():
        skip_or_fail(f"the franka_ros2 reference launch file {reference} is not in the ros2-tools given")
    standin = STANDINS / "share" / "franka_bringup" / "launch" / "franka.launch.py"
    assert _declared(standin) == _declared(reference)


def _franka_env(graph: Graph, franka_interfaces, record_dir: Path) -> None:
    record_dir.mkdir()
    env = franka_interfaces.env(graph.env)
    env["AMENT_PREFIX_PATH"] = f"{STANDINS}:{env['AMENT_PREFIX_PATH']}"
    env["VJEPA_STANDIN_RECORD_DIR"] = str(record_dir)
    graph.env = env


def _tiny_model() -> tuple[str, str]:
    return f"checkpoint:={TINY / 'checkpoint.pt'}", f"model_config:={TINY / 'config.json'}"


def _parse_node_info(out: str) -> dict[str, set[str]]:
    """`ros2 node info` output -> section ('Subscribers', 'Publishers', 'Service Servers', 'Action Clients', ...) ->
    resolved names."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in out.splitlines():
        if re.match(r"^  \S.*:$", line):
            current = line.strip().rstrip(":")
            sections[current] = set()
        elif current and line.startswith("    "):
            sections[current].add(line.strip().split(":")[0])
    return sections


def wait_node_info(graph: Graph, expected: dict[str, dict[str, set[str]]], timeout: float = START_TIMEOUT) -> None:
    """Poll `ros2 node info NODE` (the nodes at once) until each node shows at least the ``expected`` names in each
    section: a fresh discovery (--no-daemon) may miss a node or some of its endpoints the first time."""
    last: dict[str, str] = {}

    def check() -> bool:
        procs = {node: graph.start("node", "info", "--no-daemon", "--spin-time", "2", node) for node in expected}
        done = True
        for node, proc in procs.items():
            _, last[node] = graph.finish_or_kill(proc, QUERY_TIMEOUT)   # a hung query is a miss: asked again
            sections = _parse_node_info(last[node])
            done &= all(names <= sections.get(section, set()) for section, names in expected[node].items())
        return done
    poll(check, timeout, f"`ros2 node info` showing {expected}", detail=lambda: "\n".join(last.values()))


def test_franka_vjepa_launch_brings_up_franka_and_our_nodes_under_the_namespace(graph, franka_interfaces, tmp_path):
    _installed_launch_file("franka_vjepa.launch.py")
    record = tmp_path / "franka_record"
    _franka_env(graph, franka_interfaces, record)
    run = graph.launch("vjepa2_ros", "franka_vjepa.launch.py", "robot_ip:=172.16.0.2", "namespace:=fr3a",
                       "convention:=droid", *_tiny_model(), noninteractive=True)
    graph.wait_nodes({"/fr3a/encoder_node", "/fr3a/planner_node"},
                     ready=["[fr3a.encoder_node]: encoding", "[fr3a.planner_node]: planner ready"])
    run.note_children()

    # franka_bringup got what the real one needs (robot_type: franka_ros2 >= 2.2 defaults it to '')
    franka = json.loads((record / "franka_bringup.json").read_text())
    assert franka == {
        "robot_type": "fr3", "robot_ip": "172.16.0.2", "namespace": "fr3a", "load_gripper": "true",
        "use_fake_hardware": "false", "load_franka_robot_state_broadcaster": "true",
        # franka's own defaults, untouched
        "arm_prefix": "", "fake_sensor_commands": "false", "joint_state_rate": "30",
        "controllers_yaml": str(STANDINS / "share" / "franka_bringup" / "config" / "controllers.yaml")}, franka
    (spawner,) = [json.loads(p.read_text()) for p in record.glob("spawner_*.json")]
    assert spawner["arguments"][0] == "cartesian_impedance_example_controller", spawner
    assert spawner["namespace"] == "/fr3a", spawner

    # our topics resolve under the namespace, next to franka_ros2's
    wait_node_info(graph, {
        "/fr3a/planner_node": {
            "Subscribers": {"/fr3a/vjepa/latent", "/fr3a/vjepa/goal_latent",
                            "/fr3a/franka_robot_state_broadcaster/current_pose", "/fr3a/franka_gripper/joint_states",
                            "/fr3a/franka_robot_state_broadcaster/robot_state"},
            "Publishers": {"/fr3a/cartesian_impedance_example_controller/equilibrium_pose",
                           "/fr3a/planner_node/status"},
            "Action Clients": {"/fr3a/franka_gripper/move", "/fr3a/franka_gripper/grasp"},
            "Service Servers": {"/fr3a/planner_node/set_goal"}},
        "/fr3a/encoder_node": {
            "Publishers": {"/fr3a/vjepa/latent"},
            "Subscribers": {"/camera/image_raw"},  # cameras are not franka's: perception.yaml's topic
            "Service Servers": {"/fr3a/encoder_node/encode"}}})
    # and the planner reaches the encoder's service in the namespace
    goal = response(graph.cli("service", "call", "/fr3a/planner_node/set_goal", "vjepa_interfaces/srv/SetGoal",
                              goal_request(), timeout=90))
    assert goal["success"] == "True", goal
    params = get_params(graph, {"/fr3a/planner_node": ["device", "ee_convention", "min_step_duration_s"],
                                "/fr3a/encoder_node": ["crop"]})[0]
    assert params["/fr3a/planner_node"]["device"] == from_params_file("planner.yaml", "planner_node", "device")[
        "device"]
    # convention:=droid: the released model's preset over the params files
    assert params["/fr3a/planner_node"]["ee_convention"] == (str, "droid")
    assert params["/fr3a/planner_node"]["min_step_duration_s"] == (float, 1.0)
    assert params["/fr3a/encoder_node"] == {"crop": (str, "droid")}

    # latents flow: camera frames -> /fr3a/vjepa/latent; plan status flows on /fr3a/planner_node/status
    latent = _latent_from_camera(graph, "/fr3a/vjepa/latent")
    assert (latent["frames"], latent["height"], latent["width"]) == (1, 4, 4), latent

    def stop() -> None:
        assert response(graph.cli("service", "call", "/fr3a/planner_node/stop", "std_srvs/srv/Trigger"))[
            "success"] == "True"
    status = echo_once_while(graph, "/fr3a/planner_node/status", "vjepa_interfaces/msg/PlanStatus", stop,
                             extra=("--no-arr",))
    assert status["episode"] == 1, status

    graph.stop_all()


def _latent_from_camera(graph: Graph, topic: str) -> dict:
    """A camera (`ros2 topic pub` of a 64x64 rgb8 frame stamped now, 4 Hz) while `ros2 topic echo --once` waits
    for a latent on ``topic``; that latent."""
    data = ",".join(str((i * 37) % 251) for i in range(64 * 64 * 3))
    camera = graph.start("topic", "pub", "-r", "4", "-p", "1000000", "/camera/image_raw", "sensor_msgs/msg/Image",
                         f"{{header: {{stamp: now, frame_id: cam}}, height: 64, width: 64, encoding: rgb8, "
                         f"step: 192, data: [{data}]}}")
    try:
        rc, out = graph.finish(graph.start("topic", "echo", "--no-daemon", "--once", "--no-arr", "--timeout", "60",
                                           topic, "vjepa_interfaces/msg/Latent"), timeout=90)
        assert rc == 0, f"no latent on {topic}:\n{out}\n{graph.tails()}"
    finally:
        camera.send_signal(signal.SIGINT)
        graph.finish(camera, timeout=30)
    return echo_messages(out)[0]


def test_franka_vjepa_launch_without_bringup_starts_only_our_nodes(graph, franka_interfaces, tmp_path):
    _installed_launch_file("franka_vjepa.launch.py")
    record = tmp_path / "franka_record"
    _franka_env(graph, franka_interfaces, record)
    # a lab's own params files (here: the released model's DROID conventions, fewer CEM samples)
    planner_params, perception_params = tmp_path / "planner.yaml", tmp_path / "perception.yaml"
    doc = yaml.safe_load((ROOT / "config" / "planner.yaml").read_text())
    doc["planner_node"]["ros__parameters"].update(ee_convention="droid", cem_samples=64, fault_timeout_s=3.0)
    planner_params.write_text(yaml.safe_dump(doc))
    doc = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    doc["encoder_node"]["ros__parameters"].update(crop="droid")
    perception_params.write_text(yaml.safe_dump(doc))
    run = graph.launch("vjepa2_ros", "franka_vjepa.launch.py", "bringup:=false", *_tiny_model(),
                       f"planner_params:={planner_params}", f"perception_params:={perception_params}")
    graph.wait_nodes({"/encoder_node", "/planner_node"},
                     ready=["[encoder_node]: encoding", "[planner_node]: planner ready"])
    children = run.note_children()
    names = sorted(Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1].decode()).name
                   for pid in children if Path(f"/proc/{pid}/cmdline").exists())
    assert names == ["encoder_node", "planner_node"], names  # no franka_bringup, no spawner
    assert not list(record.iterdir()), sorted(p.name for p in record.iterdir())
    params, (dump,) = get_params(graph, {"/planner_node": ["device", "robot", "ee_convention"],
                                         "/encoder_node": ["crop"]}, dump_command("/planner_node"))
    assert params["/planner_node"] == {"device": (str, "cpu"), "robot": (str, "franka_impedance"),
                                       "ee_convention": (str, "droid")}
    assert params["/encoder_node"] == {"crop": (str, "droid")}
    # the given params file as written, but for the franka_ros2 wiring this launch file sets (relative names)
    wiring = {"gripper": "franka_action", "latent_topic": "vjepa/latent", "goal_latent_topic": "vjepa/goal_latent",
              "encode_service": "encoder_node/encode", "ee_pose_topic": "franka_robot_state_broadcaster/current_pose",
              "gripper_state_topic": "franka_gripper/joint_states",
              "target_topic": "cartesian_impedance_example_controller/equilibrium_pose",
              "gripper_target": "franka_gripper", "robot_state_topic": "franka_robot_state_broadcaster/robot_state",
              "error_recovery_action": "action_server/error_recovery"}
    planner = dumped(dump)
    assert {name: planner[name] for name in wiring} == wiring
    assert_params_file_arrived(planner, planner_params, "planner_node",
                               ("checkpoint", "model_config", "robot", *wiring))

    # the README's goal-sequence command (no franka here, so no pose: the episode holds, then fails after
    # fault_timeout_s) and its recover command (allow_recover off: the documented refusal)
    goals = f"{{images: [{image_yaml(32)}, {image_yaml(24)}], max_steps: [4, 10]}}"
    out = graph.cli("action", "send_goal", "--feedback", "/planner_node/reach_goals",
                    "vjepa_interfaces/action/ReachGoals", goals, timeout=120)
    assert "Goal accepted with ID" in out and "Feedback:" in out, out
    # `ros2 action send_goal` indents only the first line of the result's YAML
    result = yaml.safe_load(out.split("Result:", 1)[1].split("Goal finished with status:", 1)[0].strip())
    assert result["episode"] == 1 and not result["success"] and len(result["outcomes"]) == 2, result
    assert "Goal finished with status: ABORTED" in out, out
    recover = response(graph.cli("service", "call", "/planner_node/recover", "std_srvs/srv/Trigger"))
    assert recover["success"] == "False" and recover["message"].startswith("~/recover is off: set allow_recover"), (
        recover)
    graph.stop_all()


def test_franka_vjepa_show_args_lists_every_argument(graph):
    """docs/lab.md: `ros2 launch vjepa2_ros franka_vjepa.launch.py --show-args` lists every argument, starts
    nothing."""
    _installed_launch_file("franka_vjepa.launch.py")
    out = graph.cli("launch", "vjepa2_ros", "franka_vjepa.launch.py", "--show-args")
    shown = set(re.findall(r"^    '(\w+)':", out, re.M))
    assert shown == set(_declared(ROOT / "launch" / "franka_vjepa.launch.py")), out
    assert "convention" in shown and "(default: '')" in out, out
    graph.assert_nothing_left()


def test_franka_vjepa_launch_refuses_bringup_without_robot_ip(graph, franka_interfaces, tmp_path):
    _franka_env(graph, franka_interfaces, tmp_path / "franka_record")
    run = graph.launch("vjepa2_ros", "franka_vjepa.launch.py", *_tiny_model())
    rc = run.proc.wait(CALL_TIMEOUT)
    assert rc != 0 and "robot_ip:=<FR3 control box IP> is required" in run.output(), run.tail()
    assert not (tmp_path / "franka_record" / "franka_bringup.json").exists()
    graph.assert_nothing_left()


def test_franka_vjepa_passes_only_arguments_franka_bringup_declares(ros2_cli):
    import importlib.util

    spec = importlib.util.spec_from_file_location("franka_vjepa_launch", ROOT / "launch" / "franka_vjepa.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    passed = module.bringup_arguments({"robot_type": "fr3", "robot_ip": "10.0.0.2", "namespace": "", "load_gripper":
                                       "True", "use_fake_hardware": "0"})
    declared = _declared(STANDINS / "share" / "franka_bringup" / "launch" / "franka.launch.py")
    assert set(passed) <= set(declared), set(passed) - set(declared)
    assert passed["load_gripper"] == "true" and passed["use_fake_hardware"] == "false"
    assert module.bringup_arguments({"robot_type": "fr3", "robot_ip": "", "namespace": "", "load_gripper": "false",
                                     "use_fake_hardware": "true"})["use_fake_hardware"] == "true"
    with pytest.raises(ValueError, match="robot_type"):
        module.bringup_arguments({"robot_type": "", "robot_ip": "10.0.0.2", "namespace": "", "load_gripper": "true",
                                  "use_fake_hardware": "false"})


# ---- action.launch.py: camera frames in, action labels out ----------------------------------------------------
def test_action_launch_labels_camera_frames(graph, tmp_path):
    _installed_launch_file("action.launch.py")
    probe = ROOT / "tests" / "fixtures" / "probe_tiny_a"
    names = ["pour", "stir", "cut", "wipe", "open", "close", "wait"]
    (tmp_path / "cls.json").write_text(json.dumps({"embed_dim": 96, "num_heads": 4, "depth": 2, "num_classes": 7}))
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    run = graph.launch("vjepa2_ros", "action.launch.py", f"checkpoint:={probe / 'encoder.pt'}",
                       f"model_config:={probe / 'config.json'}", f"probe:={probe / 'probe_classification.pt'}",
                       f"probe_config:={tmp_path / 'cls.json'}", f"labels_file:={tmp_path / 'labels.txt'}",
                       "frames_per_clip:=4", "clip_fps:=4.0", "sigterm_timeout:=15")
    graph.wait_nodes({"/action_node"}, ready=["[action_node]: classification:"])
    run.note_children()
    params, (dump,) = get_params(graph, {"/action_node": ["frames_per_clip", "clip_fps"]}, dump_command("/action_node"))
    # numbers given as launch arguments arrive typed as the node declares them; the rest as config/action.yaml says
    assert params["/action_node"] == {"frames_per_clip": (int, 4), "clip_fps": (float, 4.0)}
    assert_params_file_arrived(dumped(dump), "action.yaml", "action_node",
                               ("checkpoint", "model_config", "probe", "probe_config", "labels_file",
                                "frames_per_clip", "clip_fps"))

    # a camera: `ros2 topic pub` of a 64x64 rgb8 frame stamped now, 8 Hz (printing only its first message: a pipe
    # nobody reads would block it)
    data = ",".join(str((i * 37) % 251) for i in range(64 * 64 * 3))
    camera = graph.start("topic", "pub", "-r", "8", "-p", "1000000", "/camera/image_raw", "sensor_msgs/msg/Image",
                         f"{{header: {{stamp: now, frame_id: cam}}, height: 64, width: 64, encoding: rgb8, "
                         f"step: 192, data: [{data}]}}")
    try:
        rc, out = graph.finish(graph.start("topic", "echo", "--no-daemon", "--once", "--timeout", "60",
                                           "/vjepa/action_labels", "vjepa_interfaces/msg/ActionLabels"), timeout=90)
        assert rc == 0, f"no action labels:\n{out}\n{graph.tails()}"
    finally:
        camera.send_signal(signal.SIGINT)
        _, published = graph.finish(camera, timeout=30)
    assert "publisher: beginning loop" in published, published
    labels = echo_messages(out)[0]
    assert labels["mode"] == "classification" and labels["num_frames"] == 4, labels
    assert labels["labels"] and set(labels["labels"]) <= set(names), labels
    assert len(labels["scores"]) == len(labels["labels"]) and labels["scores"] == sorted(labels["scores"],
                                                                                        reverse=True), labels
    graph.stop_all()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "launch").glob("*.launch.py")))
def test_launch_files_give_their_nodes_time_to_exit_cleanly(ros2_cli, name):
    """Launch sends SIGTERM ``sigterm_timeout`` s after Ctrl-C (default 5): less than a model node needs to command its
    hold and tear its interpreter down on a busy machine (seen here: SIGTERM, exit -15). These files raise it to 15 s,
    read exactly as launch's ExecuteProcess reads it."""
    import importlib.util

    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration

    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), ROOT / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    context.launch_configurations.update({"checkpoint": "/m.pt", "probe": "/p.pt"})
    for entity in module.generate_launch_description().entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.execute(context)
    assert LaunchConfiguration("sigterm_timeout", default=5).perform(context) == "15"


# ---- planner.launch.py with its defaults where franka_ros2 is not built; the README's `ros2 run` of the recorder --
def test_planner_launch_runs_with_its_defaults_without_franka_msgs(graph):
    """planner.launch.py's default gripper (franka_action) no longer needs franka_msgs to start: the node comes up,
    warns that the gripper cannot be commanded (``gripper:=none`` where there is none), and stops cleanly."""
    _installed_launch_file("planner.launch.py")
    probe = subprocess.run([sys.executable, "-c", "import franka_msgs"], env=graph.env, capture_output=True)
    assert probe.returncode != 0, "franka_msgs is importable here: this test needs an environment without it"
    run = graph.launch("vjepa2_ros", "planner.launch.py", *_tiny_model(), noninteractive=True)
    graph.wait_nodes({"/planner_node"}, ready=["[planner_node]: planner ready"])
    run.note_children()
    assert "GRIPPER UNAVAILABLE: gripper 'franka_action' needs franka_msgs" in run.output(), run.tail()
    params, _ = get_params(graph, {"/planner_node": ["gripper"]})
    assert params["/planner_node"] == {"gripper": (str, "franka_action")}  # config/planner.yaml's default
    graph.stop_all()


def test_readme_ros2_run_recorder_node(graph, tmp_path):
    """README: `ros2 run vjepa_training recorder_node --ros-args --params-file config/recorder.yaml` (output_dir
    pointed at the test's directory) records an episode through its services and exits 0 on Ctrl-C."""
    bags = tmp_path / "bags"
    argv = [graph.ros2, "run", "vjepa_training", "recorder_node", "--ros-args", "--params-file",
            "config/recorder.yaml", "-p", f"output_dir:={bags}"]
    run = Launch(argv, graph.env, tmp_path / "ros2_run_recorder.log", noninteractive=False)
    graph.launches.append(run)
    graph.wait_nodes({"/recorder_node"}, ready=["[recorder_node]: recording"])
    start = response(graph.cli("service", "call", "/recorder_node/start_episode", "std_srvs/srv/Trigger"))
    assert start["success"] == "True", start
    stop = response(graph.cli("service", "call", "/recorder_node/stop_episode", "std_srvs/srv/Trigger"))
    assert stop["success"] == "True", stop
    (bag,) = [p for p in bags.iterdir() if p.is_dir()]
    assert (bag / "episode.json").is_file(), sorted(p.name for p in bag.iterdir())
    assert run.interrupt() == 0, run.tail()  # Ctrl-C in the terminal: the node's group
    assert "Traceback" not in run.output(), run.tail(200)
    graph.assert_nothing_left()
