"""Periodic tasks on the task queue: register a task with a period, the worker enqueues it.

Any app registers its periodic work in its ``tasks.py`` (imported by every
worker through ``autodiscover``)::

    from django_tasks import task
    from linking.services.scheduling import register_periodic

    @task()
    def end_expired_links() -> int:
        ...

    register_periodic(end_expired_links, every=timedelta(minutes=1))

Each worker runs a scheduler beside it (``manage.py run_worker``) that ticks
every second and enqueues each registered task once per period. Time is cut
into slots of ``every`` (aligned to the Unix epoch); the first scheduler to
insert the ``PeriodicTaskRun`` row of a slot enqueues that slot's run, the
others find the row taken, so two workers never enqueue a period twice.
``only_if`` (a cheap callable) skips a slot while there is nothing to do.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from ..models import PeriodicTaskRun

logger = logging.getLogger(__name__)

HISTORY = timedelta(days=1)


@dataclass(frozen=True)
class Periodic:
    name: str
    task: object
    every: timedelta
    only_if: Callable[[], bool] | None = None


_registry: dict[str, Periodic] = {}


def register_periodic(
    task, *, every: timedelta, only_if: Callable[[], bool] | None = None, name: str = ""
) -> Periodic:
    """Have the scheduler enqueue ``task`` (a django-tasks Task) once every ``every``.

    Registering the same name again replaces the entry (modules may be
    imported twice under autoreload).
    """
    if every < timedelta(seconds=1):
        raise ValueError("a periodic task runs at most once a second")
    entry = Periodic(name=name or task.module_path, task=task, every=every, only_if=only_if)
    _registry[entry.name] = entry
    return entry


def registered() -> list[Periodic]:
    return sorted(_registry.values(), key=lambda entry: entry.name)


def autodiscover() -> None:
    """Import every installed app's ``tasks`` module, where periodic tasks are registered."""
    autodiscover_modules("tasks")


def slot_of(now: datetime, every: timedelta) -> datetime:
    step = int(every.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=now.tzinfo)


def run_due(now: datetime | None = None) -> list[str]:
    """Enqueue every registered task whose current slot has not been enqueued; returns names."""
    now = now or timezone.now()
    enqueued = []
    for entry in registered():
        slot = slot_of(now, entry.every)
        if PeriodicTaskRun.objects.filter(name=entry.name, slot=slot).exists():
            continue
        try:
            if entry.only_if is not None and not entry.only_if():
                continue
            with transaction.atomic():
                PeriodicTaskRun.objects.create(name=entry.name, slot=slot, enqueued_at=now)
                # On the database backend the task row commits with the slot's row.
                entry.task.enqueue()
        except IntegrityError:
            continue  # another scheduler took this slot
        except Exception:
            logger.exception("Could not enqueue periodic task %s", entry.name)
            continue
        enqueued.append(entry.name)
    return enqueued


def prune_history(now: datetime | None = None) -> int:
    """Forget slot records older than a day (they only guard the current slot)."""
    now = now or timezone.now()
    deleted, _ = PeriodicTaskRun.objects.filter(slot__lt=now - HISTORY).delete()
    return deleted
