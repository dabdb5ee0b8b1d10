"""gpu-check's results as Markdown tables: proofs, runners, the model alone, served rows."""

from __future__ import annotations

from triton_ner_loadtest.gpu_served import BUSY


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or isinstance(value, int):
        return "-" if value is None else str(value)
    return f"{value:.{digits}e}" if 0 < abs(value) < 0.01 else f"{value:,.{digits}f}"



def _limit_text(row: dict) -> str:
    """The row's limit with the busy shares of the text step's own work and the model step's executes."""
    busy = row.get("busy")
    if not busy:
        return "-"
    shares = ", ".join(f"{part} {share:.0%}" for part, share in busy.items() if share is not None)
    return f"{row['limit']} ({shares})"



def markdown(results: dict) -> str:
    """The results as Markdown tables: proofs, model alone, served."""
    env = results["environment"]
    where = f"{'dry run on CPU' if results['dry_run'] else env.get('gpu', 'CPU')} ({results['plan']['model']} model)"
    verdict = "every proof holds" if results["ok"] else "FAILED"
    title = (f"gpu-check, {where}, torch {env['torch']}, transformers {env['transformers']}: "
             f"{results['seconds']:.0f} s, {verdict}")
    lines = [title, "", "| proof | measured | bound | holds |", "|---|---|---|---|"]
    for p in results.get("proofs", []):
        measured = p["error"] or _number(p["measured"], 4)
        lines.append(f"| {p['name']} | {measured} | {'≥' if p['at_least'] else '≤'} {p['bound']:g} | "
                     f"{'yes' if p['ok'] else 'NO'} |")
    lines += ["", "| runner | load s (capture included) | GPU memory GiB |", "|---|---|---|"]
    for r in results.get("runners", []):
        lines.append(f"| {r['runner']} | {r.get('error') or _number(r['load_s'], 1)} | "
                     f"{_number(r.get('gpu_memory_gib'), 2)} |")
    lines += ["", "| model alone | batch | tokens | latency ms | sequences/s | tokens/s |", "|---|---|---|---|---|---|"]
    for r in results.get("model_alone", []):
        if "latency_ms" in r:
            lines.append(f"| {r['runner']} | {r['batch']} | {r['length']} | {r['latency_ms']:.2f} | "
                         f"{r['sequences_per_s']:,.0f} | {r['tokens_per_s']:,.0f} |")
        else:
            lines.append(f"| {r['runner']} | {r.get('batch', '-')} | {r.get('length', '-')} | {r['error']} | | |")
    served = results.get("served", {"status": "not run", "rows": []})
    if served["rows"]:
        step = f"{served['config_name']}.pbtxt: {served['model_step']}, {served['triton']}"
        memory = served.get("gpu_memory_gib")
        lines += ["", f"served ({step}); ready in {_number(served.get('ready_s'), 1)} s; instances "
                      f"{served.get('instances')}" + ("" if memory is None else f"; GPU memory {memory:.2f} GiB"),
                  "compute from Triton's statistics, CPU from /proc, per text served; limit: the part busy more "
                  f"than {BUSY:.0%} of its time (clients: none is)", "",
                  "| model step | clients | texts/request | texts/s | p50 ms | p99 ms | ner_text ms/text | ner_text "
                  "ms/execute | requests per ner_text execute | text step's own ms/text | ner_model ms/text | "
                  "ner_model ms/execute | ner_model average batch | server CPU ms/text | server CPU ms/text outside "
                  "ner_model | ner_model CPU ms/text | load generator CPU ms/text (busy) | model alone | × model alone "
                  "| limit |", "|" + "---|" * 20]
        rows = [("served", r) for r in served["rows"]] + [("null", r) for r in served.get("null_model_rows", [])]
        for model_step, r in rows:
            if "texts_per_s" not in r:
                lines.append(f"| {model_step} | {r['concurrency']} | {r['texts_per_request']} | {r['error']} |"
                             + " |" * 16)
                continue
            text, model = (r.get("steps", {}).get(name, {}) for name in ("ner_text", "ner_model"))
            alone = (f"{r['model_alone']}: {r['model_alone_sequences_per_s']:,.0f}/s",
                     f"{r['ratio_to_model_alone']:.2f}") if "model_alone" in r else ("-", "-")
            generator = (f"{_number(r.get('generator_cpu_ms_per_text'), 3)} ({r['generator_busy']:.0%} of "
                         f"{r['generator_processes']})") if "generator_busy" in r else "-"
            lines.append(" | ".join([
                f"| {model_step}", str(r["concurrency"]), str(r["texts_per_request"]), f"{r['texts_per_s']:,.1f}",
                _number(r["p50_ms"], 1), _number(r["p99_ms"], 1), _number(text.get("compute_ms_per_text"), 3),
                _number(text.get("compute_ms_per_execute"), 2), _number(text.get("average_batch"), 1),
                _number(r.get("text_step_own_ms_per_text"), 3), _number(model.get("compute_ms_per_text"), 3),
                _number(model.get("compute_ms_per_execute"), 2), _number(r["model_average_batch"], 1),
                _number(r.get("server_cpu_ms_per_text"), 3), _number(r.get("outside_model_cpu_ms_per_text"), 3),
                _number(r.get("model_cpu_ms_per_text"), 3), generator, alone[0], alone[1],
                f"{_limit_text(r)} |"]))
    else:
        lines += ["", f"served: {served['status']}"]
    if results["failures"]:
        lines += ["", "failures:", *(f"- {f}" for f in results["failures"])]
    return "\n".join(lines)
