"""The stub supervisor: restores each model whose Python-backend stub died while the server runs.

Triton 2.51 does not restart a dead stub, and the replaced copy of a model is never released; what the supervisor
does about both, and why, is in docs/operations.md ("A killed stub"). The decision of each look is pure
(:func:`decide`, :func:`advance`: from the stubs known, the processes listed and the repository index to actions
and the next state); :func:`supervise` is the small loop around it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Event

from triton_ner.server.processes import child_processes, kill_stub, stub_processes, stubs_among

SUPERVISE_INTERVAL = 0.5  # seconds between two looks at the stub processes
RELOAD_PARAMETER = "supervisor_reload"  # config parameter the supervisor changes to have Triton reload a model
RELOAD_RETRY = 5  # seconds before the supervisor loads a model again after a failed reload

Children = list[tuple[int, str, list[str]]]  # what child_processes lists: (pid, state, command line)


@dataclass(frozen=True)
class Watch:
    """What the supervisor knows between two looks."""

    known: dict[int, str]  # every stub seen alive and not yet handled -> its model
    retiring: frozenset[int] = frozenset()  # stubs of a replaced or unloaded copy: their exit is no death
    idle: dict[int, tuple[str, float]] = field(default_factory=dict)  # a replaced copy's live stub -> model, when
    retry: dict[str, float] = field(default_factory=dict)  # a model whose reload failed -> when to try again


@dataclass(frozen=True)
class Look:
    """The actions of one look."""

    reload: tuple[str, ...]  # models with a dead stub that the index says are READY
    retire: tuple[str, ...]  # models with a dead stub that are not READY: unloaded on purpose
    stop: tuple[tuple[int, str], ...]  # idle stubs of replaced copies whose time is up, and their models


def zombies(children: Children) -> set[int]:
    """The listed children that died (a stub that Triton stops is waited for; one that dies stays a zombie)."""
    return {pid for pid, state, _ in children if state == "Z"}


def dead_models(watch: Watch, children: Children) -> dict[str, set[int]]:
    """Each model one of whose known stubs is a zombie now -> all its known stubs."""
    dead = zombies(children) & watch.known.keys()
    return {model: {pid for pid, name in watch.known.items() if name == model}
            for model in sorted({watch.known[pid] for pid in dead})}


def decide(watch: Watch, children: Children, ready: dict[str, bool | None], now: float) -> Look:
    """The actions of a look. ``ready``: for models with a dead stub that are due for a check, whether the
    repository index says READY (None: no answer; a model missing is not due, or waiting to try again)."""
    dead = dead_models(watch, children)
    return Look(reload=tuple(m for m in dead if ready.get(m) is True),
                retire=tuple(m for m in dead if ready.get(m) is False),
                stop=tuple((pid, model) for pid, (model, due) in watch.idle.items() if now >= due))


def advance(watch: Watch, children: Children, look: Look, reloaded: set[str], now: float, exit_timeout: float,
            retry_s: float = RELOAD_RETRY) -> Watch:
    """The state after ``look``'s actions, ``reloaded`` the models whose new copy loaded. A model whose reload
    failed keeps its known stubs and is tried again after ``retry_s``; the surviving stubs of a replaced copy are
    stopped ``exit_timeout`` after it, once its requests had the time a stop grants them."""
    dead, died = dead_models(watch, children), zombies(children)
    retiring, idle, retry = set(watch.retiring), dict(watch.idle), dict(watch.retry)
    for model in look.reload:
        if model not in reloaded:  # the old copy still serves, with one instance fewer
            retry[model] = now + retry_s
            continue
        idle.update(dict.fromkeys(dead[model] - died, (model, now + exit_timeout)))
        retiring |= dead[model]
        retry.pop(model, None)
    for model in look.retire:
        retiring |= dead[model]
        retry.pop(model, None)
    for pid, _ in look.stop:
        idle.pop(pid, None)
    # From this look's list: a stub that died since stays known, and is a zombie at the next look.
    present = {pid for pid, _, _ in children}
    known = {pid: name for pid, name in (watch.known | stubs_among(children)).items()
             if pid in present and pid not in retiring}
    return Watch(known, frozenset(retiring), idle, retry)


def supervise(server_pid: int, alive: Callable[[], bool], stopping: Event, ready_in_index: Callable[[str], bool | None],
              reload: Callable[[str], bool], exit_timeout: float, say: Callable[[str], None]) -> int:
    """Look at the server's stubs every :data:`SUPERVISE_INTERVAL` until ``stopping`` is set or the server is not
    ``alive``; the number of copies replaced."""
    watch, replaced = Watch(stub_processes(server_pid)), 0
    while not stopping.wait(SUPERVISE_INTERVAL) and alive():
        children, now = child_processes(server_pid), time.monotonic()
        dead = dead_models(watch, children)
        look = decide(watch, children, {m: ready_in_index(m) for m in dead if now >= watch.retry.get(m, 0)}, now)
        reloaded = set()
        for model in look.reload:
            pids = ", ".join(map(str, sorted(dead[model] & zombies(children))))
            say(f"the stub of {model} (pid {pids}) died; reloading {model}")
            if reload(model):
                reloaded.add(model)
                replaced += 1
        for pid, model in look.stop:
            if kill_stub(server_pid, pid):
                say(f"stopped the idle stub (pid {pid}) of the replaced copy of {model}")
        watch = advance(watch, children, look, reloaded, time.monotonic(), exit_timeout)
    return replaced
