"""Notifications the service sends by itself, on platform events or on a schedule.

- `events`: automatic notifications from platform events (the events API)
- `periodic`: proactive learner notifications (PROACTIVE_LEARNER_NOTIFICATION), a due-work source
- `schedule`: when a periodic configuration next runs
- `recommendations`: learner activity summaries, mentors' recommendations and the AI provider
- `api`: the mentors and learner-activity endpoints the proactive sends read from
- `admin`: the admin of mentors, learner activity and received events

Their models (Mentor, LearnerActivity, NotificationEvent, ...) stay in `templates_app.models`.
"""
