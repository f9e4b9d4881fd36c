"""The report, rendered from hand-made Results: no TensorFlow, no timing, fast."""
import base64
import dataclasses
import json
import re
from html.parser import HTMLParser

import pytest
from rich.console import Console

from quantbench.cli import main
from quantbench.record.results import Results, Variant
from quantbench.report import report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def lat(median, spread=0.05):
    q = {"0": median * 0.5, "1": median * 0.8, "5": median * 0.9, "10": median * 0.95, "25": median * 0.98,
         "50": median, "75": median * 1.02, "90": median * 1.1, "95": median * 1.2, "99": median * 1.5,
         "100": median * 3}
    return {"median": median, "ci95": [median * (1 - spread / 10), median * (1 + spread / 10)],
            "p90": q["90"], "p99": q["99"], "n": 450, "quantiles": q}


def row(name, kb, acc, p, ms, sps, sqnr=40.0, **kw):
    ci = [acc - 0.015, min(1.0, acc + 0.012)]
    scored = {"output": "probs", "task": "classes", "labels": True, "metric": "accuracy", "value": acc, "ci": ci,
              "reference": 0.9733, "loss": round((0.9733 - acc) * 100, 6), "p": p, "n": 450}
    return Variant(name, kw.pop("engine", "converter"), "ok", path=f"{name}.tflite", bytes=int(kb * 1024),
                   input_dtype=kw.pop("io", "float32"), output_dtype=kw.pop("out", "float32"), accuracy=acc,
                   accuracy_ci=ci, accuracy_delta_pp=round((acc - 0.9733) * 100, 6),
                   p_vs_float32=p, agreement=kw.pop("agree", 0.998), sqnr_db=sqnr, kl=0.004, latency_ms=lat(ms),
                   throughput={"batch": 32, "samples_per_s": sps, "ci95": [sps * 0.98, sps * 1.02], "n": 30},
                   convert_s=1.0, outputs=[scored])


@pytest.fixture(scope="module")
def results():
    return Results(
        quantbench_version="0.1.0", model={"name": "reference_cnn", "source": "quantbench demo"},
        data={"name": "sklearn digits", "eval_samples": 450, "labels": True,
              "calibration": {"samples": 200, "from": "train split", "seed": 0}},
        machine={"cpu": "AMD EPYC", "arch": "x86_64", "simd": ["avx", "avx2", "fma"], "int8_dot": False,
                 "cores": 2, "threads": 1, "os": "Linux", "python": "3.11", "litert": "2.3.0",
                 "tensorflow": "2.21.0", "keras": "3.15.1"},
        settings={"epochs": 10, "seed": 0, "threads": 1, "batch": 32},
        variants=[
            row("keras", 425, 0.9733, 1.0, 0.9, 11000, sqnr=None, engine="keras", agree=1.0),
            row("float32", 132.7, 0.9733, 1.0, 0.042, 61000, sqnr=134.2, agree=1.0),
            row("dynamic", 40.9, 0.9733, 1.0, 0.036, 72000),
            row("int8-only", 41.6, 0.9433, 0.002, 0.043, 52000, io="int8", out="int8", agree=0.96),
            row("float16", 70.3, 0.9733, 1.0, 0.041, 59000, sqnr=None, agree=1.0),
            Variant("int16x8", "converter", "failed", error="int16x8: <no kernel> for op | FULLY_CONNECTED"),
        ])


@pytest.fixture(scope="module")
def written(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report.write(results, out)
    return out


def test_terminal_table_holds_what_a_user_decides_with(results):
    headers, rows = report.table(results)
    assert headers == ["technique", "accuracy %", "", "KB", "size", "ms/sample", "I/O"]
    by = {r[0]: r for r in rows}
    assert by["keras"] == ["keras", "97.33 (95.8–98.5)", "", "425.0", "3.20×", "0.900 ±0.5%", "float32"]
    assert by["float32"] == ["float32", "97.33 (95.8–98.5)", "≈", "132.7", "1.00×", "0.0420 ±0.5%", "float32"]
    assert by["dynamic"] == ["dynamic", "97.33 (95.8–98.5)", "≈", "40.9", "0.31×", "0.0360 ±0.5%", "float32"]
    assert by["int8-only"] == ["int8-only", "94.33 (92.8–95.5)", "▼", "41.6", "0.31×", "0.0430 ±0.5%", "int8"]
    assert by["float16"][1:3] == ["97.33 (95.8–98.5)", "≈"]
    assert by["int16x8"] == ["int16x8", "failed", "", "", "", "", ""]
    assert report.table(results, intervals=False, spread=False)[1][3] == [
        "int8-only", "94.33", "▼", "41.6", "0.31×", "0.0430", "int8"]
    assert report.failures(results) == ["int16x8 failed: int16x8: <no kernel> for op | FULLY_CONNECTED"]
    skipped = dataclasses.replace(results, variants=results.variants + [
        Variant(n, "converter", "skipped", error="cannot serve --target int-only: integer-only")
        for n in ("a", "b", "c")])
    assert report.failures(skipped)[1:] == ["a, b and c skipped: cannot serve --target int-only: integer-only"]


def test_wide_table_is_the_reports(results):
    """--wide: every column of the report, the change against float32 in words, the p-values, the intervals."""
    headers, rows = report.table(results, full=True)
    by = {r[0]: r for r in rows}
    col = headers.index("vs float32")
    assert by["dynamic"][col] == "no significant change"
    assert by["int8-only"][col] == "-3.00 pp (p = 0.002)"
    assert by["float32"][col] == "baseline"
    assert by["float16"][headers.index("SQNR dB")] == "∞" and by["keras"][headers.index("SQNR dB")] == "ref."
    assert by["int8-only"][headers.index("accuracy % (95% CI)")] == "94.33 (92.8–95.5)"
    assert by["float32"][headers.index("ms/sample (95% CI)")] == "0.0420 (0.0418–0.0422)"
    assert by["int8-only"][headers.index("I/O")] == "int8"
    assert by["int16x8"][:3] == ["int16x8", "converter", "failed"] and set(by["int16x8"][3:]) == {""}
    console = Console(width=100, record=True)
    report.print_table(results, console, wide=True)
    lines = console.export_text().splitlines()
    for name, cells in by.items():  # one line per row however wide, every cell whole
        line = next(ln for ln in lines if ln.startswith(name + " "))
        assert all(c in line for c in cells), (name, line)


def _rendered(results, width: int) -> list[str]:
    console = Console(width=width, record=True)
    report.print_table(results, console)
    return console.export_text().splitlines()


def _check_whole(results, lines: list[str], width: int) -> tuple:
    """Every row on one line that starts with its technique's whole name and holds every cell of the form chosen
    for `width`, whole; no line past `width`."""
    assert max(map(len, lines)) <= width
    form = report.compact_form(results, width)
    _, rows = report.table(results, intervals=form[0], spread=form[1])
    body = lines[:lines.index("")]  # the table, then a blank line and the notes
    for row in rows:
        found = [ln for ln in body if ln.split()[:1] == [row[0]]]
        assert len(found) == 1, (row[0], lines)
        rest = found[0][len(row[0]):]
        for cell in row[1:]:
            assert cell in rest, (cell, found[0])
            rest = rest[rest.index(cell) + len(cell):]  # in order, each cell once
    return form


@pytest.mark.parametrize("width", [80, 100, 120])
def test_terminal_table_fits_80_to_120_columns_with_every_name_and_number_whole(results, width):
    lines = _rendered(results, width)
    assert _check_whole(results, lines, width) == (True, True, 2)  # the fullest form fits 80 columns
    text = " ".join(" ".join(lines).split())
    assert "≈ no significant change against keras (the float model); ▼ / ▲ significantly worse / better, " \
           "p < 0.05 (exact McNemar test, on the same 450 samples)." in text
    assert "(a–b): the 95 % interval (Wilson)." in text
    assert "ms/sample: the median at batch 1 ± the wider side of its 95 % interval, 1 thread on AMD EPYC." in text
    assert "int16x8 failed: int16x8: <no kernel> for op | FULLY_CONNECTED" in text
    assert "Left out" not in text


def test_a_variant_timed_without_xnnpack_is_said_under_every_table(results, tmp_path):
    import dataclasses

    assert report.kernel_notes(results) == []
    reason = "XNNPACK delegate failed: unsupported zero-point value (200) in tensor #3"
    changed = dataclasses.replace(results, variants=[dataclasses.replace(v, xnnpack_refused=reason)
                                                     if v.technique == "int8-only" else v for v in results.variants])
    note = (f"int8-only: timed on LiteRT's built-in kernels, because XNNPACK refused it ({reason}); a deployment "
            "that uses XNNPACK would not run it this way, so its speed here says little about one.")
    assert report.row_notes(changed) == [*report.failures(changed), note]
    report.write(changed, tmp_path)
    assert f"- {note}" in (tmp_path / "report.md").read_text()
    assert "int8-only: timed on LiteRT&#x27;s built-in kernels" in (tmp_path / "report.html").read_text()
    assert "int8-only: timed on LiteRT's built-in kernels" in " ".join(" ".join(_rendered(changed, 100)).split())
    assert Results.from_json(changed.to_json()) == changed


def test_a_timing_of_too_few_rounds_shows_n_and_claims_nothing(results):
    import dataclasses

    one = dict(results.variant("keras").latency_ms, ci95=None, n=1)
    changed = dataclasses.replace(results, variants=[dataclasses.replace(v, latency_ms=one)
                                                     if v.technique == "keras" else v for v in results.variants])
    for full, header in ((False, "ms/sample"), (True, "ms/sample (95% CI)")):
        headers, rows = report.table(changed, full=full)
        assert next(r for r in rows if r[0] == "keras")[headers.index(header)] == "0.900 (n = 1)"
    note = report._table_note(changed)
    assert note.endswith(" The latency of keras: 'n = k' instead of an interval, because only k timing rounds fit "
                         "the time budget, too few for a 95 % interval (6 at least; a longer --time-budget gives "
                         "more).")
    assert "'n = k'" not in report._table_note(results)
    assert "(n = k) for keras: only k timing rounds fit the time budget" in " ".join(report.terminal_notes(changed))
    assert "(n = k)" not in " ".join(report.terminal_notes(results))
    # the throughput of every variant without an interval: said once, for the figure that lacks it
    few = dataclasses.replace(results, variants=[dataclasses.replace(v, throughput={**v.throughput, "ci95": None})
                                                 if v.ok else v for v in results.variants])
    assert report._few_rounds(few).startswith(" The throughput of every variant: 'n = k' instead of an interval")
    both = dataclasses.replace(few, variants=[dataclasses.replace(v, latency_ms=one) if v.technique == "keras" else v
                                              for v in few.variants])
    assert report._few_rounds(both).startswith(" The latency of keras and the throughput of every variant: 'n = k'")
    assert not report._faster(results.variant("float32").latency_ms, one)  # no interval, no claim
    assert report._faster(results.variant("float32").latency_ms, results.variant("keras").latency_ms)
    assert Results.from_json(changed.to_json()) == changed


def test_report_table_adds_p_values_and_intervals(results):
    headers, rows = report.table(results, full=True)
    assert {"p (McNemar)", "KL", "p90 / p99 ms", "samples/s @32 (95% CI)", "convert s"} <= set(headers)
    assert all("\n" not in h for h in headers)
    by = {r[0]: r for r in rows}
    assert by["int8-only"][headers.index("p (McNemar)")] == "0.002"
    assert by["dynamic"][headers.index("samples/s @32 (95% CI)")] == "72k (71k–73k)"


def test_reading_tells_size_speed_and_accuracy(results):
    text = " ".join(report.reading(results))
    assert "Smallest: dynamic, 40.9 KB (0.31× float32's 132.7 KB); int8-only within 5 % of it." in text
    assert "Faster: dynamic 0.0360 ms (1.17× faster)" in text
    assert "int8 is not faster than float here: this CPU (AVX, AVX2, FMA) has no int8 dot-product" in text
    assert "Lost accuracy significantly against float32: int8-only -3.00 pp (p = 0.002)." in text
    assert "Did not convert: int16x8 (int16x8: <no kernel> for op | FULLY_CONNECTED)." in text
    assert "Least faithful to the Keras model: int8-only, top-1 agreement 96.00 %" in text


def test_reading_without_a_difference(results):
    same = Results(**{**results.__dict__, "variants": [
        v if v.technique != "int8-only" else Variant(**{**v.__dict__, "p_vs_float32": 0.4})
        for v in results.variants]})
    text = " ".join(report.reading(same))
    assert "No variant's accuracy differs significantly from float32's" in text and "Lost accuracy" not in text


def test_write_makes_every_file(written):
    assert sorted(p.name for p in written.iterdir()) == sorted(
        ["report.md", "report.html", "accuracy_vs_size.png", "accuracy_vs_latency.png", "latency.png"])
    for png in written.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert oct(written.joinpath("report.html").stat().st_mode & 0o044) == oct(0o044)  # others can read it


class Checker(HTMLParser):
    """Collects tags, checks nesting and closing, and every URL the page would fetch."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.urls, self.errors, self.doctype = [], [], [], [], None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "action", "poster", "data") and v]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"end tag for void <{tag}>")
        elif not self.stack or self.stack.pop() != tag:
            self.errors.append(f"</{tag}> closes nothing open")


def test_html_is_self_contained_and_well_formed(written):
    page = (written / "report.html").read_text()
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.doctype == "DOCTYPE html"
    assert checker.errors == [] and checker.stack == []
    names = [t for t, _ in checker.tags]
    assert names[:3] == ["html", "head", "meta"] and names.count("title") == 1 and names.count("h1") == 1
    assert dict(checker.tags[0][1]) == {"lang": "en"}
    assert "script" not in names and "link" not in names and "iframe" not in names
    assert checker.urls and all(u.startswith("data:image/png;base64,") for u in checker.urls)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|url\(|@import", page, re.I)
    imgs = [a for t, a in checker.tags if t == "img"]
    assert len(imgs) == 3 and all(a.get("alt") for a in imgs)
    for a in imgs:
        assert base64.b64decode(a["src"].split(",", 1)[1])[:4] == b"\x89PNG"


def test_html_escapes_what_it_shows(written):
    page = (written / "report.html").read_text()
    assert "&lt;no kernel&gt; for op | FULLY_CONNECTED" in page and "<no kernel>" not in page
    assert '<td class="ns">no significant change</td>' in page
    assert '<td class="sig">-3.00 pp (p = 0.002)</td>' in page


def test_markdown_links_its_plots_and_escapes_pipes(written):
    md = (written / "report.md").read_text()
    for name in ("accuracy_vs_size.png", "accuracy_vs_latency.png", "latency.png"):
        assert f"]({name})" in md
    assert "<no kernel> for op \\| FULLY_CONNECTED" in md
    assert "| AMD EPYC (x86_64) |" in md and "| int8 dot product (VNNI / dotprod) | no |" in md
    header = next(ln for ln in md.splitlines() if ln.startswith("| technique"))
    assert "p (McNemar)" in header and "accuracy % (95% CI)" in header


def test_rendering_is_deterministic(results, written, tmp_path):
    report.write(Results.from_json(results.to_json()), tmp_path)
    for name in ("report.md", "report.html", "latency.png"):
        assert (tmp_path / name).read_bytes() == (written / name).read_bytes()


def test_old_results_without_intervals_still_render(tmp_path):
    old = Results("0.1.0", {"name": "m"}, {"eval_samples": 4}, {"cpu": "x"}, {}, [
        Variant("keras", "keras", "ok", path="model.keras", bytes=1000, input_dtype="float32",
                output_dtype="float32", accuracy=0.5, accuracy_delta_pp=0.0, agreement=1.0,
                latency_ms={"median": 1.0, "p90": 1.1, "p99": 1.2, "n": 4}),
        Variant("float32", "converter", "ok", path="f.tflite", bytes=500, input_dtype="float32",
                output_dtype="float32", accuracy=0.5, accuracy_delta_pp=0.0, agreement=1.0,
                latency_ms={"median": 0.1, "p90": 0.2, "p99": 0.3, "n": 4}, convert_s=1.0)])
    report.write(old, tmp_path)
    assert "0.100" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "latency.png").exists()  # no quantiles stored: no distribution to draw


def test_write_refuses_existing_report_files(results, written):
    before = (written / "report.md").read_bytes()
    with pytest.raises(report.InputError, match=r"Report files already exist in .*: report\.md, report\.html, "
                                                r"accuracy_vs_size\.png.* Fix: pass --force"):
        report.write(results, written)
    assert (written / "report.md").read_bytes() == before


# ---- the command --------------------------------------------------------------------------------

@pytest.fixture
def results_file(results, tmp_path):
    path = tmp_path / "study" / "results.json"
    path.parent.mkdir()
    results.save(path)
    return path


def test_report_command_writes_beside_the_results(results_file, capsys):
    assert main(["report", str(results_file)]) == 0
    assert (results_file.parent / "report.html").is_file()
    assert "Wrote" in capsys.readouterr().err


def test_report_command_refuses_then_forces(results_file, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert main(["report", str(results_file), "--out", str(out)]) == 0
    assert main(["report", str(results_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("quantbench: error: Report files already exist in ") and "--force" in err[-1]
    assert main(["report", str(results_file), "--out", str(out), "--force"]) == 0


@pytest.mark.parametrize("content,message", [
    (None, r"quantbench: error: No results file at .*results\.json\. Expected a results\.json written by "
           r"quantbench\. Fix: "),
    ("not json", r"quantbench: error: .*results\.json is not JSON \(Expecting value: line 1 column 1 \(char 0\)\)\. "
                 r"Expected .* Fix: "),
    (json.dumps({"variants": []}), r"quantbench: error: .*results\.json is JSON but not quantbench results: it lacks "
                                   r"'quantbench_version', 'model', 'data', 'machine', 'settings'\. Expected .* Fix: "),
])
def test_report_command_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.match(message, err)
    assert not (tmp_path / "out").exists()


def test_sections_render_the_recommendation_and_studies(results):
    import dataclasses

    r = dataclasses.replace(results, recommendation={
        "summary": "Ship dynamic.", "runners_up": [{"technique": "float16", "why": "bigger"}],
        "excluded": [{"technique": "int8-only", "why": "past the budget"}],
        "decision_tree": [{"target": "cpu", "question": "CPU?", "techniques": "all", "why": "measure"}]},
        studies={"layer_errors": {"techniques": ["int8-only"], "rows": [
            {"name": "dense", "op": "FULLY_CONNECTED", "rmse_over_scale": None, "mean_squared_error": 0.0,
             "num_elements": 4, "scale": 0.0}]}})
    found = {title: rows for title, _, _, rows in report.sections(r)}
    assert found["Recommendation"] == [["float16", "runner-up", "bigger"], ["int8-only", "excluded", "past the budget"]]
    assert found["Per-layer int8 error"][0][2] == "—"  # no finite error for a zero-scale tensor
    assert "## Decision tree" in report.markdown(r, []) and "<h2>Decision tree</h2>" in report.html_page(r, [])


# ---- the report reads like the table: the recommendation first and marked everywhere -----------------------------

@pytest.fixture(scope="module")
def chosen(results):
    """The fixture's study with a smallest variant that lost 11.33 pp, and the recommendation made from it."""
    import dataclasses

    from quantbench.study import recommend

    lost = row("weight-only-int4", 23.8, 0.86, 0.001, 0.034, 34000, engine="litert-quantizer", agree=0.88)
    r = dataclasses.replace(results, variants=[*results.variants, lost])
    rec = recommend.choose(r, 1.0, "cpu", "size")
    return dataclasses.replace(r, recommendation={**rec.to_dict(), "decision_tree": recommend.tree_rows()})


def test_reading_opens_with_the_recommendation_not_the_smallest(chosen):
    lines = report.reading(chosen)
    assert lines[0] == ("Recommended: dynamic, 40.9 KB (0.31× float32's 132.7 KB); accuracy +0.00 pp against the "
                        "float model. It is the smallest of the variants within the budget (accuracy drop ≤ 1 pp) "
                        "for --target cpu.")
    assert lines[1] == ("Smallest: weight-only-int4, 23.8 KB (0.18× float32's 132.7 KB). Not recommended: accuracy "
                        "-11.33 pp is past the budget (accuracy drop ≤ 1 pp).")


def test_reading_names_the_smallest_as_the_recommended_one_when_it_is(chosen):
    import dataclasses

    from quantbench.study import recommend

    r = dataclasses.replace(chosen, variants=[v for v in chosen.variants if v.technique != "weight-only-int4"])
    r = dataclasses.replace(r, recommendation=recommend.choose(r, 1.0, "cpu", "size").to_dict())
    assert report.reading(r)[1] == ("Smallest: dynamic (the recommended variant), 40.9 KB (0.31× float32's "
                                    "132.7 KB); int8-only within 5 % of it.")


def test_reading_opens_with_why_nothing_is_recommended(chosen):
    import dataclasses

    from quantbench.study import recommend

    none = recommend.choose(chosen, 1.0, "int-only", "size").to_dict()  # int8-only lost 3 pp: nothing left
    assert none["technique"] is None
    r = dataclasses.replace(chosen, recommendation=none)
    assert report.reading(r)[0] == none["summary"]
    assert report.reading(r)[0].startswith("No variant meets the budget (accuracy drop ≤ 1 pp) for --target int-only.")
    assert report.reading(dataclasses.replace(chosen, recommendation=None))[0].startswith("Smallest: ")


def test_html_marks_the_recommended_row_and_keeps_the_technique_column_in_view(chosen, tmp_path):
    report.write(chosen, tmp_path)
    page = (tmp_path / "report.html").read_text()
    rec_rows = re.findall(r'<tr class="rec">(.*?)</tr>', page)
    assert len(rec_rows) == 1 and rec_rows[0].startswith('<td>dynamic<span class="badge">recommended</span></td>')
    assert '<li class="rec">Recommended: dynamic, 40.9 KB' in page
    assert ".scroll th:first-child,.scroll td:first-child{position:sticky;left:0;" in page
    # every table scrolls in its own box, but the machine block (two columns, <table class="kv">)
    tables = len(report.sections(chosen)) + 1  # the variants, and each section's table (each has rows here)
    assert page.count('<div class="scroll">') == page.count("<table>") == tables == 4
    assert page.count('<table class="kv">') == 1
    # an interval sits under its figure, so the table fits a 1,400-pixel window (see BENCHMARKS.md, issue 24)
    assert '<td class="n">94.33<span class="ci">92.8–95.5</span></td>' in page
    md = (tmp_path / "report.md").read_text()
    assert "| **dynamic** (recommended) | converter |" in md
    assert md.count("| **") == 1  # one row marked; the plots' alt texts name it too


def test_wording_subtitle_machine_block_and_signs(results, chosen, tmp_path):
    import dataclasses

    report.write(chosen, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert '<p class="sub">quantbench demo · target cpu · quantbench 0.1.0</p>' in page
    bare = dataclasses.replace(results, model={"name": "m"})  # no source, no path, no recommendation
    assert report._subtitle(bare) == "quantbench 0.1.0"
    with_settings = dataclasses.replace(results, settings={**results.settings, "throughput_batch": 32, "tasks": {},
                                                           "outputs": None})
    keys = [k for k, _ in report.machine_rows(with_settings)]
    assert keys.count("throughput batch") == 1 and "throughput_batch" not in keys
    assert "tasks" not in keys and "outputs" not in keys and "epochs" in keys
    untested = dataclasses.replace(results.variant("dynamic"), accuracy_delta_pp=-0.0001, p_vs_float32=None)
    assert report.change(untested) == "+0.00 pp (untested)"
    significant = dataclasses.replace(results.variant("dynamic"), accuracy_delta_pp=-0.001, p_vs_float32=0.01)
    assert report.change(significant) == "+0.00 pp (p = 0.01)"
    assert report._change({"metric": "accuracy", "loss": 0.4, "loss_ci": [-0.43, 1.31]}) == "-0.40 pp (-1.31 to +0.43)"


def test_every_plot_marks_the_recommended_variant(chosen):
    from quantbench.report import plots

    figs = {f.name: f for f in plots.figures(chosen)}
    for name in (plots.NAMES["size"], plots.NAMES["latency"]):
        assert "dynamic (recommended) (" in figs[name].alt
        assert figs[name].caption.endswith(" The ringed point is the recommended variant, dynamic.")
    assert "dynamic (recommended) median" in figs[plots.NAMES["distribution"]].alt
    assert figs[plots.NAMES["distribution"]].caption.endswith(
        "The box in the recommended colour, its name in bold, is the recommended variant, dynamic.")


# ---- a model of two outputs, every technique: the compact table at 80, 100 and 120 columns (issue 24) -------

def two_outputs(name, kb, mae, acc, p_mae, p_acc, ms, io="float32", out="float32,float32"):
    scored = [{"output": "amplitude", "task": "regression", "labels": True, "metric": "mae", "value": mae,
               "ci": [mae * 0.93, mae * 1.08], "reference": 0.1532, "loss": round((mae / 0.1532 - 1) * 100, 6),
               "p": p_mae, "n": 450},
              {"output": "class", "task": "classes", "labels": True, "metric": "accuracy", "value": acc,
               "ci": [acc - 0.04, min(1.0, acc + 0.035)], "reference": 0.7933, "loss": round((0.7933 - acc) * 100, 6),
               "p": p_acc, "n": 450}]
    return Variant(name, "keras" if name == "keras" else "converter", "ok", bytes=int(kb * 1024), input_dtype=io,
                   output_dtype=out, accuracy=acc, accuracy_ci=scored[1]["ci"], p_vs_float32=p_acc,
                   accuracy_delta_pp=None if p_acc is None else round((acc - 0.7933) * 100, 6),
                   latency_ms=lat(ms), outputs=scored)


@pytest.fixture(scope="module")
def heads(results):
    from quantbench.engines.techniques import DEFAULT_TECHNIQUES

    rows = [two_outputs("keras", 60.7, 0.1532, 0.7933, None, None, 0.295)]
    for i, name in enumerate(DEFAULT_TECHNIQUES):
        io = ("int8", "int8,int8") if "int8-only" in name or name == "lq-int8" else ("float32", "float32,float32")
        rows.append(two_outputs(name, 12.9 - i * 0.4, 0.1532 + i * 0.004, 0.7933 - i * 0.002, 0.5 if i < 6 else 0.01,
                                0.6 if i < 10 else 0.002, 0.00374 + i * 0.0003, *io))
    rows[5] = Variant("uint8-only", "converter", "failed", error="no uint8 kernel")
    return Results("0.1.0", {"name": "two_heads"}, {"name": "test.npz", "eval_samples": 450, "labels": True},
                   results.machine, {}, rows)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_a_model_of_two_outputs_reads_at_80_to_120_columns(heads, width):
    lines = _rendered(heads, width)
    form = _check_whole(heads, lines, width)
    headers, _ = report.table(heads, intervals=form[0], spread=form[1])
    assert headers[:5] == ["technique", "amplitude\nMAE", "", "class\nacc %", ""]
    text = " ".join(" ".join(lines).split())
    assert "(Wilcoxon signed-rank test for MAE, exact McNemar test for accuracy, on the same 450 samples)" in text
    if form[0]:
        assert "(a–b): the 95 % interval (bootstrap for MAE, Wilson for accuracy)." in text
    if not form[0]:
        assert f"Left out to fit {width} columns: the intervals and the latency spread." in text
    if width >= 100:
        assert form[0], "the intervals fit 100 columns"


def test_two_outputs_marks_and_io(heads):
    _, rows = report.table(heads)
    by = {r[0]: r for r in rows}
    assert by["keras"][1:5] == ["0.1532 (0.142–0.165)", "", "79.33 (75.3–82.8)", ""]
    assert by["dynamic"][2:5:2] == ["≈", "≈"] and by["int16x8"][2] == "▼"
    assert by["lq-int8"][2:5:2] == ["▼", "▼"]
    assert by["int8-only"][-1] == "int8" and by["float32"][-1] == "float32"  # several outputs alike: named once
    assert report.io_text(Variant("x", "c", "ok", input_dtype="float32", output_dtype="int8,float32")) == \
        "float32→int8/float32"


@pytest.mark.parametrize("width", [80, 100, 120])
def test_columns_env_sets_the_width_of_quantbench_report(heads, tmp_path, width):
    import os
    import subprocess
    import sys

    path = tmp_path / "results.json"
    heads.save(path)
    proc = subprocess.run([sys.executable, "-m", "quantbench", "report", str(path)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": str(width)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    _check_whole(heads, proc.stdout.splitlines(), width)
    assert proc.stderr.strip().splitlines()[-1] == (f"Wrote {tmp_path}/ (report.md, report.html, "
                                                    "accuracy_vs_size.png, accuracy_vs_latency.png, latency.png)")


def test_brackets_in_names_and_reasons_are_shown_as_they_are(results):
    """Rich markup would eat '[ray]' or '[x]': the table and its notes print text, not markup."""
    changed = dataclasses.replace(results, model={"name": "net[v2]"}, variants=[
        *results.variants,
        Variant("lq-int8", "litert-quantizer", "failed", error="needs pip install 'quantbench[ray]'")])
    text = " ".join(" ".join(_rendered(changed, 100)).split())
    assert "quantbench — net[v2] on sklearn digits" in text
    assert "lq-int8 failed: needs pip install 'quantbench[ray]'" in text
