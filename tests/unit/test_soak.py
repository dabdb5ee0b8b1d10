"""``make soak``'s arithmetic: memory growth after warm-up and p99 drift, from samples."""

from triton_ner_loadtest.soak import growth_after_warmup, load_rows, p99_drift


def test_growth_counts_only_after_warm_up_and_smooths_single_samples():
    rows = [(t, "tritonserver", 100.0 if t < 60 else 300.0 + (t >= 100) * 40) for t in range(0, 200, 5)]
    rows += [(t, "ner_model (7)", 50.0 + (t == 150) * 500) for t in range(0, 200, 5)]  # one spike, no growth
    growth = growth_after_warmup(rows, warmup_s=60)
    assert growth["tritonserver"] == 40.0
    assert growth["ner_model (7)"] == 0.0


def test_p99_drift_compares_the_first_and_last_quarter_after_warm_up(tmp_path):
    history = tmp_path / "history.csv"
    lines = ["Timestamp,User Count,Type,Name,50%,99%"]
    lines += [f"{1000 + s},32,,Aggregated,10,{'N/A' if s == 0 else 500 if s < 30 else 20 if s < 90 else 40}"
              for s in range(0, 120)]
    lines += ["1050,32,grpc,ner,10,999"]  # per-request rows are not the aggregate
    history.write_text("\n".join(lines) + "\n")
    assert p99_drift(history, warmup_s=30, duration_s=120) == (20.0, 40.0)


def test_p99_drift_leaves_out_locust_stopping_its_users(tmp_path):
    # 100 s of load at 32 users (p99 20 ms, then 40 ms), then Locust's stop: users falling while the last requests
    # are cancelled (p99 5,000 ms), and rows written after the run's time limit.
    history = tmp_path / "history.csv"
    lines = ["Timestamp,User Count,Type,Name,50%,99%"]
    lines += ["999,32,,Aggregated,0,0"]  # the first second: no percentiles yet
    lines += [f"{1000 + s},{min(32, 8 * (s + 1))},,Aggregated,10,{20 if s < 60 else 40}" for s in range(100)]
    lines += [f"{1100 + s},{32 - 8 * s},,Aggregated,10,5000" for s in range(1, 5)]
    lines += [f"{1105 + s},32,,Aggregated,10,5000" for s in range(10)]
    history.write_text("\n".join(lines) + "\n")
    assert p99_drift(history, warmup_s=20, duration_s=100) == (20.0, 40.0)
    assert [seconds for seconds, _, _ in load_rows(history, duration_s=100)] == list(range(100))
    assert p99_drift(history, warmup_s=20, duration_s=1000)[1] == 40.0  # the user count alone ends the load too
