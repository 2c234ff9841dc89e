"""(stage under construction)"""

from __future__ import annotations

import argparse


def _args(parser: argparse.ArgumentParser) -> None:
    pass


def _run(args: argparse.Namespace) -> int:
    raise ValueError("not implemented yet")


add_arguments = add_arguments_pretrain = add_arguments_posttrain = add_arguments_eval = add_arguments_demo = _args
run = run_pretrain = run_posttrain = run_eval = run_demo = _run
