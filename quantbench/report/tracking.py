"""A finished study logged to MLflow: one parent run, a child run per variant (optional extra quantbench[mlflow]).

Only `MlflowClient` is used, with the tracking URI passed to it: no global MLflow state (active run, tracking
URI, environment variables) is set, so the calling process is left alone.
"""
from __future__ import annotations

import math
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ..core.errors import InputError, TrackingError, one_line
from ..record.results import BASELINE, REFERENCE, Results, Variant

DEFAULT_URI = "sqlite:///mlflow.db"
EXPERIMENT = "quantbench"
CHECK_TIMEOUT_S = 5.0   # a server that does not answer within this is unreachable (MLflow's own retries take minutes)
INSTALL = "pip install 'quantbench[mlflow]'"
STUDY_ARTIFACTS = ("results.json", "report.html", "report.md", "recommended.tflite")
RECOMMENDED_TAG = "quantbench.recommended"
# an experiment quantbench creates opens on MLflow 3's run table ("Model training"), not its GenAI overview
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
SQLITE_MAGIC = b"SQLite format 3\x00"


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI: `uri`, else MLFLOW_TRACKING_URI, else a SQLite store in the current folder."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise InputError(f"--mlflow needs MLflow, which is not installed. Expected the optional extra "
                         f"quantbench[mlflow] (mlflow 3.x). Fix: {INSTALL}, or drop --mlflow.") from None
    return mlflow


def _check_http(uri: str, timeout: float) -> None:
    """Any HTTP answer from the server counts as reachable; no answer within `timeout` does not."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # it answered (auth, a proxy's 404): reachable; logging will say more if it is not MLflow
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"The MLflow tracking server at {uri} cannot be reached ({one_line(reason)}; waited up to "
            f"{timeout:g} s). Expected a running server, e.g. mlflow server --host 127.0.0.1 --port 5000. "
            "Fix: start it or correct the URI (--mlflow URI or MLFLOW_TRACKING_URI), or drop --mlflow.") from None


def _check_sqlite(uri: str) -> None:
    """The database's folder must exist and be writable; an existing file must be a SQLite database."""
    path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
    if path is None or not path.name or path.name == ":memory:":
        raise InputError(f"MLflow tracking URI {uri!r} names no database file. Expected sqlite:///FILE.db "
                         "(sqlite:////abs/path.db for an absolute path). Fix: pass --mlflow sqlite:///mlflow.db.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise InputError(f"MLflow tracking URI {uri}: the folder {folder} does not exist or is not writable. "
                         "Expected a writable folder for the SQLite file. Fix: create it, or choose another URI.")
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise InputError(f"MLflow tracking URI {uri}: {path} exists and is not a SQLite database. "
                                 "Expected an MLflow SQLite store or a new file. Fix: choose another file name.")


def check(uri: str | None = None, timeout: float = CHECK_TIMEOUT_S) -> str:
    """The resolved tracking URI, once MLflow is importable and the store can be reached: call before the work."""
    uri = resolve_uri(uri)
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):  # the store first: a wrong URI is refused without MLflow's 1.5 s import
        _check_http(uri, timeout)
    elif scheme == "sqlite":
        _check_sqlite(uri)
    _mlflow()
    return uri  # other stores (file, databricks, databases): MLflow's own errors say what is wrong


# ---- what is logged: plain dicts built from the results, before any MLflow call --------------------

def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _flat(prefix: str, d: dict) -> dict[str, str]:
    return {f"{prefix}.{k}": ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
            for k, v in d.items() if v is not None}


def study_params(results: Results) -> dict[str, str]:
    """The parent run's params: model, data, calibration split, seed, budget, target and the other settings."""
    s, d, calib = results.settings, results.data, results.data.get("calibration") or {}
    params = {
        "model": results.model.get("name"), "model_path": results.model.get("path"),
        "model_format": results.model.get("format"), "data": d.get("name"), "eval_samples": d.get("eval_samples"),
        "eval_from": d.get("eval_from"), "labels": d.get("labels"),
        "calibration_samples": calib.get("samples"), "calibration_from": calib.get("from"),
        "calibration_seed": calib.get("seed"), "seed": s.get("seed"), "max_accuracy_drop_pp": s.get("max_drop_pp"),
        "target": s.get("target"), "optimize": s.get("optimize"),
        "techniques": ",".join(v.technique for v in results.variants),
    }
    params.update({f"settings.{k}": v for k, v in s.items() if f"settings.{k}" not in params})
    return {k: str(v) for k, v in params.items() if v is not None}


def study_tags(results: Results) -> dict[str, str]:
    """The parent run's tags: quantbench's version, the machine, the recommendation (also as the run's note)."""
    rec = results.recommendation or {}
    tags = {"quantbench.version": results.quantbench_version, **_flat("machine", results.machine)}
    if rec.get("technique"):
        tags[RECOMMENDED_TAG] = rec["technique"]
    if rec.get("summary"):
        tags["mlflow.note.content"] = rec["summary"]
    return tags


def variant_params(v: Variant) -> dict[str, str]:
    """A child run's params: technique, engine and the technique's settings (converter flags or recipe)."""
    from ..engines import techniques

    params = {"technique": v.technique, "engine": v.engine, "status": v.status, "input_dtype": v.input_dtype,
              "output_dtype": v.output_dtype}
    if v.technique in techniques.names():
        t = techniques.get(v.technique)
        if t.recipe:
            params.update({f"recipe.{k}": val for k, val in t.recipe})
            params["calibrate"] = t.calibrate
        else:
            params.update({"optimize": t.optimize, "calibrate": t.calibrate, "ops": ",".join(t.ops) or None,
                           "types": ",".join(t.types) or None, "io_dtype": t.io_dtype,
                           "integer_only": t.integer_only})
    return {k: str(val) for k, val in params.items() if val is not None}


def variant_metrics(v: Variant, results: Results) -> dict[str, float]:
    """A child run's metrics: accuracy and its interval, drop and p against float32, fidelity, size, speed."""
    base = next((r for r in results.variants if r.technique == BASELINE and r.ok and r.bytes), None) or \
        next((r for r in results.variants if r.technique == REFERENCE and r.ok and r.bytes), None)
    lat, thr = v.latency_ms or {}, v.throughput or {}
    pairs = {
        "accuracy": v.accuracy, "top5": v.top5, "accuracy_delta_pp": v.accuracy_delta_pp,
        "p_vs_float32": v.p_vs_float32, "agreement": v.agreement, "sqnr_db": v.sqnr_db, "kl": v.kl,
        "bytes": v.bytes, "size_ratio": v.bytes / base.bytes if v.bytes and base else None,
        "latency_median_ms": lat.get("median"), "latency_p90_ms": lat.get("p90"), "latency_p99_ms": lat.get("p99"),
        "latency_rounds": lat.get("n"), "throughput_samples_per_s": thr.get("samples_per_s"),
        "throughput_batch": thr.get("batch"), "throughput_rounds": thr.get("n"), "convert_s": v.convert_s,
    }
    for name, ends in (("accuracy_ci", v.accuracy_ci), ("drop_ci_pp", v.drop_ci_pp),
                       ("latency_ci_ms", lat.get("ci95")), ("throughput_ci", thr.get("ci95"))):
        if ends:
            pairs[f"{name}_lo"], pairs[f"{name}_hi"] = ends
    for o in v.outputs or []:  # every output by its task: "<output>.<figure>"
        key = "metric" if o["output"] == "*" else re.sub(r"[^A-Za-z0-9_\-./ ]", "_", o["output"])
        for field in ("value", "loss", "sqnr_db", "cosine", "agreement", "top5", "auc", "rmse", "p"):
            pairs[f"{key}.{o['metric'] if field == 'value' else field}"] = o.get(field)
        for field in ("ci", "loss_ci"):
            if o.get(field):
                pairs[f"{key}.{field}_lo"], pairs[f"{key}.{field}_hi"] = o[field]
    return {k: float(x) for k, x in pairs.items() if _finite(x)}  # sqnr None: identical outputs (infinite)


def variant_tags(v: Variant, results: Results) -> dict[str, str]:
    tags = {"quantbench.status": v.status}
    if v.error:
        tags["quantbench.error"] = v.error[:5000]
    if v.xnnpack_refused:  # its latency and throughput are LiteRT's built-in kernels', not XNNPACK's
        tags["quantbench.xnnpack_refused"] = v.xnnpack_refused[:5000]
    if (results.recommendation or {}).get("technique") == v.technique:
        tags[RECOMMENDED_TAG] = "true"
    return tags


# ---- logging --------------------------------------------------------------------------------------

def _batch(client, run_id: str, params: dict | None = None, metrics: dict | None = None,
           tags: dict | None = None) -> None:
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in (metrics or {}).items()],
                     params=[Param(k, v) for k, v in (params or {}).items()],
                     tags=[RunTag(k, v) for k, v in (tags or {}).items()])


def log_study(results: Results, folder, uri: str | None = None, experiment: str | None = None) -> str:
    """Log a finished study in `folder` to MLflow; returns the parent run's id.

    The parent run holds the study's params, tags and files (results.json, the reports, recommended.tflite);
    a child run per variant holds its params, metrics, tags and `.tflite`. The recommended variant's child is
    tagged quantbench.recommended=true. `uri` as in resolve_uri; the experiment is `experiment`, else
    MLFLOW_EXPERIMENT_NAME, else "quantbench". A failure while logging marks the runs made so far FAILED
    and raises TrackingError; the study folder is only ever read.
    """
    _mlflow()
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    folder, uri = Path(folder), resolve_uri(uri)
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    # everything to log is built first: a bug here is quantbench's, never reported as MLflow's failure
    parent_log = (study_params(results), study_tags(results))
    children = [(v, variant_params(v), variant_metrics(v, results), variant_tags(v, results))
                for v in results.variants]
    files = [folder / f for f in STUDY_ARTIFACTS if (folder / f).is_file()]

    client = MlflowClient(tracking_uri=uri)
    try:
        found = client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage != "active":
            raise TrackingError(f"The MLflow experiment {name!r} at {uri} is deleted. Expected an active experiment. "
                                "Fix: restore it (mlflow experiments restore), or set MLFLOW_EXPERIMENT_NAME.")
        exp_id = found.experiment_id if found is not None else client.create_experiment(name, tags=EXPERIMENT_TAGS)
        parent = client.create_run(exp_id, run_name=folder.name).info.run_id
    except TrackingError:
        raise
    except Exception as exc:  # the store refused: nothing was logged yet
        raise TrackingError(f"MLflow at {uri} refused the study {folder}: {one_line(exc)}. Nothing was logged; the "
                            "study is complete in its folder. Fix: check the tracking URI and the store, then "
                            "log it again with quantbench.report.tracking.log_study.") from None
    open_runs = [parent]
    try:
        _batch(client, parent, params=parent_log[0], tags=parent_log[1])
        for f in files:
            client.log_artifact(parent, str(f))
        for v, params, metrics, tags in children:
            child = client.create_run(exp_id, run_name=v.technique, tags={MLFLOW_PARENT_RUN_ID: parent}).info.run_id
            open_runs.append(child)
            _batch(client, child, params, metrics, tags)
            if v.path and v.path.endswith(".tflite") and (folder / v.path).is_file():
                client.log_artifact(child, str(folder / v.path))
            client.set_terminated(child, "FINISHED")
            open_runs.pop()
        client.set_terminated(parent, "FINISHED")
    except Exception as exc:  # MLflow's failure (store, network, artifact storage): mark what was started
        for run_id in reversed(open_runs):
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # the store may be gone altogether; the error below says what happened
                pass
        raise TrackingError(f"Logging the study {folder} to MLflow at {uri} failed: {one_line(exc)}. The run "
                            f"{parent} is marked FAILED; the study is complete in {folder}. Fix: correct the "
                            "store, then log it again with quantbench.report.tracking.log_study.") from None
    return parent
