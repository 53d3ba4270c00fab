"""Writes of the templates app, one module per concern.

- `templates`: syncing the shipped defaults, copy-on-write, toggle, reset, test-send, custom types
- `configs`: the configuration blocks of the system-managed types
- `events`: automatic notifications from platform events
- `preferences`: per-user opt-outs and the pipeline's recipient filter
- `periodic`: proactive learner notifications on a schedule
"""
