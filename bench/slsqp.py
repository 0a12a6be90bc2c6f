#!/usr/bin/env python3
"""SLSQP baseline for Atlas budget-allocation benchmarks.

Solves each budget-allocation request with ``scipy.optimize.minimize(method="SLSQP")``
the way PyMC-Marketing's ``BudgetOptimizer.allocate_budget`` does:

* objective and gradient returned together (``jac=True``), analytic gradient
  (PyMC-Marketing compiles an autodiff gradient with PyTensor);
* per-channel ``bounds`` (default ``(0, total)``);
* an equality constraint ``sum(x) - total == 0``;
* the starting point ``x0 = total / n`` for every channel, *not* clipped by us.
  (SciPy's SLSQP itself clips x0 into the bounds before the first evaluation,
  so PyMC-Marketing's unclipped x0 gets clipped by SciPy just the same.)
* PyMC-Marketing's defaults: ``options={"ftol": 1e-9, "maxiter": 1000}``.

Input : NDJSON requests (file path argument, or stdin when absent / "-").
Output: NDJSON results on stdout, one per non-blank input line, in input order.

Only numpy and scipy are imported (plus the standard library), so start-up is
dominated by ``import scipy.optimize`` (~0.3 s).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings

import numpy as np
from scipy.optimize import minimize

# Floor used inside x**(alpha-1) so hill/power gradients at x == 0 stay finite.
TINY = 1e-12

DEFAULT_REPEATS = 5
DEFAULT_MAXITER = 1000  # PyMC-Marketing DEFAULT_MINIMIZE_KWARGS
DEFAULT_FTOL = 1e-9  # PyMC-Marketing DEFAULT_MINIMIZE_KWARGS


class RequestError(ValueError):
    """The request is malformed or uses something this baseline does not support."""


# --------------------------------------------------------------------------- #
# small validation helpers
# --------------------------------------------------------------------------- #
def _num(value, what: str, *, minimum: float | None = None, strict_min: bool = False,
         allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise RequestError(f"{what} must be finite, got {value!r}")
    if minimum is not None:
        if strict_min and not v > minimum:
            raise RequestError(f"{what} must be > {minimum}, got {value!r}")
        if not strict_min and not v >= minimum:
            raise RequestError(f"{what} must be >= {minimum}, got {value!r}")
    return v


def _obj(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be an object")
    return value


def _check_keys(d: dict, allowed: set, what: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise RequestError(f"unsupported field(s) in {what}: {', '.join(extra)}")


# --------------------------------------------------------------------------- #
# response curves
# --------------------------------------------------------------------------- #
def _sigmoid(z):
    # numerically stable logistic function
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class Curves:
    """Vectorised evaluation of all channel curves (value and derivative).

    Channels are grouped by curve type so an evaluation costs a handful of numpy
    calls per curve type present, independent of the number of channels.
    """

    def __init__(self, names: list[str], channels: dict):
        n = len(names)
        self.n = n
        self.scale = np.ones(n)  # geometric adstock: response = f(x / (1 - decay))
        by_type: dict[str, list[tuple[int, dict]]] = {}
        self.piecewise: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

        for i, name in enumerate(names):
            ch = _obj(channels[name], f"model.channels.{name}")
            _check_keys(ch, {"curve", "adstock"}, f"model.channels.{name}")
            curve = dict(_obj(ch.get("curve"), f"model.channels.{name}.curve"))
            if isinstance(curve.get("params"), dict):  # tolerate nested params
                params = curve.pop("params")
                curve.update(params)
            ctype = curve.get("type")
            where = f"model.channels.{name}.curve"
            if ctype == "piecewise":
                self.piecewise.append((i, *self._piecewise(curve.get("points"), where)))
            elif ctype in _PARAMS:
                p = {}
                for key, (minimum, strict) in _PARAMS[ctype].items():
                    if key not in curve:
                        raise RequestError(f"{where}: missing parameter {key!r}")
                    p[key] = _num(curve[key], f"{where}.{key}", minimum=minimum,
                                  strict_min=strict)
                by_type.setdefault(ctype, []).append((i, p))
            else:
                raise RequestError(f"{where}: unsupported curve type {ctype!r}")

            ad = ch.get("adstock")
            if ad is not None:
                ad = _obj(ad, f"model.channels.{name}.adstock")
                if ad.get("type") != "geometric":
                    raise RequestError(
                        f"model.channels.{name}.adstock: unsupported type {ad.get('type')!r}")
                d = _num(ad.get("decay"), f"model.channels.{name}.adstock.decay", minimum=0.0)
                if d >= 1.0:
                    raise RequestError(f"model.channels.{name}.adstock.decay must be < 1")
                self.scale[i] = 1.0 / (1.0 - d)

        # (type, index array, {param: array})
        self.groups = []
        for ctype, items in by_type.items():
            idx = np.array([i for i, _ in items], dtype=np.intp)
            params = {k: np.array([p[k] for _, p in items]) for k in _PARAMS[ctype]}
            self.groups.append((ctype, idx, params))
        self._all_scale_one = bool(np.all(self.scale == 1.0))

    @staticmethod
    def _piecewise(points, where):
        if not isinstance(points, list) or not points:
            raise RequestError(f"{where}.points must be a non-empty list of [x, y]")
        xs, ys = [], []
        for j, pt in enumerate(points):
            if not isinstance(pt, (list, tuple)) or len(pt) != 2:
                raise RequestError(f"{where}.points[{j}] must be [x, y]")
            xs.append(_num(pt[0], f"{where}.points[{j}][0]", minimum=0.0))
            ys.append(_num(pt[1], f"{where}.points[{j}][1]"))
        if xs[0] > 0.0:
            xs.insert(0, 0.0)
            ys.insert(0, 0.0)
        xs_a, ys_a = np.array(xs), np.array(ys)
        if np.any(np.diff(xs_a) <= 0):
            raise RequestError(f"{where}.points must have strictly increasing x")
        slopes = np.diff(ys_a) / np.diff(xs_a)
        return xs_a, ys_a, slopes

    def value_grad(self, x: np.ndarray):
        """Per-channel responses f_i(x_i) and derivatives f_i'(x_i)."""
        scale = self.scale
        u = x if self._all_scale_one else x * scale
        v = np.empty(self.n)
        d = np.empty(self.n)
        for ctype, idx, p in self.groups:
            ui = u[idx]
            vi, di = _EVAL[ctype](ui, p)
            v[idx] = vi
            d[idx] = di
        for i, xs, ys, slopes in self.piecewise:
            ui = u[i]
            v[i] = np.interp(ui, xs, ys)
            k = int(np.searchsorted(xs, ui, side="right")) - 1
            d[i] = 0.0 if k >= len(slopes) else slopes[max(k, 0)]
        if not self._all_scale_one:
            d *= scale
        return v, d


# parameter name -> (minimum, strictly greater?)
_PARAMS = {
    "linear": {"beta": (None, False)},
    "hill": {"beta": (None, False), "alpha": (0.0, True), "kappa": (0.0, True)},
    "saturation": {"beta": (None, False), "kappa": (0.0, True)},
    "exponential": {"beta": (None, False), "kappa": (0.0, True)},
    "power": {"beta": (None, False), "alpha": (0.0, True)},
    "log": {"beta": (None, False), "kappa": (0.0, True)},
    "logistic": {"beta": (None, False), "k": (None, False), "x0": (None, False)},
}


def _linear(u, p):
    b = p["beta"]
    return b * u, b


def _hill(u, p):
    b, a, k = p["beta"], p["alpha"], p["kappa"]
    r = (np.maximum(u, 0.0) / k) ** a
    val = b * (1.0 - 1.0 / (1.0 + r))
    q = np.maximum(u, TINY) / k
    grad = (b * a / k) * q ** (a - 1.0) / (1.0 + q ** a) ** 2
    return val, grad


def _saturation(u, p):
    b, k = p["beta"], p["kappa"]
    den = u + k
    return b * u / den, b * k / (den * den)


def _exponential(u, p):
    b, k = p["beta"], p["kappa"]
    return -b * np.expm1(-u / k), (b / k) * np.exp(-u / k)


def _power(u, p):
    b, a = p["beta"], p["alpha"]
    return b * np.maximum(u, 0.0) ** a, b * a * np.maximum(u, TINY) ** (a - 1.0)


def _log(u, p):
    b, k = p["beta"], p["kappa"]
    return b * np.log1p(u / k), b / (k + u)


def _logistic(u, p):
    b, k, x0 = p["beta"], p["k"], p["x0"]
    s = _sigmoid(k * (u - x0))
    return b * (s - _sigmoid(-k * x0)), b * k * s * (1.0 - s)


_EVAL = {
    "linear": _linear,
    "hill": _hill,
    "saturation": _saturation,
    "exponential": _exponential,
    "power": _power,
    "log": _log,
    "logistic": _logistic,
}


# --------------------------------------------------------------------------- #
# problem construction
# --------------------------------------------------------------------------- #
class Problem:
    """A parsed request: curves, bounds, total and linear inequalities A x - b >= 0."""

    def __init__(self, req: dict):
        req = _obj(req, "request")
        model = _obj(req.get("model"), "model")
        channels = _obj(model.get("channels"), "model.channels")
        if not channels:
            raise RequestError("model.channels is empty")
        self.names = list(channels)
        n = self.n = len(self.names)
        pos = {name: i for i, name in enumerate(self.names)}
        self.curves = Curves(self.names, channels)

        objective = req.get("objective")
        if objective is not None:
            objective = _obj(objective, "objective")
            if objective.get("type", "max_kpi") != "max_kpi":
                raise RequestError(
                    f"unsupported objective type {objective.get('type')!r} (only max_kpi)")

        def chan(name, what):
            if name not in pos:
                raise RequestError(f"{what} references unknown channel {name!r}")
            return pos[name]

        budget = req.get("budget")
        budget_sum = None
        if budget is not None:
            budget = _obj(budget, "budget")
            budget_sum = 0.0
            for name, spend in budget.items():
                chan(name, "budget")
                budget_sum += _num(spend, f"budget.{name}", minimum=0.0)

        cons = req.get("constraints")
        cons = {} if cons is None else _obj(cons, "constraints")
        _check_keys(cons, {"total", "channels", "groups", "ratios"}, "constraints")

        total = cons.get("total")
        if total is None:
            if budget_sum is None:
                raise RequestError("neither constraints.total nor budget given")
            total = budget_sum
        elif isinstance(total, dict):
            raise RequestError("only a numeric constraints.total is supported")
        total = self.total = _num(total, "constraints.total", minimum=0.0)

        # bounds: default (0, total), as PyMC-Marketing
        lb = np.zeros(n)
        ub = np.full(n, total)
        ch_cons = cons.get("channels")
        if ch_cons is not None:
            for name, c in _obj(ch_cons, "constraints.channels").items():
                i = chan(name, "constraints.channels")
                c = _obj(c, f"constraints.channels.{name}")
                _check_keys(c, {"min", "max"}, f"constraints.channels.{name}")
                if c.get("min") is not None:
                    lb[i] = _num(c["min"], f"constraints.channels.{name}.min", minimum=0.0)
                if c.get("max") is not None:
                    hi = _num(c["max"], f"constraints.channels.{name}.max", allow_inf=True)
                    ub[i] = total if math.isinf(hi) else hi
        self.lb, self.ub = lb, ub

        rows, rhs = [], []

        def add(row, b):
            rows.append(row)
            rhs.append(b)

        groups = cons.get("groups")
        if groups is not None:
            if not isinstance(groups, list):
                raise RequestError("constraints.groups must be a list")
            for gi, g in enumerate(groups):
                where = f"constraints.groups[{gi}]"
                g = _obj(g, where)
                _check_keys(g, {"name", "channels", "min", "max", "min_share", "max_share"},
                            where)
                members = g.get("channels")
                if not isinstance(members, list) or not members:
                    raise RequestError(f"{where}.channels must be a non-empty list")
                mask = np.zeros(n)
                for name in members:
                    mask[chan(name, where)] = 1.0
                if g.get("min") is not None:
                    add(mask, _num(g["min"], f"{where}.min"))
                if g.get("max") is not None:
                    add(-mask, -_num(g["max"], f"{where}.max"))
                # shares are fractions of total spend; total spend == total (equality)
                if g.get("min_share") is not None:
                    s = _num(g["min_share"], f"{where}.min_share", minimum=0.0)
                    add(mask, s * total)
                if g.get("max_share") is not None:
                    s = _num(g["max_share"], f"{where}.max_share", minimum=0.0)
                    add(-mask, -s * total)

        ratios = cons.get("ratios")
        if ratios is not None:
            if not isinstance(ratios, list):
                raise RequestError("constraints.ratios must be a list")
            for ri, r in enumerate(ratios):
                where = f"constraints.ratios[{ri}]"
                r = _obj(r, where)
                _check_keys(r, {"name", "numerator", "denominator", "min", "max"}, where)
                i_num = chan(r.get("numerator"), f"{where}.numerator")
                i_den = chan(r.get("denominator"), f"{where}.denominator")
                if i_num == i_den:
                    raise RequestError(f"{where}: numerator and denominator are the same")
                if r.get("min") is not None:  # x_num - min * x_den >= 0
                    row = np.zeros(n)
                    row[i_num] += 1.0
                    row[i_den] -= _num(r["min"], f"{where}.min", minimum=0.0)
                    add(row, 0.0)
                if r.get("max") is not None:  # max * x_den - x_num >= 0
                    row = np.zeros(n)
                    row[i_num] -= 1.0
                    row[i_den] += _num(r["max"], f"{where}.max", minimum=0.0)
                    add(row, 0.0)

        self.A = np.array(rows).reshape(len(rows), n)
        self.b = np.array(rhs, dtype=float)

        # ---- scipy inputs, built once (outside the timed region) ----
        self.x0 = np.full(n, total / n)  # PyMC-Marketing: uniform split, not clipped
        self.bounds = list(zip(lb.tolist(), ub.tolist()))
        ones = np.ones(n)
        A, b = self.A, self.b
        self.constraints = [
            {"type": "eq", "fun": lambda x: np.sum(x) - total, "jac": lambda x: ones},
        ]
        if len(b):
            self.constraints.append(
                {"type": "ineq", "fun": lambda x: A @ x - b, "jac": lambda x: A})

    def neg_response_and_grad(self, x):
        v, d = self.curves.value_grad(x)
        return -float(np.sum(v)), -d

    def response(self, x) -> float:
        return float(np.sum(self.curves.value_grad(x)[0]))

    def max_violation(self, x) -> float:
        viol = [abs(float(np.sum(x)) - self.total),
                float(np.max(self.lb - x)), float(np.max(x - self.ub)), 0.0]
        if len(self.b):
            viol.append(float(np.max(self.b - self.A @ x)))
        return max(viol)

    def solve(self, maxiter: int, ftol: float):
        return minimize(
            self.neg_response_and_grad,
            self.x0,
            jac=True,
            method="SLSQP",
            bounds=self.bounds,
            constraints=self.constraints,
            options={"ftol": ftol, "maxiter": maxiter},
        )


# --------------------------------------------------------------------------- #
# request handling
# --------------------------------------------------------------------------- #
def _finite_or_none(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def solve_request(req, repeats: int = DEFAULT_REPEATS, maxiter: int = DEFAULT_MAXITER,
                  ftol: float = DEFAULT_FTOL) -> dict:
    """Solve one parsed request; never raises."""
    rid = req.get("request_id") if isinstance(req, dict) else None
    out = {"request_id": rid, "status": "failed", "objective": None, "allocation": None,
           "total_spend": None, "max_violation": None, "elapsed_us": None, "nit": None,
           "nfev": None, "message": ""}
    try:
        prob = Problem(req)
        times = []
        res = None
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter_ns()
            res = prob.solve(maxiter, ftol)
            times.append(time.perf_counter_ns() - t0)
        x = np.asarray(res.x, dtype=float)
        objective = prob.response(x)
        out.update(
            objective=_finite_or_none(objective),
            allocation={name: _finite_or_none(xi) for name, xi in zip(prob.names, x.tolist())},
            total_spend=_finite_or_none(np.sum(x)),
            max_violation=_finite_or_none(prob.max_violation(x)),
            elapsed_us=round(float(np.median(times)) / 1e3, 3),
            nit=int(res.nit),
            nfev=int(res.nfev),
            message=str(res.message),
        )
        finite = math.isfinite(objective) and bool(np.all(np.isfinite(x)))
        if res.success and finite:
            out["status"] = "ok"
        elif res.success:
            out["message"] = f"{res.message}; non-finite objective or allocation"
    except Exception as exc:  # a bad problem must never crash the run
        out["message"] = f"{type(exc).__name__}: {exc}"
    return out


def process_line(line: str, **kw) -> dict:
    try:
        req = json.loads(line)
    except ValueError as exc:
        out = solve_request(None, **kw)  # empty failed record
        out["message"] = f"invalid JSON: {exc}"
        return out
    if not isinstance(req, dict):
        out = solve_request(None, **kw)
        out["message"] = "request must be a JSON object"
        return out
    return solve_request(req, **kw)


def run(lines, out, **kw) -> int:
    count = 0
    for line in lines:
        if not line.strip():
            continue  # blank lines are not requests
        result = process_line(line, **kw)
        out.write(json.dumps(result, allow_nan=False) + "\n")
        out.flush()
        count += 1
    return count


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="SLSQP (PyMC-Marketing style) baseline for budget allocation. "
                    "Reads NDJSON requests, writes NDJSON results.")
    ap.add_argument("input", nargs="?", default="-",
                    help="NDJSON request file (default: stdin)")
    ap.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                    help="solves per request; elapsed_us is their median (default 5)")
    ap.add_argument("--maxiter", type=int, default=DEFAULT_MAXITER,
                    help="SLSQP maxiter (default 1000, as PyMC-Marketing)")
    ap.add_argument("--ftol", type=float, default=DEFAULT_FTOL,
                    help="SLSQP ftol (default 1e-9, as PyMC-Marketing)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.maxiter < 1 or not args.ftol > 0:
        ap.error("--repeats and --maxiter must be >= 1 and --ftol > 0")

    # keep stderr quiet: SciPy's bound-clipping warnings, numpy overflow, ...
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")

    kw = {"repeats": args.repeats, "maxiter": args.maxiter, "ftol": args.ftol}
    try:
        if args.input == "-":
            run(sys.stdin, sys.stdout, **kw)
        else:
            with open(args.input, encoding="utf-8") as fh:
                run(fh, sys.stdout, **kw)
    except BrokenPipeError:
        return 1
    except OSError as exc:
        print(f"slsqp.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
