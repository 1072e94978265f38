"""Test helpers that change zarrsync's tuning for a while and watch its calls."""

import contextlib

import zarrsync as zs


@contextlib.contextmanager
def tuned(module, threads, **values):
    """Set the attributes ``values`` of ``module`` and ``threads`` pool
    threads for the block, then restore both. A context rather than a
    fixture: hypothesis runs many inputs inside one test call."""
    saved = {name: getattr(module, name) for name in values}
    saved_threads = zs.config.get_threads()
    for name, value in values.items():
        setattr(module, name, value)
    zs.config.set_threads(threads)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
        zs.config.set_threads(saved_threads)


def count_chunks_per_call(monkeypatch, cls, name):
    """A list that gets ``len(indices)`` of every call of the method
    ``cls.name(self, plan, indices, ...)``, which still runs."""
    calls = []
    original = getattr(cls, name)

    def counted(self, plan, indices, *args):
        calls.append(len(indices))
        return original(self, plan, indices, *args)
    monkeypatch.setattr(cls, name, counted)
    return calls
