"""zarrsync.config: the settings, their checks, and ``set`` as a context manager.

How the scheduler uses them is in ``test_scheduler.py``.
"""

import os
import re

import pytest

import zarrsync as zs
from zarrsync import config

INTEGER_SETTINGS = sorted(name for name in config.DEFAULTS if name != "fast_paths")
#: Settings that must be at least 1 (the others may be 0).
POSITIVE = {"threads", "tasks_per_thread", "task_bytes", "cached_arrays", "max_chunk_bytes",
            "max_document_bytes", "copy_block_bytes", "copy_blocks_in_flight"}


def documented_defaults():
    """``{name: default}`` as the module docstring's Settings section states them."""
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    out = {}
    for line in config.__doc__.split("Settings\n--------\n")[1].splitlines():
        match = re.fullmatch(r"(\w+) : (int|bool), default (.+)", line)
        if not match:
            continue
        name, kind, text = match.groups()
        if text == "``os.cpu_count()``":
            out[name] = os.cpu_count() or 1
        elif text == "``min(4 GiB, physical memory)``":
            out[name] = min(4 << 30, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        elif kind == "bool":
            out[name] = {"True": True, "False": False}[text]
        else:
            number, _, unit = text.partition(" ")
            out[name] = int(number) * units.get(unit, 1)
    return out


def test_defaults_are_the_documented_ones():
    assert config.DEFAULTS == documented_defaults()
    assert {"threads", "parallel_min_bytes", "parallel_min_chunk_bytes", "walk_chunks",
            "fast_paths"} <= set(config.DEFAULTS)
    # Every default passes the checks ``set`` applies.
    with config.set(**config.DEFAULTS):
        assert {name: config.get(name) for name in config.DEFAULTS} == config.DEFAULTS


def test_the_package_exposes_the_module():
    assert zs.config is config


def test_get_rejects_unknown_names():
    with pytest.raises(KeyError, match="no setting 'thread'"):
        config.get("thread")


@pytest.mark.parametrize("name", INTEGER_SETTINGS)
@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None, 2 ** 0.5])
def test_integer_settings_reject_bad_values(name, bad):
    before = config.get(name)
    with pytest.raises(ValueError, match=name):
        config.set(**{name: bad})
    assert config.get(name) == before


@pytest.mark.parametrize("name", INTEGER_SETTINGS)
def test_the_least_value_of_each_setting(name):
    least = 1 if name in POSITIVE else 0
    with config.set(**{name: least}):
        assert config.get(name) == least
    if least:
        with pytest.raises(ValueError, match=f"{name} must be >= 1"):
            config.set(**{name: 0})


@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_fast_paths_takes_only_booleans(bad):
    before = config.get("fast_paths")
    with pytest.raises(ValueError, match="fast_paths must be True or False"):
        config.set(fast_paths=bad)
    assert config.get("fast_paths") is before


def test_a_rejected_set_changes_nothing():
    before = {name: config.get(name) for name in config.DEFAULTS}
    with pytest.raises(KeyError, match="no setting 'bogus'"):
        config.set(threads=before["threads"] + 1, bogus=1)
    with pytest.raises(ValueError, match="walk_chunks"):
        config.set(threads=before["threads"] + 1, task_bytes=5, walk_chunks=-1)
    assert {name: config.get(name) for name in config.DEFAULTS} == before


def test_set_keeps_its_values_until_changed_again():
    before = config.get("walk_chunks"), config.get("task_bytes")
    try:
        config.set(walk_chunks=3, task_bytes=1000)   # not as a context manager
        assert (config.get("walk_chunks"), config.get("task_bytes")) == (3, 1000)
    finally:
        config.set(walk_chunks=before[0], task_bytes=before[1])


def test_set_as_a_context_manager_restores_the_old_values():
    before = {name: config.get(name) for name in config.DEFAULTS}
    with config.set(walk_chunks=5, fast_paths=not before["fast_paths"]):
        assert config.get("walk_chunks") == 5
        assert config.get("fast_paths") is not before["fast_paths"]
        with config.set(walk_chunks=7, tasks_per_thread=2):
            assert (config.get("walk_chunks"), config.get("tasks_per_thread")) == (7, 2)
        assert config.get("walk_chunks") == 5
        assert config.get("tasks_per_thread") == before["tasks_per_thread"]
    assert {name: config.get(name) for name in config.DEFAULTS} == before


def test_the_context_manager_restores_when_the_block_raises():
    before = config.get("task_bytes")
    with pytest.raises(RuntimeError, match="inside"):
        with config.set(task_bytes=1):
            raise RuntimeError("inside")
    assert config.get("task_bytes") == before


def test_get_and_set_threads():
    before = config.get_threads()
    assert before == config.get("threads")
    try:
        config.set_threads(3)
        assert config.get_threads() == config.get("threads") == 3
    finally:
        config.set_threads(before)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            config.set_threads(bad)
    assert config.get_threads() == before
