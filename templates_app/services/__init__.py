"""Writes of the templates app, one module per concern.

- `templates`: syncing the shipped defaults, copy-on-write, toggle, reset, test-send, custom types
- `configs`: the configuration blocks of the system-managed types
- `preferences`: per-user opt-outs and the pipeline's recipient filter

The automation features (events, proactive/periodic sends, mentors, learner
activity, the AI recommendation provider) live in `templates_app.automation`.
"""
