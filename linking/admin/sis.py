"""Admin: SIS imports (upload, dry-run preview, confirm, batch report) and the SIS export.

The upload is kept in a private temporary directory between the preview and
the confirmation (``sis_uploads``, which removes it once expired when it is
never confirmed); both runs call ``services.sis.import_sis`` (the preview
with ``dry_run``), so what staff confirm is exactly what was previewed,
unless the data changed in between.
"""

import tempfile
import uuid
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import get_valid_filename
from django.utils.translation import gettext_lazy as _

from ..models import Account, AuditSource, Permission, SisBatch
from ..request_context import actor_from_request
from ..services.errors import LinkingError
from ..services.permissions import root_accounts_with_permission
from ..services.sis import MassDeleteRefused, export_zip, import_sis
from . import sis_uploads
from .tenancy import TenantScopedAdmin, admin_tenant

SESSION_KEY = "sis_uploads"
CHANGES_NAME = "changes.csv"  # beside the upload: every change the preview found


def _allowed_root_accounts(request, permission: str):
    """Root accounts the request may use for ``permission``: the tenant, or all for superusers."""
    tenant = admin_tenant(request)
    roots = Account.objects.roots().order_by("name")
    if tenant is not None:
        roots = roots.filter(pk=tenant.pk)
    allowed = root_accounts_with_permission(
        request.user, roots.values_list("pk", flat=True), permission
    )
    return roots.filter(pk__in=allowed)


class SisUploadForm(forms.Form):
    root_account = forms.ModelChoiceField(queryset=Account.objects.none(), empty_label=None)
    file = forms.FileField(
        help_text=_(
            "One CSV file (accounts, users, courses, enrollments, admins or user_observers, "
            "recognised by its header), a zip of several, or a OneRoster 1.1/1.2 bundle "
            "(a zip with manifest.csv)."
        )
    )
    allow_mass_delete = forms.BooleanField(
        required=False,
        label=_("Allow mass delete"),
        help_text=_(
            "Needed when the file deletes more than the allowed share of active links, "
            "enrollments or users."
        ),
    )

    def __init__(self, *args, root_accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["root_account"].queryset = root_accounts

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if Path(upload.name).suffix.lower() not in {".csv", ".zip"}:
            raise forms.ValidationError(_("Upload a .csv file or a .zip of CSV files."))
        return upload


class SisConfirmForm(forms.Form):
    token = forms.UUIDField(widget=forms.HiddenInput)


@admin.register(SisBatch)
class SisBatchAdmin(TenantScopedAdmin):
    list_display = [
        "id",
        "root_account",
        "workflow_state",
        "dry_run",
        "source_name",
        "created_by",
        "created_at",
        "finished_at",
        "error_total",
    ]
    list_filter = ["workflow_state"]
    tenant_filter = "root_account"
    fields = [
        "root_account",
        "workflow_state",
        "source_name",
        "created_by",
        "created_at",
        "finished_at",
        "report",
    ]
    readonly_fields = fields
    change_list_template = "admin/sis/sisbatch_change_list.html"

    @admin.display(description=_("errors"))
    def error_total(self, batch: SisBatch) -> int:
        return (batch.counts.get("totals") or {}).get("errors", 0)

    @admin.display(description=_("report"))
    def report(self, batch: SisBatch) -> str:
        return render_to_string(
            "admin/sis/report.html",
            {
                "files": batch.counts.get("files", []),
                "totals": batch.counts.get("totals", {}),
                "mass_delete": batch.counts.get("mass_delete", {}),
                "errors": batch.errors,
                "changes": batch.counts.get("changes"),
                # After an import went through, an over-the-limit delete was
                # allowed: the report says what happened, not what would.
                "went_through": batch.workflow_state
                in (SisBatch.State.IMPORTED, SisBatch.State.IMPORTED_WITH_ERRORS),
            },
        )

    # Staff read batches with read_sis and import with manage_user_observers in their tenant.
    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        return _allowed_root_accounts(request, Permission.READ_SIS).exists()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_import_permission(self, request) -> bool:
        return _allowed_root_accounts(request, Permission.MANAGE_USER_OBSERVERS).exists()

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("root_account", "created_by")
        return queryset.filter(
            root_account__in=_allowed_root_accounts(request, Permission.READ_SIS)
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="linking_sisbatch_import"),
            path("import/confirm/", view(self.confirm_view), name="linking_sisbatch_confirm"),
            path(
                "import/changes/<uuid:token>/",
                view(self.changes_view),
                name="linking_sisbatch_changes",
            ),
            path(
                "export/<int:root_account_id>/",
                view(self.export_view),
                name="linking_sisbatch_export",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_import": self.has_import_permission(request),
            "export_accounts": _allowed_root_accounts(request, Permission.READ_SIS),
        }
        return super().changelist_view(request, extra_context)

    def _render(self, request, template, **context):
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Import SIS data"),
                **context,
            },
        )

    def import_view(self, request):
        """Upload -> dry run -> preview with a confirm button."""
        root_accounts = _allowed_root_accounts(request, Permission.MANAGE_USER_OBSERVERS)
        if not root_accounts.exists():
            raise Http404
        form = SisUploadForm(
            request.POST or None, request.FILES or None, root_accounts=root_accounts
        )
        if request.method != "POST" or not form.is_valid():
            return self._render(request, "admin/sis/import.html", form=form)
        stored = sis_uploads.store_upload(form.cleaned_data["file"])
        root_account = form.cleaned_data["root_account"]
        changes = stored.parent / CHANGES_NAME
        try:
            report = import_sis(
                paths=[stored],
                root_account=root_account,
                actor=actor_from_request(request, AuditSource.SIS),
                dry_run=True,
                source_name=f"admin upload: {stored.name}",
                changes_path=changes,
            )
        except LinkingError as exc:
            sis_uploads.discard(stored)
            form.add_error("file", exc.message)
            return self._render(request, "admin/sis/import.html", form=form)
        token = str(uuid.uuid4())
        uploads = request.session.get(SESSION_KEY, {})
        uploads[token] = {
            "path": str(stored),
            "root_account": root_account.pk,
            "allow_mass_delete": form.cleaned_data["allow_mass_delete"],
        }
        request.session[SESSION_KEY] = uploads
        return self._render(
            request,
            "admin/sis/preview.html",
            title=_("Preview: nothing has been written yet"),
            report=report,
            report_html=render_to_string(
                "admin/sis/report.html",
                {
                    "files": [file.as_dict() for file in report.files],
                    "totals": dict(report.totals()),
                    "mass_delete": report.mass_delete,
                    "errors": report.errors + report.warnings,
                },
            ),
            changes=report.changes.as_dict(),
            changes_total=sum(report.changes.counts.values()),
            changes_url=reverse(f"{self.admin_site.name}:linking_sisbatch_changes", args=[token]),
            root_account=root_account,
            allow_mass_delete=form.cleaned_data["allow_mass_delete"],
            confirm_form=SisConfirmForm(initial={"token": token}),
        )

    def confirm_view(self, request):
        """Run the previewed upload for real, then show its batch report."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:linking_sisbatch_import"))
        form = SisConfirmForm(request.POST)
        uploads = request.session.get(SESSION_KEY, {})
        pending = uploads.get(str(form.cleaned_data["token"])) if form.is_valid() else None
        if pending is not None and not sis_uploads.is_live(Path(pending["path"])):
            del uploads[str(form.cleaned_data["token"])]
            request.session[SESSION_KEY] = uploads
            sis_uploads.discard(Path(pending["path"]))
            pending = None
        if pending is None:
            messages.error(request, _("That upload has expired or was already imported."))
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:linking_sisbatch_import"))
        root_account = (
            _allowed_root_accounts(request, Permission.MANAGE_USER_OBSERVERS)
            .filter(pk=pending["root_account"])
            .first()
        )
        if root_account is None:
            raise Http404
        del uploads[str(form.cleaned_data["token"])]
        request.session[SESSION_KEY] = uploads
        stored = Path(pending["path"])
        try:
            report = import_sis(
                paths=[stored],
                root_account=root_account,
                actor=actor_from_request(request, AuditSource.SIS),
                allow_mass_delete=pending["allow_mass_delete"],
                source_name=f"admin upload: {stored.name}",
            )
        except MassDeleteRefused as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(self._batch_url(exc.batch_id))
        except LinkingError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:linking_sisbatch_import"))
        finally:
            sis_uploads.discard(stored)
        if report.failed:
            messages.warning(
                request, _("Imported with %(count)d error(s).") % {"count": report.error_count}
            )
        else:
            messages.success(request, _("Imported."))
        return HttpResponseRedirect(self._batch_url(report.batch_id))

    def changes_view(self, request, token):
        """Every change the previewed upload would make, as CSV (kind, action, SIS id, what)."""
        pending = request.session.get(SESSION_KEY, {}).get(str(token))
        if (
            pending is None
            or not _allowed_root_accounts(request, Permission.MANAGE_USER_OBSERVERS)
            .filter(pk=pending["root_account"])
            .exists()
        ):
            raise Http404
        changes = Path(pending["path"]).parent / CHANGES_NAME
        if not sis_uploads.is_live(Path(pending["path"])) or not changes.is_file():
            raise Http404
        return FileResponse(
            changes.open("rb"),
            as_attachment=True,
            filename="sis-preview-changes.csv",
            content_type="text/csv; charset=utf-8",
        )

    def _batch_url(self, batch_id: int) -> str:
        return reverse(f"{self.admin_site.name}:linking_sisbatch_change", args=[batch_id])

    def export_view(self, request, root_account_id: int):
        """A zip of users.csv and user_observers.csv that re-imports to the same state."""
        root_account = (
            _allowed_root_accounts(request, Permission.READ_SIS).filter(pk=root_account_id).first()
        )
        if root_account is None:
            raise Http404
        target = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
        export_zip(root_account=root_account, target=target)
        target.seek(0)
        name = f"sis-export-{get_valid_filename(root_account.domain or root_account.pk)}.zip"
        return FileResponse(
            target, as_attachment=True, filename=name, content_type="application/zip"
        )
