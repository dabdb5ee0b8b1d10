"""The stub supervisor's decision on made-up process lists, and the watchdog on a real process group."""

from __future__ import annotations

import os
import subprocess
import time

from triton_ner.server import watchdog
from triton_ner.server.supervisor import Look, Watch, advance, dead_models, decide


def stub(pid: int, model: str, state: str = "S") -> tuple[int, str, list[str]]:
    return (pid, state, [] if state == "Z" else ["stub", f"/repo/{model}/1/model.py", "shm", "..."])


TWO_MODELS = [stub(10, "ner_model"), stub(11, "ner_model"), stub(20, "ner_text")]


def test_a_zombie_among_known_stubs_makes_its_model_dead():
    watch = Watch({10: "ner_model", 11: "ner_model", 20: "ner_text"})
    assert dead_models(watch, TWO_MODELS) == {}
    children = [stub(10, "ner_model", "Z"), stub(11, "ner_model"), stub(20, "ner_text")]
    assert dead_models(watch, children) == {"ner_model": {10, 11}}
    assert dead_models(Watch({}), children) == {}  # a zombie never seen alive is nobody's stub


def test_a_dead_stub_of_a_ready_model_is_reloaded_and_its_survivor_stopped_after_the_exit_timeout():
    watch = Watch({10: "ner_model", 11: "ner_model", 20: "ner_text"})
    children = [stub(10, "ner_model", "Z"), stub(11, "ner_model"), stub(20, "ner_text"),
                stub(12, "ner_model"), stub(13, "ner_model")]  # the new copy's stubs are up
    look = decide(watch, children, {"ner_model": True}, now=100.0)
    assert look == Look(reload=("ner_model",), retire=(), stop=())
    after = advance(watch, children, look, {"ner_model"}, now=100.0, exit_timeout=30)
    assert after.idle == {11: ("ner_model", 130.0)} and after.retiring == {10, 11}
    assert after.known == {20: "ner_text", 12: "ner_model", 13: "ner_model"}
    # The old copy's exits are no deaths; at its time, the idle stub is stopped.
    later = [stub(11, "ner_model"), stub(20, "ner_text"), stub(12, "ner_model"), stub(13, "ner_model")]
    assert decide(after, later, {}, now=129.0) == Look((), (), ())
    assert decide(after, later, {}, now=130.0) == Look((), (), ((11, "ner_model"),))
    assert advance(after, later, Look((), (), ((11, "ner_model"),)), set(), 130.0, 30).idle == {}


def test_a_failed_reload_is_tried_again_after_the_retry_delay_and_the_stubs_stay_known():
    watch = Watch({10: "ner_model", 11: "ner_model"})
    children = [stub(10, "ner_model", "Z"), stub(11, "ner_model")]
    look = decide(watch, children, {"ner_model": True}, now=50.0)
    after = advance(watch, children, look, set(), now=50.0, exit_timeout=30, retry_s=5)
    # A stub that died stays known until handled (a zombie stays listed): the model is dead again next look,
    # and checked once the retry time has come.
    assert after.retry == {"ner_model": 55.0} and after.known == watch.known and not after.idle
    assert dead_models(after, children) == {"ner_model": {10, 11}}


def test_a_model_not_ready_was_unloaded_on_purpose_and_its_stubs_retire():
    watch = Watch({10: "ner_model", 11: "ner_model"})
    children = [stub(10, "ner_model", "Z"), stub(11, "ner_model", "Z")]
    look = decide(watch, children, {"ner_model": False}, now=1.0)
    assert look == Look((), ("ner_model",), ())
    assert advance(watch, children, look, set(), 1.0, 30) == Watch({}, frozenset({10, 11}), {}, {})


def test_no_answer_from_the_index_means_look_again():
    watch = Watch({10: "ner_model"})
    children = [stub(10, "ner_model", "Z")]
    look = decide(watch, children, {"ner_model": None}, now=1.0)
    after = advance(watch, children, look, set(), 1.0, 30)
    assert look == Look((), (), ()) and after == watch
    assert dead_models(after, children) == {"ner_model": {10}}  # the next look sees the same death


def _run_watchdog(group: int, workdir, shm_prefix: str, say: bytes | None) -> subprocess.Popen:
    read, write = os.pipe()
    dog = subprocess.Popen(watchdog.command(group, 2, str(workdir), shm_prefix), stdin=read)
    os.close(read)
    if say:
        os.write(write, say)
    os.close(write)  # the launcher gone (or done)
    return dog


def test_the_watchdog_stops_the_group_and_cleans_up_when_the_launcher_is_gone(tmp_path):
    group = subprocess.Popen(["sleep", "60"], start_new_session=True)
    workdir, shm = tmp_path / "work", tmp_path / "shm-token-"
    workdir.mkdir()
    (tmp_path / "shm-token-a").write_text("")
    (tmp_path / "shm-other").write_text("")
    assert _run_watchdog(group.pid, workdir, str(shm), None).wait(10) == 0
    assert group.wait(10) < 0  # signalled
    assert not workdir.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["shm-other"]


def test_the_watchdog_leaves_everything_when_the_launcher_stopped_the_server(tmp_path):
    group = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert _run_watchdog(group.pid, tmp_path, str(tmp_path / "x"), b"s").wait(10) == 0
        time.sleep(0.2)
        assert group.poll() is None and tmp_path.exists()
    finally:
        group.kill()
        group.wait()
