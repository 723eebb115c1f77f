"""What the wrapper learns from ansible-runner's events: phase times and per-task times."""

from flbed import runner


def task_start(task, role="", action="ansible.builtin.file"):
    return {"event": "playbook_on_task_start",
            "event_data": {"task": task, "role": role, "task_action": action}}


def done(kind, task, res=None, host="localhost"):
    return {"event": kind, "event_data": {"task": task, "host": host, "res": res or {}}}


def feed(events, clock, monkeypatch):
    """Send EVENTS to a fresh _Events whose clock reads the times of CLOCK in turn: at each
    play or task start, then at the end."""
    seconds = iter(clock)
    monkeypatch.setattr(runner.time, "monotonic", lambda: next(seconds))
    collected = runner._Events(None, ())
    for event in events:
        collected(event)
    return collected, collected.close()


def test_a_task_lasts_until_the_next_starts_and_counts_its_module_runs(monkeypatch):
    events = [
        {"event": "playbook_on_play_start", "event_data": {"play": "Provision"}},
        task_start("Make directories", "fl_participant"),
        done("runner_item_on_ok", "Make directories"),
        done("runner_item_on_ok", "Make directories"),
        done("runner_item_on_skipped", "Make directories"),
        done("runner_on_ok", "Make directories", {"results": [{}, {}, {}]}),
        task_start("Shape the links", "net_shaping", "flbed_link"),
        done("runner_on_ok", "Shape the links", {"changed": True}),
        task_start("Skipped probe", "net_shaping", "ansible.builtin.command"),
        {"event": "runner_on_skipped", "event_data": {"task": "Skipped probe"}},
    ]
    collected, phases = feed(events, [0.0, 1.5, 4.0, 4.25, 6.0], monkeypatch)
    assert [(t["task"], t["role"], t["action"], t["seconds"], t["calls"])
            for t in collected.task_times] == [
        ("Make directories", "fl_participant", "ansible.builtin.file", 2.5, 2),
        ("Shape the links", "net_shaping", "flbed_link", 0.25, 1),
        ("Skipped probe", "net_shaping", "ansible.builtin.command", 1.75, 0)]
    assert phases == {"other": 1.5, "provision": 2.5, "shaping": 2.0}


def test_a_failed_run_on_one_host_counts_as_a_call(monkeypatch):
    events = [task_start("Start containers"),
              done("runner_on_failed", "Start containers", {"msg": "boom"}, host="a"),
              done("runner_on_ok", "Start containers", host="b")]
    collected, _ = feed(events, [0.0, 3.0], monkeypatch)
    assert collected.task_times[0]["calls"] == 2
    assert collected.task_times[0]["seconds"] == 3.0
