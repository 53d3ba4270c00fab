"""Run one template preview in a fresh process and report its peak memory (used by test_hostile_templates).

A fresh interpreter keeps the measurement free of whatever the test process
allocated before. Prints one JSON object: the outcome, the peak RSS before and
after the preview (KiB, `ru_maxrss`), and the seconds it took. Touches no
database: the platform and template live in memory only.

    python -m templates_app.tests.render_memory_probe <template file>
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def main(path: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from notifications.models import Platform
    from templates_app.messages import FieldRenderError
    from templates_app.models import NotificationTemplate
    from templates_app.selectors import EffectiveTemplate
    from templates_app.services.templates import template_preview

    with open(path, encoding="utf-8") as f:
        source = f.read()
    platform = Platform(key="probe", name="Probe", site_url="https://learn.example.com")

    def preview(body: str) -> dict:
        template = NotificationTemplate(platform=platform, type="PROBE_TYPE", message_title="t", message_body=body)
        effective = EffectiveTemplate(template=template, is_enabled=True, default=None)
        return template_preview(platform=platform, effective=effective, context={}, channels=["in_app"])

    preview("warm up {{ site_name }}|{{ s|make_list|join:',' }}")  # imports and caches belong to the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        preview(source)
        outcome, message = "rendered", ""
    except FieldRenderError as exc:
        outcome, message = "refused", str(exc)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {"outcome": outcome, "message": message, "before_kib": before, "after_kib": after, "seconds": seconds}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
