"""Where the `ai_recommendation` of PROACTIVE_LEARNER_NOTIFICATION comes from.

Providers are named in settings like channel backends:

    NOTIFY_AI_RECOMMENDATION = {"BACKEND": "templates_app.automation.recommendations.OpenAIChatProvider",
                                "OPTIONS": {"URL": ..., "API_KEY": ..., "MODEL": ...}}

The default, `ActivitySummaryProvider`, needs nothing: it writes a short,
deterministic summary of the learner's recorded activity. `OpenAIChatProvider`
asks any OpenAI-compatible chat-completions endpoint, with the mentor's prompt
as the system message; when it fails, the summary is used instead, so a
learner never gets an empty recommendation.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils import timezone
from django.utils.module_loading import import_string

from templates_app.models import ActivityKind, LearnerActivity

logger = logging.getLogger(__name__)


class RecommendationError(Exception):
    pass


@dataclass
class CourseActivity:
    name: str
    minutes: float = 0.0
    progress: float | None = None
    videos: int = 0


@dataclass
class ActivitySummary:
    period_days: int
    courses: list[CourseActivity] = field(default_factory=list)
    minutes: float = 0.0
    videos: int = 0
    credentials: list[str] = field(default_factory=list)
    assessments: int = 0
    last_activity_at: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.courses or self.minutes or self.videos or self.credentials or self.assessments)


def activity_summary(*, platform, user, period_days: int, now: datetime | None = None) -> ActivitySummary:
    """Aggregate the learner's activity records of the last `period_days` days."""
    now = now or timezone.now()
    rows = LearnerActivity.objects.filter(
        platform=platform, user=user, occurred_at__gte=now - timedelta(days=period_days), occurred_at__lte=now
    ).order_by("occurred_at", "pk")
    summary = ActivitySummary(period_days=period_days)
    courses: dict[str, CourseActivity] = {}
    for row in rows:
        summary.last_activity_at = row.occurred_at
        course = None
        if row.course_name:
            course = courses.setdefault(row.course_name, CourseActivity(name=row.course_name))
        if row.kind == ActivityKind.TIME_SPENT:
            summary.minutes += row.value
            if course:
                course.minutes += row.value
        elif row.kind == ActivityKind.VIDEO_WATCHED:
            count = int(row.value or 1)
            summary.videos += count
            if course:
                course.videos += count
        elif row.kind == ActivityKind.COURSE_PROGRESS and course:
            course.progress = max(course.progress or 0.0, min(row.value, 100.0))
        elif row.kind == ActivityKind.CREDENTIAL_EARNED:
            summary.credentials.append(row.course_name or str(row.data.get("name") or "a credential"))
        elif row.kind == ActivityKind.ASSESSMENT_COMPLETED:
            summary.assessments += int(row.value or 1)
    summary.courses = sorted(courses.values(), key=lambda c: (-c.minutes, c.name))
    return summary


def _hours(minutes: float) -> str:
    hours = minutes / 60
    if hours < 1:
        return f"{round(minutes)} minutes"
    text = f"{hours:.1f}".rstrip("0").rstrip(".")
    return f"{text} hour{'s' if text != '1' else ''}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


class RecommendationProvider:
    """Base class: turn a learner's activity summary into a recommendation text."""

    def __init__(self, **options):
        self.options = options

    def recommend(self, *, learner, mentor: dict, summary: ActivitySummary) -> str:
        raise NotImplementedError


class ActivitySummaryProvider(RecommendationProvider):
    """Deterministic: the same records always give the same text."""

    def recommend(self, *, learner, mentor: dict, summary: ActivitySummary) -> str:
        days = summary.period_days
        if summary.is_empty:
            return (
                f"You have not recorded any learning activity in the last {days} days. "
                "A short session today, even 15 minutes, is a great way to get back on track."
            )
        parts = []
        facts = []
        if summary.minutes:
            facts.append(f"spent {_hours(summary.minutes)} learning")
        if summary.videos:
            facts.append(f"watched {summary.videos} video{'s' if summary.videos != 1 else ''}")
        if summary.assessments:
            facts.append(f"completed {summary.assessments} assessment{'s' if summary.assessments != 1 else ''}")
        names = [c.name for c in summary.courses]
        where = f" across {_join(names)}" if names else ""
        if facts:
            parts.append(f"In the last {days} days you {_join(facts)}{where}.")
        elif names:
            parts.append(f"In the last {days} days you worked on {_join(names)}.")
        unfinished = [c for c in summary.courses if c.progress is not None and c.progress < 100]
        if unfinished:
            closest = max(unfinished, key=lambda c: (c.progress, c.name))
            parts.append(f"You are {round(closest.progress)}% through {closest.name}: keep going and finish it next.")
        elif summary.courses:
            parts.append(f"Keep the momentum going with {summary.courses[0].name}.")
        finished = [c.name for c in summary.courses if c.progress is not None and c.progress >= 100]
        if finished:
            parts.append(f"Well done on completing {_join(finished)}.")
        if summary.credentials:
            parts.append(f"Congratulations on earning {_join(summary.credentials)}!")
        return " ".join(parts)


class OpenAIChatProvider(RecommendationProvider):
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, Ollama, ...).

    OPTIONS: URL (the endpoint, or a base ending in /v1), API_KEY, MODEL,
    TIMEOUT (seconds), MAX_TOKENS.
    """

    DEFAULT_PROMPT = (
        "You are a friendly learning mentor. Write a short, encouraging, specific recommendation (at most "
        "three sentences) for the learner based on their recent activity. Plain text, no markdown."
    )

    def endpoint(self) -> str:
        url = str(self.options.get("URL") or "").rstrip("/")
        if not url:
            raise ImproperlyConfigured("NOTIFY_AI_RECOMMENDATION OPTIONS need a URL for OpenAIChatProvider")
        return url if url.endswith("/chat/completions") else f"{url}/chat/completions"

    def _activity_text(self, learner, summary: ActivitySummary) -> str:
        lines = [f"Learner: {learner.get_full_name() or learner.username}", f"Period: last {summary.period_days} days"]
        lines.append(f"Time spent: {_hours(summary.minutes)}; videos watched: {summary.videos}")
        for course in summary.courses:
            progress = f", {round(course.progress)}% complete" if course.progress is not None else ""
            lines.append(f"Course: {course.name} ({_hours(course.minutes)}{progress})")
        if summary.credentials:
            lines.append(f"Credentials earned: {', '.join(summary.credentials)}")
        if summary.is_empty:
            lines.append("No activity recorded in this period.")
        return "\n".join(lines)

    def recommend(self, *, learner, mentor: dict, summary: ActivitySummary) -> str:
        payload = {
            "model": self.options.get("MODEL") or "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": (mentor.get("prompt") or "").strip() or self.DEFAULT_PROMPT},
                {"role": "user", "content": self._activity_text(learner, summary)},
            ],
            "max_tokens": int(self.options.get("MAX_TOKENS") or 300),
        }
        headers = {"Content-Type": "application/json"}
        if self.options.get("API_KEY"):
            headers["Authorization"] = f"Bearer {self.options['API_KEY']}"
        try:
            response = requests.post(
                self.endpoint(), json=payload, headers=headers, timeout=float(self.options.get("TIMEOUT") or 20)
            )
        except requests.RequestException as exc:
            raise RecommendationError(f"chat-completions request failed: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise RecommendationError(f"chat-completions answered {response.status_code}")
        try:
            text = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RecommendationError("chat-completions answer has no choices[0].message.content") from None
        text = str(text or "").strip()
        if not text:
            raise RecommendationError("chat-completions answered an empty recommendation")
        return text[:4000]


@functools.cache
def _provider_class():
    config = getattr(settings, "NOTIFY_AI_RECOMMENDATION", {}) or {}
    path = config.get("BACKEND") or "templates_app.automation.recommendations.ActivitySummaryProvider"
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"NOTIFY_AI_RECOMMENDATION['BACKEND'] = {path!r} cannot be imported: {exc}") from exc


def get_provider() -> RecommendationProvider:
    config = getattr(settings, "NOTIFY_AI_RECOMMENDATION", {}) or {}
    return _provider_class()(**(config.get("OPTIONS") or {}))


def recommendation_for(*, learner, mentor: dict, summary: ActivitySummary, provider=None) -> str:
    """The configured provider's text, or the deterministic summary when it fails."""
    provider = provider or get_provider()
    try:
        return provider.recommend(learner=learner, mentor=mentor, summary=summary)
    except RecommendationError as exc:
        logger.warning("recommendation provider failed for %s, using the activity summary: %s", learner.pk, exc)
        return ActivitySummaryProvider().recommend(learner=learner, mentor=mentor, summary=summary)


def _reset(setting, **kwargs):
    if setting == "NOTIFY_AI_RECOMMENDATION":
        _provider_class.cache_clear()


setting_changed.connect(_reset)
