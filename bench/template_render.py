"""What the sandbox costs: rendering a notification through the locked-down engine vs plain Django.

    python -m bench.template_render [--renders 2000]

Renders every field an email + in-app + push delivery needs (title, body,
short message, subject, sanitised HTML) of USER_NOTIF_LEARNER_PROGRESS — the
shipped template with loops and tags — for one recipient, many times. The
baseline is the same templates through an ordinary `django.template.Engine`
(same tag library, no per-node budget checks, no plain-value copy of the
context), followed by the same sanitiser. The two alternate in rounds so both
see the same machine conditions. Writes bench/results/template_render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as sysplatform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _summary(samples: list[float]) -> dict:
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": round(_percentile(ms, 50), 4),
        "p99_ms": round(_percentile(ms, 99), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--renders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.template import Context, Engine

    from notifications.models import Platform
    from notifications.sanitize import sanitize_html
    from templates_app import defaults
    from templates_app.messages import fields_for, recipient_context, render_fields
    from templates_app.rendering import TAG_LIBRARY

    td = defaults.BY_TYPE["USER_NOTIF_LEARNER_PROGRESS"]
    platform = Platform(key="bench", name="Bench Learning", site_url="https://bench.example.com")
    context = {**recipient_context(platform), **td.sample_context, "username": "jane"}
    content = {f: getattr(td, f) for f in defaults.TEMPLATE_FIELDS}
    fields = fields_for(["email", "in_app", "push_notification"])

    plain_engine = Engine(builtins=[TAG_LIBRARY])
    compiled = {f: plain_engine.from_string(content[f]) for f in fields}

    def sandbox() -> None:
        render_fields(content, context, fields=fields)

    def baseline() -> None:
        out = {}
        for f in fields:
            out[f] = compiled[f].render(Context(context, autoescape=defaults.TEMPLATE_FIELDS[f]))
        sanitize_html(out["email_html_template"])

    # Same output both ways (the sanitiser normalises the HTML either way).
    assert render_fields(content, context, fields=fields)["message_body"] == compiled["message_body"].render(
        Context(context, autoescape=False)
    )
    samples: dict[str, list[float]] = {"sandbox": [], "baseline_plain_engine": []}
    runners = {"sandbox": sandbox, "baseline_plain_engine": baseline}
    for name in runners:
        for _ in range(50):  # warm caches
            runners[name]()
    per_round = max(args.renders // args.rounds, 1)
    for _ in range(args.rounds):
        for name, run in runners.items():
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
    result = {name: _summary(values) for name, values in samples.items()}
    result["sandbox_over_baseline_p50"] = round(
        result["sandbox"]["p50_ms"] / result["baseline_plain_engine"]["p50_ms"], 3
    )
    result["recipients_per_second_sandbox"] = round(1000 / result["sandbox"]["mean_ms"])
    payload = {
        "benchmark": "template_render",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": sysplatform.python_version()},
        "type": td.type,
        "fields": list(fields),
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "template_render.json"
    path.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
