"""Recorded SIS import batches."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class SisBatch(models.Model):
    """One run of the SIS importer: what it was given, what it changed and what failed."""

    class State(models.TextChoices):
        CREATED = "created", _("created")
        RUNNING = "running", _("running")
        IMPORTED = "imported", _("imported")
        IMPORTED_WITH_ERRORS = "imported_with_messages", _("imported with errors")
        FAILED = "failed", _("failed")
        DRY_RUN = "dry_run", _("dry run")
        ABORTED = "aborted", _("aborted")

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="sis_batches"
    )
    created_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Format(models.TextChoices):
        CANVAS = "canvas", _("Canvas SIS CSV")
        ONEROSTER = "oneroster", _("OneRoster CSV")

    workflow_state = models.CharField(max_length=32, choices=State, default=State.CREATED)
    format = models.CharField(
        max_length=16, choices=Format, default=Format.CANVAS, db_default=Format.CANVAS
    )
    # SHA-256 of the files imported, so a nightly sync skips a bundle it already applied.
    content_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    source_name = models.CharField(max_length=255, blank=True)
    dry_run = models.BooleanField(default=False)
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["root_account", "content_hash"], name="sis_batch_hash")]
        verbose_name = "SIS batch"
        verbose_name_plural = "SIS batches"

    def __str__(self) -> str:
        return f"SIS batch #{self.pk} ({self.get_workflow_state_display()})"
