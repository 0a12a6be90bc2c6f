"""Sanity tests for the SLSQP baseline (run: python -m pytest bench -q)."""

import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slsqp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def req(rid, chans, total, **cons):
    return {
        "request_id": rid,
        "model": {"model_id": "m", "kpi": "revenue", "baseline": 0, "channels": chans},
        "constraints": {"total": total, **cons},
        "objective": {"type": "max_kpi"},
    }


def test_linear_with_bounds_known_answer():
    # beta 2 vs 1: put as much as allowed (60) into "a", the rest into "b".
    r = req("lin", {"a": {"curve": {"type": "linear", "beta": 2.0}},
                    "b": {"curve": {"type": "linear", "beta": 1.0}}},
            100.0, channels={"a": {"max": 60}})
    out = slsqp.solve_request(r, repeats=1)
    assert out["status"] == "ok", out["message"]
    assert out["allocation"]["a"] == pytest.approx(60.0, abs=1e-6)
    assert out["allocation"]["b"] == pytest.approx(40.0, abs=1e-6)
    assert out["objective"] == pytest.approx(160.0, abs=1e-5)
    assert out["total_spend"] == pytest.approx(100.0, abs=1e-6)
    assert out["max_violation"] < 1e-6
    assert out["elapsed_us"] > 0 and out["nit"] >= 1


def test_saturation_kkt_equal_marginal_returns():
    beta = {"a": 500.0, "b": 300.0}
    kappa = {"a": 40.0, "b": 25.0}
    ch = {k: {"curve": {"type": "saturation", "beta": beta[k], "kappa": kappa[k]}}
          for k in beta}
    out = slsqp.solve_request(req("sat", ch, 100.0), repeats=1)
    assert out["status"] == "ok", out["message"]
    x = out["allocation"]
    assert x["a"] > 1 and x["b"] > 1  # interior optimum
    marg = {k: beta[k] * kappa[k] / (x[k] + kappa[k]) ** 2 for k in x}
    assert marg["a"] == pytest.approx(marg["b"], rel=1e-4)
    assert x["a"] + x["b"] == pytest.approx(100.0, abs=1e-6)
    # closed form: sqrt(beta_i kappa_i) / (x_i + kappa_i) equal across channels
    s = {k: math.sqrt(beta[k] * kappa[k]) for k in beta}
    lam = (100.0 + kappa["a"] + kappa["b"]) / (s["a"] + s["b"])
    assert x["a"] == pytest.approx(s["a"] * lam - kappa["a"], rel=1e-5)
    expected = sum(beta[k] * x[k] / (x[k] + kappa[k]) for k in x)
    assert out["objective"] == pytest.approx(expected, rel=1e-12)


def test_gradients_match_finite_differences():
    ch = {
        "h": {"curve": {"type": "hill", "beta": 900.0, "alpha": 2.2, "kappa": 250.0},
              "adstock": {"type": "geometric", "decay": 0.4}},
        "s": {"curve": {"type": "saturation", "beta": 400.0, "kappa": 80.0}},
        "e": {"curve": {"type": "exponential", "beta": 300.0, "kappa": 90.0}},
        "p": {"curve": {"type": "power", "beta": 3.0, "alpha": 0.6}},
        "l": {"curve": {"type": "log", "beta": 50.0, "kappa": 30.0}},
        "g": {"curve": {"type": "logistic", "beta": 200.0, "k": 0.02, "x0": 150.0}},
        "w": {"curve": {"type": "piecewise", "points": [[50, 100], [150, 180], [300, 200]]}},
        "n": {"curve": {"type": "linear", "beta": 1.2}},
    }
    prob = slsqp.Problem(req("fd", ch, 1000.0))
    x = np.array([123.0, 77.0, 55.0, 210.0, 40.0, 160.0, 99.0, 33.0])
    f, g = prob.neg_response_and_grad(x)
    h = 1e-6
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        fd = (prob.neg_response_and_grad(x + e)[0] - prob.neg_response_and_grad(x - e)[0]) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-7), prob.names[i]
    # f(0) = 0 for every curve, and gradients at 0 are finite
    f0, g0 = prob.neg_response_and_grad(np.zeros(len(x)))
    assert f0 == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.isfinite(g0))


def test_output_in_input_order_and_failures_do_not_crash():
    lin = {"a": {"curve": {"type": "linear", "beta": 1.0}},
           "b": {"curve": {"type": "linear", "beta": 2.0}}}
    lines = [
        json.dumps(req("r1", lin, 10.0)),
        "{not json",
        "",
        json.dumps(req("r2", {"a": {"curve": {"type": "nope"}}}, 10.0)),
        json.dumps(req("r3", lin, 20.0, channels={"a": {"min": 30}})),  # infeasible
        json.dumps(req("r4", lin, 30.0)),
    ]
    buf = io.StringIO()
    slsqp.run(lines, buf, repeats=1, maxiter=100, ftol=1e-9)
    outs = [json.loads(s) for s in buf.getvalue().splitlines()]
    assert [o["request_id"] for o in outs] == ["r1", None, "r2", "r3", "r4"]
    assert [o["status"] for o in outs] == ["ok", "failed", "failed", "failed", "ok"]
    assert "invalid JSON" in outs[1]["message"]
    assert "unsupported curve type" in outs[2]["message"]
    assert outs[4]["allocation"]["b"] == pytest.approx(30.0, abs=1e-6)


def test_cli_example_file():
    path = os.path.join(HERE, "testdata", "example.ndjson")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "slsqp.py"), path,
                           "--repeats", "2"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (out,) = [json.loads(s) for s in proc.stdout.splitlines()]
    assert out["request_id"] == "p1" and out["status"] == "ok", out
    x = out["allocation"]
    assert list(x) == ["tv", "digital", "radio"]
    assert out["total_spend"] == pytest.approx(300000.0, abs=1e-3)
    assert out["max_violation"] < 1e-3
    # tv at its max, the digital/radio ratio max (2.0) binding
    assert x["tv"] == pytest.approx(200000.0, rel=1e-6)
    assert x["digital"] / x["radio"] == pytest.approx(2.0, rel=1e-6)
