"""Plots of one run as PNG files: metrics per round and over time, traffic, update timeline.

Each ``*_figure`` function returns a matplotlib ``Figure`` (or None when the run has nothing
to draw), built without pyplot so nothing global is touched and no display is needed;
``write_plots`` saves them into ``<run_dir>/plots/``.
"""

import os

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)

from .report import read_resources, shown_metrics  # noqa: E402

PLOTS_DIR = "plots"
_DPI = 110


def _timed(report, metric):
    return [(e["time_s"], e["metrics"][metric]) for e in report.rounds
            if e["time_s"] is not None and e["metrics"].get(metric) is not None]


def metric_figure(report, metric):
    """The server's METRIC against round (left) and wall-clock time (right)."""
    by_round = [(e["round"], e["metrics"][metric]) for e in report.rounds
                if e["metrics"].get(metric) is not None]
    if not by_round:
        return None
    figure = Figure(figsize=(10, 4), dpi=_DPI, layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    left.plot(*zip(*by_round), marker="o")
    left.set_xlabel("round")
    left.set_ylabel(metric)
    left.xaxis.get_major_locator().set_params(integer=True)
    timed = _timed(report, metric)
    if timed:
        right.plot(*zip(*timed), marker="o", color="tab:orange")
    right.set_xlabel("time since training started (s)")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.suptitle(f"{metric} (server) — {_run_name(report)}")
    return figure


def bytes_figure(report):
    """Bytes each participant sent (up) and received (down) on its link."""
    measured = [p for p in report.participants
                if p["up_bytes"] is not None or p["down_bytes"] is not None]
    if not measured:
        return None
    scale, unit = _byte_unit(max(max(p["up_bytes"] or 0, p["down_bytes"] or 0)
                                 for p in measured))
    figure = Figure(figsize=(max(5, 1.2 * len(measured) + 2), 4), dpi=_DPI,
                    layout="constrained")
    axes = figure.subplots()
    positions = range(len(measured))
    axes.bar([x - 0.2 for x in positions], [(p["up_bytes"] or 0) / scale for p in measured],
             width=0.4, label="up (sent)")
    axes.bar([x + 0.2 for x in positions], [(p["down_bytes"] or 0) / scale for p in measured],
             width=0.4, label="down (received)")
    axes.set_xticks(list(positions), [p["name"] for p in measured])
    axes.set_xlabel("participant")
    axes.set_ylabel(f"traffic ({unit})")
    axes.legend()
    axes.grid(axis="y", alpha=0.3)
    figure.suptitle(f"link traffic per participant — {_run_name(report)}")
    return figure


def _byte_unit(largest):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if largest >= size:
            return size, unit
    return 1, "bytes"


def timeline_figure(report):
    """When each client's update of each round went out, against the server's round ends.

    The server does not log arriving updates, so a client's own training-result line marks
    its update (see ``report.client_update_times``); dashed lines mark when the server had
    evaluated each round.
    """
    clients = [name for name, times in report.updates.items() if times]
    if not clients:
        return None
    figure = Figure(figsize=(10, 1.0 + 0.6 * len(clients)), dpi=_DPI, layout="constrained")
    axes = figure.subplots()
    for row, name in enumerate(clients):
        times = report.updates[name]
        axes.scatter(list(times.values()), [row] * len(times), marker="|", s=300,
                     linewidths=2)
        for round_id, seconds in times.items():
            axes.annotate(str(round_id), (seconds, row), textcoords="offset points",
                          xytext=(0, 9), ha="center", fontsize=7)
    for entry in report.rounds:
        if entry["time_s"] is not None:
            axes.axvline(entry["time_s"], color="grey", linestyle="--", linewidth=0.8)
    axes.set_yticks(range(len(clients)), clients)
    axes.set_ylim(-0.6, len(clients) - 0.2)
    axes.set_xlabel("time since training started (s)")
    axes.set_ylabel("client")
    figure.suptitle(f"client updates per round (number: round; dashed: server evaluated) — "
                    f"{_run_name(report)}")
    return figure


def resources_figure(report):
    """CPU (% of one host core) and memory of every container over the sampled time."""
    series = {p["name"]: read_resources(os.path.join(report.run_dir, "participants",
                                                     p["name"], "resources.csv"))
              for p in report.participants}
    series = {name: rows for name, rows in series.items() if rows}
    if not series:
        return None
    figure = Figure(figsize=(10, 6), dpi=_DPI, layout="constrained")
    cpu_axes, memory_axes = figure.subplots(2, 1, sharex=True)
    for name, rows in series.items():
        cpu = [(r["time_s"], r["cpu_pct"]) for r in rows if r.get("cpu_pct") is not None]
        memory = [(r["time_s"], r["memory_bytes"] / 2**20) for r in rows
                  if r.get("memory_bytes") is not None]
        if cpu:
            cpu_axes.plot(*zip(*cpu), label=name)
        if memory:
            memory_axes.plot(*zip(*memory), label=name)
    cpu_axes.set_ylabel("CPU (% of one core)")
    memory_axes.set_ylabel("memory (MiB)")
    memory_axes.set_xlabel("time since sampling started (s)")
    cpu_axes.legend(fontsize=8, ncol=4)
    for axes in (cpu_axes, memory_axes):
        axes.grid(alpha=0.3)
    figure.suptitle(f"container resources — {_run_name(report)}")
    return figure


def _run_name(report):
    return f"{report.summary.get('testbed', '?')} {report.summary.get('run_id', '')}".strip()


def all_figures(report):
    """{file name: Figure} of every plot the run has data for."""
    figures = {f"metric_{m}.png": metric_figure(report, m)
               for m in shown_metrics(report.metric_names)}
    figures.update({"bytes.png": bytes_figure(report), "timeline.png": timeline_figure(report),
                    "resources.png": resources_figure(report)})
    return {name: figure for name, figure in figures.items() if figure is not None}


def write_plots(report):
    """Save every plot under ``<run_dir>/plots/``; returns the paths written."""
    folder = os.path.join(report.run_dir, PLOTS_DIR)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, figure in all_figures(report).items():
        path = os.path.join(folder, name)
        figure.savefig(path)
        paths.append(path)
    return paths
