"""The grader removes an exercise's reference from the answer's process, and with it whatever else
in the package does the same work (grading_answer.EQUIVALENTS): a function, or a class's method.
Checked in a fresh Python, since removing them changes the functions for the whole process."""
import subprocess
import sys

import pytest

from lecture13 import grading_answer

PROBE = r"""
import importlib, sys
from lecture13 import grading_answer, grading_channel
namespace = {}
exec("import lecture13\nfrom lecture13 import autoregressive as ar, sampling, flows, diffusion\n"
     "from lecture13.checks import diffusion as diffusion_checks", namespace)
reference = sys.argv[1]
expression = {"lecture13.checks.diffusion": "diffusion_checks", "lecture13.autoregressive": "ar"}.get(
    reference.rpartition(".")[0], reference.rpartition(".")[0].replace("lecture13.", "")) + "." + reference.rpartition(".")[2]
grading_answer.neuter_references([expression], namespace)
for name in [reference] + grading_answer.EQUIVALENTS[reference]:
    target = grading_answer._resolve(name)
    assert target is not None, name
    try:
        target(*([None] * target.__code__.co_argcount))
    except grading_channel.ReferenceUsed as used:
        assert str(used) == f"calls the reference implementation {reference}", (name, str(used))
    else:
        raise AssertionError(f"{name} still runs")
print("ok", len(grading_answer.EQUIVALENTS[reference]))
"""


def test_every_equivalent_names_a_function_or_method_of_the_package():
    import lecture13.autoregressive, lecture13.comparison, lecture13.diffusion, lecture13.flows  # noqa: F401
    import lecture13.checks.diffusion, lecture13.sampling  # noqa: F401
    for reference, others in grading_answer.EQUIVALENTS.items():
        for name in [reference] + others:
            assert callable(grading_answer._resolve(name)), name


@pytest.mark.parametrize("reference", [r for r in grading_answer.EQUIVALENTS
                                       if r.startswith(("lecture13.flows", "lecture13.checks.diffusion",
                                                        "lecture13.autoregressive"))])
def test_the_equivalents_of_a_reference_are_removed_with_it(reference):
    done = subprocess.run([sys.executable, "-c", PROBE, reference], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stdout + done.stderr
