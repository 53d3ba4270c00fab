"""Celery tasks of the builder: they take ids and call services."""

from __future__ import annotations

from celery import shared_task

from builder import runs


@shared_task(ignore_result=True, acks_late=True)
def build_send_task(build_id: str) -> None:
    # A worker lost mid-build leaves its lease to run out; the due-work sweep
    # then hands the build to another worker, which resumes where it stopped.
    runs.build_run(build_id=build_id)


def build_send_enqueue(build_id: str) -> None:
    build_send_task.delay(build_id)
