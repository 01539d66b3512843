"""The exercises' one switch. SPARSECUT_STUDENT=1: the checks test the student's functions in
exercises/exN_*.py. Unset (CI): they test the reference solutions from the main code, so a check
that stops matching the code fails in CI instead of rotting while the stubs stay unsolved."""
import os

import pytest

STUDENT = os.environ.get("SPARSECUT_STUDENT") == "1"


@pytest.fixture
def student():
    return STUDENT


@pytest.fixture
def impl():
    """impl(student_fn, reference_fn) -> the function a check should test."""
    return lambda student_fn, reference_fn: student_fn if STUDENT else reference_fn
